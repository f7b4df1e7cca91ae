"""Issue 7 diagnostic: does the video model use the direction word? The v-prediction loss on 16 held-in
ShapesWorld clips (seed 999, never trained on) at fixed noise levels, with the true caption, the same
caption with another direction, the empty caption, and the true caption with the temporal layers
skipped. Equal `true` and `wrong` columns mean the direction word changes nothing.

    PYTHONPATH=src python tools/default_model/direction_loss.py MODEL_DIR [CHECKPOINT_DIR]

CHECKPOINT_DIR: a `t2v train` checkpoint whose U-Net (and text encoder, if trained) replace MODEL_DIR's.
TIMESTEPS=999,990,975 (environment): the noise levels, in the order their noise is drawn (default
999,800,600,400,200,950,900).
"""
import os
import pathlib
import sys

import torch
from t2v.pipelines import TextToVideoPipeline
from t2v.data.shapes import ShapesWorldDataset, caption
from diffusers import DDPMScheduler
torch.manual_seed(0)
model = sys.argv[1]
pipe = TextToVideoPipeline.from_pretrained(model)
if len(sys.argv) > 2:
    from safetensors.torch import load_file
    ck = sys.argv[2]
    print(pipe.unet.load_state_dict(load_file(ck + "/model.safetensors"), strict=False))
    if pathlib.Path(ck, "model_1.safetensors").is_file():  # the text encoder, when it trained
        print(pipe.text_encoder.load_state_dict(load_file(ck + "/model_1.safetensors"), strict=False))
e3 = pipe.encode_text(["a red circle moving left", "a red circle moving right"]); print("left/right emb diff", (e3[0]-e3[1]).abs().max().item())
sched = DDPMScheduler.from_pretrained(pathlib.Path(model) / "scheduler")
ds = ShapesWorldDataset(16, seed=999, num_frames=16)
items = [ds[i] for i in range(16)]
video = torch.stack([it["video"] for it in items])
x0 = pipe.encode_video(video)
opp = {"left": "up", "right": "down", "up": "right", "down": "left"}
true_c = [caption(it["color"], it["shape"], it["motion"]) for it in items]
wrong_c = [caption(it["color"], it["shape"], opp[it["motion"]]) for it in items]
et, ew, en = pipe.encode_text(true_c), pipe.encode_text(wrong_c), pipe.encode_text([""] * 16)
g = torch.Generator().manual_seed(1)
for tval in [int(v) for v in os.environ.get("TIMESTEPS", "999,800,600,400,200,950,900").split(",")]:  # 950, 900 last: earlier rows keep their draws
    noise = torch.randn(x0.shape, generator=g)
    t = torch.full((16,), tval)
    xt = sched.add_noise(x0, noise, t)
    target = sched.get_velocity(x0, noise, t)
    with torch.no_grad():
        res = []
        for e, kw in [(et, {}), (ew, {}), (en, {}), (et, {"image_only": True})]:
            res.append((pipe.unet(xt, t, e, **kw) - target).square().mean().item())
    print(tval, "true %.4f wrong %.4f empty %.4f image-only %.4f" % tuple(res))
