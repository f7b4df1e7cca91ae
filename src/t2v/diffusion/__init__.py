"""Training loss, sampling loop, DDIM inversion, guidance. Schedulers come from diffusers."""
