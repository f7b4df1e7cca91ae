"""Inflation of 2D U-Nets into video U-Nets, one recipe per paper; autoencoders; I3D/C3D."""
