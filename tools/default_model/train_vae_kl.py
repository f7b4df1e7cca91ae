"""Stage 1 with a KL term that matters (session 13): the autoencoder in one run, foreground-weighted.

Session 13 found that the stage-1 autoencoder (KL weight 1e-6) codes color as a magnitude along one
latent direction (99.98% of the colors' second moment), with green 18x nearer the black background than
white: the faintest color is the first one the diffusion noise buries. A KL weight of 1e-4 (posterior
samples decoded during training, so the code must stand out of the posterior's noise) spreads the
colors over two directions with every color at least 4 latent stds from black. Foreground pixels
count 10x from the start (stage 1b's weighting). Every 300 steps it prints the oracle's agreement on
reconstructions and the color code (`color_signal.py --vae`'s measure), and writes DM/vae; at the end
it records the latent scaling factor (1 / latent std over ShapesWorld frames).
Then `train_vae_dec.py STEPS 4 mode` fine-tunes the decoder on the posterior means (the latents a
diffusion model is trained on), which brings reconstructions back up: decoded from samples, this
autoencoder confused red, orange and yellow.

    DM=runs/default_model_kl PYTHONPATH=src python tools/default_model/train_vae_kl.py [STEPS=900] [KL=1e-4]
"""
from common import *

from t2v.data.shapes import COLORS, clip_to_video

STEPS = int(sys.argv[1]) if len(sys.argv) > 1 else 900
KL = float(sys.argv[2]) if len(sys.argv) > 2 else 1e-4
torch.manual_seed(0)
vae = new_vae()
opt = torch.optim.AdamW(vae.parameters(), 2e-3, weight_decay=0.0)
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1, (s+1)/20) * 0.5 * (1 + math.cos(math.pi * s / STEPS)))
B = 16


@torch.no_grad()
def color_code() -> tuple[dict, list]:
    """Per color, the norm of a latent cell inside a 24 px square minus black's, in latent stds; and the
    eigenvalue shares of the colors' second moment (one share near 1: a one-direction code)."""
    black = vae.encode(-torch.ones(1, 3, 64, 64)).latent_dist.mode()[0]
    cells = {}
    for c in COLORS:
        v = clip_to_video(render_clip(c, "square", "right", num_frames=1, object_size=24, displacement=0, start=(20, 20)))[:, 0]
        cells[c] = (vae.encode(v[None]).latent_dist.mode()[0] - black)[:, 7, 7]
    std = vae.encode(frames(5, 0, 64)[0]).latent_dist.mode().std()
    m = torch.stack(list(cells.values()))
    ev = torch.linalg.eigvalsh(m.T @ m).flip(0)
    return {c: round(v.norm().item() / std.item(), 2) for c, v in cells.items()}, [round(x, 4) for x in (ev / ev.sum()).tolist()]


t0 = time.time()
for s in range(STEPS):
    x, _ = frames(1, s * B, B)
    post = vae.encode(x).latent_dist
    y = vae.decode(post.sample()).sample
    wgt = 1 + 9 * (x.amax(1, keepdim=True) > -0.5).float()  # foreground pixels count 10x (stage 1b's weighting)
    rec = (wgt * ((y - x).abs() + (y - x) ** 2)).mean() / wgt.mean()
    kl = post.kl().mean()
    loss = rec + KL * kl
    loss.backward(); torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0); opt.step(); opt.zero_grad(); sched.step()
    if s % 50 == 0:
        print(f"step {s} rec {rec.item():.4f} kl {kl.item():.1f} t {time.time()-t0:.0f}", flush=True)
    if (s + 1) % 300 == 0 or s == STEPS - 1:
        print(s + 1, "oracle agreement", oracle_agreement(vae), flush=True)
        print(s + 1, "color code (latent stds from black), eigenvalue shares", *color_code(), flush=True)
        vae.save_pretrained(DM + "/vae")
print("done", time.time() - t0)
