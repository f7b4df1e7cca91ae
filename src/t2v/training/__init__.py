"""One accelerate training loop; stages are configs."""
