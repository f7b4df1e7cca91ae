from common import *
import copy
from diffusers import UNet2DConditionModel, AutoencoderKL, DDPMScheduler
from transformers import CLIPTextModel, CLIPTokenizer
from t2v.models import inflate
MINUTES = float(sys.argv[1]); B = int(sys.argv[2]) if len(sys.argv) > 2 else 2
DM = os.environ.get("DM", "runs/default_model")
F = 16; IMG = DM + "/image"; OUT = DM + "/video"; OUT2 = DM + "/video2"
os.makedirs(OUT, exist_ok=True)
torch.manual_seed(0)
vae = AutoencoderKL.from_pretrained(DM + "/vae").eval().requires_grad_(False); sf = vae.config.scaling_factor
tok = CLIPTokenizer.from_pretrained(IMG + "/tokenizer"); L = tok.model_max_length
te = CLIPTextModel.from_pretrained(IMG + "/text_encoder").eval().requires_grad_(False)
from t2v.models.video_unet import VideoUNet
unet = VideoUNet.from_pretrained(OUT2 + "/unet")  # continue from stage 3b (EMA weights)
import re
# + the spatial cross-attention (text -> features): ShapesWorld frames look the same whatever the direction, so the image
# model had no reason to carry the direction word into its features, and the temporal layers only see features
train = {n: p for n, p in unet.named_parameters() if n in unet.trainable_parameters() or re.search(r"attn2\.(to_q|to_k|to_v|to_out)", n)}
for n, p in unet.named_parameters(): p.requires_grad_(n in train)
print("trainable", sum(p.numel() for p in train.values()))
sched = DDPMScheduler.from_pretrained(IMG + "/scheduler"); ac = sched.alphas_cumprod
LR = float(sys.argv[3]) if len(sys.argv) > 3 else 2e-3
opt = torch.optim.AdamW(train.values(), LR, weight_decay=0.0)
ema = {n: p.detach().clone() for n, p in train.items()}
def save():
    live = {n: p.detach().clone() for n, p in train.items()}
    with torch.no_grad():
        for n, p in train.items(): p.copy_(ema[n])
    unet.save_pretrained(DM + "/video3/unet")
    with torch.no_grad():
        for n, p in train.items(): p.copy_(live[n])
t0 = time.time(); s = 0
while time.time() - t0 < MINUTES * 60:
    for g in opt.param_groups: g["lr"] = LR * min(1, (s + 1) / 30)
    x, caps = clips(7, s * B, B, F)  # (B,3,F,64,64)
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
    w = torch.ones(B)  # plain v loss: high-noise steps, where the trajectory is laid out, keep their weight
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
