"""FVD, IS, CLIPSIM, CLIP frame consistency, and the ShapesWorld oracle."""
