"""t2v: text-to-video diffusion on one inflation mechanism.

Video tensors use one axis order everywhere: (B, C, F, H, W).
"""

__version__ = "0.1.0"
