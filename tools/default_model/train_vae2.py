from common import *
from diffusers import AutoencoderKL
STEPS = int(sys.argv[1]) if len(sys.argv) > 1 else 500
torch.manual_seed(0)
vae = AutoencoderKL.from_pretrained(DM + "/vae0")
opt = torch.optim.AdamW(vae.parameters(), 1e-3, weight_decay=0.0)
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1, (s+1)/20) * 0.5 * (1 + math.cos(math.pi * s / STEPS)))
B = 16
t0 = time.time()
for s in range(STEPS):
    x, _ = frames(11, s * B, B)
    post = vae.encode(x).latent_dist
    y = vae.decode(post.sample()).sample
    wgt = 1 + 9 * (x.amax(1, keepdim=True) > -0.5).float()  # foreground pixels count 10x: the object is ~6% of the frame
    rec = (wgt * ((y - x).abs() + (y - x) ** 2)).mean() / wgt.mean()
    kl = post.kl().mean()
    loss = rec + 1e-6 * kl
    loss.backward(); torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0); opt.step(); opt.zero_grad(); sched.step()
    if s % 25 == 0:
        print(f"step {s} rec {rec.item():.4f} kl {kl.item():.1f} t {time.time()-t0:.0f}", flush=True)
    if (s + 1) % 150 == 0 or s == STEPS - 1:
        print("oracle agreement", oracle_agreement(vae), flush=True)
        vae.save_pretrained(DM + "/vae")
set_latent_scale(vae)
vae.save_pretrained(DM + "/vae")
print("done", time.time() - t0)
