"""Fine-tune the VAE decoder only (the latent space, and so the diffusion models on it, stay valid)."""
from common import *
from diffusers import AutoencoderKL
STEPS = int(sys.argv[1]); FG = float(sys.argv[2]) if len(sys.argv) > 2 else 4.0
vae = AutoencoderKL.from_pretrained(DM + "/vae")
vae.encoder.requires_grad_(False); vae.quant_conv.requires_grad_(False)
params = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
opt = torch.optim.AdamW(params, 5e-4)
B = 16; t0 = time.time()
for s in range(STEPS):
    lr = 5e-4 * 0.5 * (1 + math.cos(math.pi * s / STEPS))
    for g in opt.param_groups: g["lr"] = lr
    x, _ = frames(21, s * B, B)
    with torch.no_grad():
        z = vae.encode(x).latent_dist.sample()
    y = vae.decode(z).sample
    wgt = 1 + (FG - 1) * (x.amax(1, keepdim=True) > -0.5).float()
    rec = (wgt * ((y - x).abs() + (y - x) ** 2)).mean() / wgt.mean()
    rec.backward(); torch.nn.utils.clip_grad_norm_(params, 1.0); opt.step(); opt.zero_grad()
    if s % 25 == 0: print(f"step {s} rec {rec.item():.4f} t {time.time()-t0:.0f}", flush=True)
    if (s + 1) % 100 == 0:
        vae.save_pretrained(DM + "/vae_dec"); print("oracle agreement", oracle_agreement(vae, 36), flush=True)
vae.save_pretrained(DM + "/vae_dec"); print("done", flush=True)
