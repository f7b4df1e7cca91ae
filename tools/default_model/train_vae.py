from common import *
from diffusers import AutoencoderKL
from t2v.metrics.shapes_oracle import read_clip
STEPS = int(sys.argv[1]) if len(sys.argv) > 1 else 500
torch.manual_seed(0)
vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4,
    down_block_types=("DownEncoderBlock2D",)*3, up_block_types=("UpDecoderBlock2D",)*3,
    block_out_channels=(16, 32, 64), layers_per_block=1, norm_num_groups=8, mid_block_add_attention=False)
opt = torch.optim.AdamW(vae.parameters(), 2e-3, weight_decay=0.0)
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1, (s+1)/20) * 0.5 * (1 + math.cos(math.pi * s / STEPS)))
B = 16
t0 = time.time()
def evaluate():
    vae.eval()
    from t2v.data.shapes import HELD_OUT
    ok = 0; n = 0
    with torch.no_grad():
        x, caps = clips(999, 0, 24)
        for i in range(len(x)):
            v = x[i].permute(1, 0, 2, 3)  # F C H W
            y = vae.decode(vae.encode(v).latent_dist.mode()).sample.clamp(-1, 1)
            a = ((v.permute(0, 2, 3, 1) + 1) * 127.5).round().byte().numpy()
            b = ((y.permute(0, 2, 3, 1) + 1) * 127.5).round().byte().numpy()
            ra, rb = read_clip(a), read_clip(b)
            ok += (ra.color, ra.shape, ra.direction) == (rb.color, rb.shape, rb.direction); n += 1
    vae.train()
    return ok / n
for s in range(STEPS):
    x, _ = frames(1, s * B, B)
    post = vae.encode(x).latent_dist
    y = vae.decode(post.sample()).sample
    rec = (y - x).abs().mean() + ((y - x) ** 2).mean()
    kl = post.kl().mean()
    loss = rec + 1e-6 * kl
    loss.backward(); torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0); opt.step(); opt.zero_grad(); sched.step()
    if s % 25 == 0:
        print(f"step {s} rec {rec.item():.4f} kl {kl.item():.1f} t {time.time()-t0:.0f}", flush=True)
    if (s + 1) % 250 == 0 or s == STEPS - 1:
        print("oracle agreement", evaluate(), flush=True)
        vae.save_pretrained(DM + "/vae")
# latent scale
with torch.no_grad():
    x, _ = frames(5, 0, 64)
    z = vae.encode(x).latent_dist.mode()
    print("latent std", z.std().item(), "mean", z.mean().item())
    vae.register_to_config(scaling_factor=float(1 / z.std()))
    vae.save_pretrained(DM + "/vae")
print("done", time.time() - t0)
