#!/usr/bin/env bash
# Reproduces src/t2v/assets/default_model from scratch, exactly as it was made (docs/default_model.md).
# Run from the repository root: DM=runs/default_model bash tools/default_model/run.sh
# Stage lengths are wall-clock budgets (minutes) on the shared 2-core machine, as in the shipped run.
set -euo pipefail
export DM=${DM:-runs/default_model} PYTHONPATH=src NT=1
T=tools/default_model
python $T/train_vae.py 600                              # 1a. AutoencoderKL 64x64x3 -> 16x16x4: L1+L2, KL 1e-6
cp -r $DM/vae $DM/vae0
python $T/train_vae2.py 300                             # 1b. same, foreground pixels weighted 10x (colors)
python $T/train_vae_dec.py 300 4                        # 1c. decoder only (latent space fixed), foreground 4x
cp -r $DM/vae_dec $DM/vae_final
python $T/train_image.py 20                             # 2a. text-to-image on single frames, 20 min (lr 1e-3)
cp -r $DM/image $DM/image_stage1
python $T/train_image2.py 8.5                           # 2b. continued, 8.5 min (lr 8e-4)
python $T/train_video.py 15 2                           # 3a. video-ldm inflation, temporal layers + alphas only (min-SNR v loss, lr 5e-4), stopped at 15 min
python $T/train_video2.py 4 2 2e-3                      # 3b. same parameters, plain v loss, lr 2e-3, stopped at ~4 min
python $T/train_video3.py 11 2 1e-3                     # 3c. + spatial cross-attention (attn2), 11 min
STEPS=15 G=4 python $T/assemble.py $DM/video3/unet src/t2v/assets/default_model fp16
