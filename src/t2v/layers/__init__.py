"""Temporal building blocks that turn a 2D (per-frame) network into a video network."""
