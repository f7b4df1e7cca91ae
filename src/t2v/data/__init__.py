"""Video decoding/encoding, frame sampling, caption data sets, ShapesWorld."""
