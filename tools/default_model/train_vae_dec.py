"""Fine-tune the VAE decoder only (the latent space, and so the diffusion models on it, stay valid).

    python train_vae_dec.py STEPS [FOREGROUND_WEIGHT=4] [mode]
`mode` decodes the posterior means instead of samples (the latents the diffusion model learns; session
13's KL-1e-4 autoencoder, whose posterior noise is large, needs it). Writes DM/vae_dec and, with
`mode`, records the latent scaling factor (1 / latent std over ShapesWorld frames) there."""
from common import *
from diffusers import AutoencoderKL
STEPS = int(sys.argv[1]); FG = float(sys.argv[2]) if len(sys.argv) > 2 else 4.0
MODE = len(sys.argv) > 3 and sys.argv[3] == "mode"
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
        post = vae.encode(x).latent_dist
        z = post.mode() if MODE else post.sample()
    y = vae.decode(z).sample
    wgt = 1 + (FG - 1) * (x.amax(1, keepdim=True) > -0.5).float()
    rec = (wgt * ((y - x).abs() + (y - x) ** 2)).mean() / wgt.mean()
    rec.backward(); torch.nn.utils.clip_grad_norm_(params, 1.0); opt.step(); opt.zero_grad()
    if s % 25 == 0: print(f"step {s} rec {rec.item():.4f} t {time.time()-t0:.0f}", flush=True)
    if (s + 1) % 100 == 0:
        vae.save_pretrained(DM + "/vae_dec"); print("oracle agreement", oracle_agreement(vae, 36), flush=True)
if MODE:  # the scaling factor, as train_vae.py sets it (stage 1a does, and 1b/1c keep it)
    set_latent_scale(vae)
vae.save_pretrained(DM + "/vae_dec"); print("done", flush=True)
