from common import *
import copy
from diffusers import UNet2DConditionModel, AutoencoderKL, DDPMScheduler
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
import t2v.models.tokenizer as tokmod
from t2v.metrics.shapes_oracle import read_frame
MINUTES = float(sys.argv[1])
L = 16
OUT = DM + "/image"
os.makedirs(OUT, exist_ok=True)
tok = copy.deepcopy(tokmod.clip_tokenizer()); tok.model_max_length = L
tok = CLIPTokenizer.from_pretrained(OUT + "/tokenizer")
print("tok max", tok.model_max_length, tok("a red circle moving right").input_ids)
torch.manual_seed(0)
vae = AutoencoderKL.from_pretrained(DM + "/vae").eval().requires_grad_(False)
sf = vae.config.scaling_factor
te = CLIPTextModel.from_pretrained(OUT + "/text_encoder")
unet = UNet2DConditionModel.from_pretrained(OUT + "/unet")
sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction")
params = list(unet.parameters()) + list(te.parameters())
opt = torch.optim.AdamW(params, 1e-3, weight_decay=0.01)
ema_u, ema_t = copy.deepcopy(unet).requires_grad_(False), copy.deepcopy(te).requires_grad_(False)
ac = sched.alphas_cumprod
def ids(caps):
    return tok(caps, padding="max_length", max_length=L, truncation=True, return_tensors="pt").input_ids
def save():
    ema_u.save_pretrained(OUT + "/unet"); ema_t.save_pretrained(OUT + "/text_encoder")
    sched.save_pretrained(OUT + "/scheduler")
B = 32
t0 = time.time(); s = 0
while time.time() - t0 < MINUTES * 60:
    lr = 8e-4 * min(1, (s + 1) / 20)
    for g in opt.param_groups: g["lr"] = lr
    x, caps = frames(4, s * B, B)
    caps = [c if torch.rand(()) > 0.1 else "" for c in caps]
    with torch.no_grad():
        z = vae.encode(x).latent_dist.sample() * sf
    n = torch.randn_like(z); t = torch.randint(0, 1000, (B,))
    a = ac[t].sqrt().view(-1, 1, 1, 1); sg = (1 - ac[t]).sqrt().view(-1, 1, 1, 1)
    zt = a * z + sg * n
    v = a * n - sg * z
    pred = unet(zt, t, te(ids(caps)).last_hidden_state).sample
    snr = ac[t] / (1 - ac[t])
    w = torch.clamp(snr, max=5.0) / (snr + 1)  # min-SNR-5 for v
    loss = (w * ((pred - v) ** 2).mean((1, 2, 3))).mean()
    loss.backward(); torch.nn.utils.clip_grad_norm_(params, 1.0); opt.step(); opt.zero_grad()
    d = min(0.99, (1 + s) / (10 + s))
    with torch.no_grad():
        for m, e in ((unet, ema_u), (te, ema_t)):
            for p, q in zip(m.parameters(), e.parameters()):
                q.lerp_(p, 1 - d)
    if s % 25 == 0:
        print(f"step {s} loss {loss.item():.4f} t {time.time()-t0:.0f}", flush=True)
    if s % 200 == 199:
        save()
    s += 1
save()
print("done", s, time.time() - t0, flush=True)
