from common import *
import copy
from diffusers import UNet2DConditionModel, AutoencoderKL, DDPMScheduler
from transformers import CLIPTextModel, CLIPTokenizer
from t2v.models import inflate
MINUTES = float(sys.argv[1]); B = int(sys.argv[2]) if len(sys.argv) > 2 else 2
F = 16; IMG = DM + "/image"; OUT = DM + "/video"
os.makedirs(OUT, exist_ok=True)
torch.manual_seed(0)
vae = AutoencoderKL.from_pretrained(DM + "/vae").eval().requires_grad_(False); sf = vae.config.scaling_factor
tok = CLIPTokenizer.from_pretrained(IMG + "/tokenizer"); L = tok.model_max_length
te = CLIPTextModel.from_pretrained(IMG + "/text_encoder").eval().requires_grad_(False)
unet = inflate(UNet2DConditionModel.from_pretrained(IMG + "/unet"), "video-ldm")
unet.set_trainable()
train = unet.trainable_parameters()
print("trainable", sum(p.numel() for p in train.values()))
sched = DDPMScheduler.from_pretrained(IMG + "/scheduler"); ac = sched.alphas_cumprod
opt = torch.optim.AdamW(train.values(), 5e-4, weight_decay=0.0)
ema = {n: p.detach().clone() for n, p in train.items()}
def save():
    live = {n: p.detach().clone() for n, p in train.items()}
    with torch.no_grad():
        for n, p in train.items(): p.copy_(ema[n])
    unet.save_pretrained(OUT + "/unet")
    with torch.no_grad():
        for n, p in train.items(): p.copy_(live[n])
t0 = time.time(); s = 0
while time.time() - t0 < MINUTES * 60:
    for g in opt.param_groups: g["lr"] = 5e-4 * min(1, (s + 1) / 30)
    x, caps = clips(3, s * B, B, F)  # (B,3,F,64,64)
    caps = [c if torch.rand(()) > 0.1 else "" for c in caps]
    with torch.no_grad():
        fr = x.permute(0, 2, 1, 3, 4).reshape(B * F, 3, 64, 64)
        z = vae.encode(fr).latent_dist.sample() * sf
        z = z.reshape(B, F, 4, 16, 16).permute(0, 2, 1, 3, 4)  # (B, C, F, h, w)
        emb = te(tok(caps, padding="max_length", max_length=L, truncation=True, return_tensors="pt").input_ids).last_hidden_state
    n = torch.randn_like(z); t = torch.randint(0, 1000, (B,))
    a = ac[t].sqrt().view(-1, 1, 1, 1, 1); sg = (1 - ac[t]).sqrt().view(-1, 1, 1, 1, 1)
    zt = a * z + sg * n; v = a * n - sg * z
    pred = unet(zt, t, emb)
    snr = ac[t] / (1 - ac[t]); w = torch.clamp(snr, max=5.0) / (snr + 1)
    loss = (w * ((pred - v) ** 2).mean((1, 2, 3, 4))).mean()
    loss.backward(); torch.nn.utils.clip_grad_norm_(list(train.values()), 1.0); opt.step(); opt.zero_grad()
    d = min(0.99, (1 + s) / (10 + s))
    with torch.no_grad():
        for nme, p in train.items(): ema[nme].lerp_(p.detach(), 1 - d)
    if s % 25 == 0:
        alphas = [torch.sigmoid(p).mean().item() for nme, p in unet.named_parameters() if "merge" in nme]
        print(f"step {s} loss {loss.item():.4f} alpha~{np.mean(alphas) if alphas else 0:.3f} t {time.time()-t0:.0f}", flush=True)
    if s % 100 == 99: save()
    s += 1
save(); print("done", s, time.time() - t0, flush=True)
