"""Turn the video stage's model folder (`t2v train configs/default_model/3_video.yaml` ->
runs/default_model/video/model) into the shipped default model: U-Net and VAE in float16 (the text
encoder stays float32), DPM-Solver++ (order 2) on the training schedule, and the generation defaults.

    PYTHONPATH=src python tools/default_model/ship.py runs/default_model/video/model src/t2v/assets/default_model [STEPS GUIDANCE [SHIFT [DECODER]]] [--temporal-guidance S@T]

SHIFT: the sampling timestep shift recorded as the folder's default (the video stage's
diffusion.timestep_shift; 1 = none). DECODER: a TemporalAutoencoder folder (Video LDM's temporally
fine-tuned decoder, `t2v train configs/cascade/vae_decoder.yaml`) shipped as vae/ in place of the image
VAE; its encoder must be the model's (checked), so the latent space does not move. A SRC whose vae/ is
already a TemporalAutoencoder (a model fine-tuned from the shipped one) keeps it when DECODER is not given.
`--temporal-guidance S@T` records spatiotemporal skip guidance (away from the image model at t >= T) as a
generation default (session 14: 1@500).
"""
import json
import shutil
import sys
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDPMScheduler, DPMSolverMultistepScheduler
from transformers import CLIPTextModel

from t2v.models import TemporalAutoencoder, load_video_unet
from t2v.pipelines.text_to_video import parse_temporal_guidance

skip = ()
if "--temporal-guidance" in sys.argv:
    i = sys.argv.index("--temporal-guidance")
    skip = parse_temporal_guidance(sys.argv[i + 1])
    del sys.argv[i:i + 2]
src, out = Path(sys.argv[1]), Path(sys.argv[2])
steps, guidance = (int(sys.argv[3]), float(sys.argv[4])) if len(sys.argv) > 4 else (15, 4.0)
shift = float(sys.argv[5]) if len(sys.argv) > 5 else 1.0
decoder = Path(sys.argv[6]) if len(sys.argv) > 6 else None
shutil.rmtree(out, ignore_errors=True)
out.mkdir(parents=True)
load_video_unet(src).to(torch.float16).save_pretrained(out / "unet")
CLIPTextModel.from_pretrained(src / "text_encoder", dtype=torch.float32).save_pretrained(out / "text_encoder")
# src/vae is the image VAE, or (a model fine-tuned from the shipped one) already a TemporalAutoencoder,
# which is kept as it is unless DECODER replaces it
if json.loads((src / "vae" / "config.json").read_text()).get("_class_name") == "TemporalAutoencoder":
    temporal = TemporalAutoencoder.from_pretrained(src / "vae").to(torch.float16)
    vae = temporal.vae
else:
    temporal, vae = None, AutoencoderKL.from_pretrained(src / "vae").to(torch.float16)
if decoder is not None:
    temporal = TemporalAutoencoder.from_pretrained(decoder).to(torch.float16)
    image, mine = temporal.vae.encoder.state_dict(), vae.encoder.state_dict()
    if image.keys() != mine.keys() or not all(torch.equal(image[k], mine[k]) for k in mine):
        sys.exit(f"{decoder}'s encoder is not {src}/vae's: fine-tune the decoder from this model's VAE")
(vae if temporal is None else temporal).save_pretrained(out / "vae")
shutil.copytree(src / "tokenizer", out / "tokenizer")
ddpm = DDPMScheduler.from_pretrained(src / "scheduler")
DPMSolverMultistepScheduler.from_config(ddpm.config, algorithm_type="dpmsolver++", solver_order=2).save_pretrained(out / "scheduler")
index = {
    "_class_name": "TextToVideoPipeline", "_diffusers_version": "0.42.0",
    "unet": ["t2v", "VideoUNet"], "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"], "scheduler": ["diffusers", "DPMSolverMultistepScheduler"],
    "vae": ["diffusers", "AutoencoderKL"] if temporal is None else ["t2v.models", "TemporalAutoencoder"],
    "t2v_generation": {"num_inference_steps": steps, "guidance_scale": guidance, "num_frames": 16, "height": 64, "width": 64, "fps": 8,
                       **({"timestep_shift": shift} if shift != 1.0 else {}),
                       **({"temporal_guidance": list(skip)} if skip else {})},
}
(out / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
print(f"wrote {out}: {total / 1e6:.1f} MB")
