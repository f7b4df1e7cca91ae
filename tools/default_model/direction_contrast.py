"""Issue 7 experiment (run I of docs/default_model.md): fine-tune a video model's temporal layers with
the v-loss (timesteps shifted by 4) plus a direction-contrastive term: at t > 900 the loss with the true
caption should be at least 5% below the loss with the same caption and another direction
(softplus of the log-ratio). Prints the 50-step mean of (true - wrong) loss at t > 900; writes OUT
with the EMA weights.

    PYTHONPATH=src python tools/default_model/direction_contrast.py MODEL_DIR OUT STEPS [LAMBDA]
"""
import sys, random, time, torch, torch.nn.functional as F
from diffusers import DDPMScheduler
from t2v.pipelines import TextToVideoPipeline
from t2v.data.shapes import ShapesWorldDataset, caption, PHRASINGS
from t2v.diffusion.loss import sample_timesteps
torch.set_num_threads(1); torch.manual_seed(0); random.seed(0)
src, out, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
lam = float(sys.argv[4]) if len(sys.argv) > 4 else 1.0
pipe = TextToVideoPipeline.from_pretrained(src)
unet = pipe.unet; unet.set_trainable(); unet.train()
params = list(unet.trainable_parameters().values())
ema = [p.detach().clone() for p in params]
opt = torch.optim.AdamW(params, lr=5e-4, weight_decay=0)
sched = DDPMScheduler.from_config(pipe.scheduler_config)
ds = ShapesWorldDataset(100000, seed=11, num_frames=16)
dirs = ["left", "right", "up", "down"]
g = torch.Generator().manual_seed(0)
t0 = time.time(); run = []
for step in range(steps):
    items = [ds[random.randrange(100000)] for _ in range(2)]
    x0 = pipe.encode_video(torch.stack([it["video"] for it in items]))
    k = [random.randrange(len(PHRASINGS)) for _ in items]
    drop = [random.random() < 0.1 for _ in items]
    true = ["" if d else caption(it["color"], it["shape"], it["motion"], kk) for it, kk, d in zip(items, k, drop)]
    wrong = [caption(it["color"], it["shape"], random.choice([m for m in dirs if m != it["motion"]]), kk) for it, kk in zip(items, k)]
    with torch.no_grad():
        e = pipe.encode_text(true + wrong)
    t = sample_timesteps(1000, 2, shift=4.0, generator=g)
    noise = torch.randn(x0.shape, generator=g)
    xt = sched.add_noise(x0, noise, t); target = sched.get_velocity(x0, noise, t)
    pred = unet(torch.cat([xt, xt]), torch.cat([t, t]), e)
    l = (pred - torch.cat([target, target])).square().mean(dim=(1, 2, 3, 4))
    lt, lw = l[:2], l[2:]
    use = ((t > 900) & ~torch.tensor(drop)).float()
    aux = (F.softplus((torch.log(lt) - torch.log(lw) + 0.05) * 20) / 20 * use).sum() / use.sum().clamp(min=1)
    loss = lt.mean() + lam * aux
    opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(params, 1.0); opt.step()
    with torch.no_grad():
        for e_, p in zip(ema, params):
            e_.lerp_(p, 0.01)
    run.append(((lt - lw) * use).sum().item() / max(use.sum().item(), 1))
    if step % 50 == 0:
        print(step, f"{time.time() - t0:.0f}s loss {lt.mean().item():.4f} gap(true-wrong, t>900) mean50 {sum(run[-50:]) / len(run[-50:]):+.4f}", flush=True)
with torch.no_grad():
    for e_, p in zip(ema, params):
        p.copy_(e_)
import shutil
shutil.copytree(src, out, dirs_exist_ok=True)
unet.to(torch.float16).save_pretrained(out + "/unet")
print("wrote", out)
