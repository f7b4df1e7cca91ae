"""Issue 7 experiment: fine-tune a video model's temporal layers with conditional-mean targets at high noise.

At t >= t_min (SNR below ~1.4e-3 at 975 on the default cosine schedule) the noisy clip carries almost
nothing of its own x0, so the v-loss's minimiser there is E[x0 | caption] and most of its gradient is
noise: the spread of clips around that mean (in ShapesWorld, the object's random start, size and
speed). This replaces x0 for the high-noise samples by the mean latent of `--bank-clips` clips of the
same (color, shape, direction), precomputed once per held-in combination (same minimiser, far less
noise), and trains only those samples (`--clips 0`) or mixes them with ordinary clips at the stage-3
timesteps (`--clips N`, uniform shifted by 4). Written for the experiment, not the training loop: it
has no checkpoints or resume; it saves OUT (a model folder, EMA weights) every 250 steps.

    PYTHONPATH=src python tools/default_model/mean_targets.py MODEL OUT --steps 500 [--clips 0] [--mean-samples 4]
        [--only red,circle] [--t-min 975] [--lr 1e-3] [--bank-clips 48] [--color-balance 0.5]
        [--fg-weight 4] [--color-loss 1] [--clip-shift 1] [--clip-t-max 400] [--hard-means 100] [--uncond-samples 2]

`--color-balance P` draws both kinds of samples with per-color weights (1 / s_color)^P, where s_color
is the norm of the color's bank means minus the black clip's latent: in the default model's latent
space a green object moves the latent 2-11x less than the other colors (session 8,
docs/default_model.md), so its motion is buried in the noise earliest and its loss counts least.
`--color-loss Q` instead (or as well) weights each sample's loss by (mean s / s_color)^Q, normalised
to mean 1 over the colors. `--fg-weight L` weights the ordinary clips' loss by 1 + L on the latent
cells the object covers (its pixels, max-pooled to the latent grid), as stage 1b of the autoencoder
weighted its foreground: the object is ~6% of a frame and its shape is all the oracle reads.
`--hard-means K` recomputes, every K steps, each combination's bias at t = 999 (`mean_errors`: the
squared distance of the model's x0 estimate to the bank mean, over the mean's own signal power) and
multiplies each combination's draw weight for the mean samples by (1 + its bias / the mean bias) / 2:
the combinations whose path drifts most (session 12: green, then blue and the triangles) get the
most samples, and none falls below half its old share (session 12: it did not lower the bias).
`--uncond-samples N` adds N empty-caption samples per step at t in [t_min, 999] whose x0 is the mean
of all bank means: E[x0 | no caption] of the training data, the target of the unconditional branch
that classifier-free guidance subtracts. Mean samples always carry a caption, so without them that
branch learns its high-noise guess only from the ordinary clips' 10% empty captions (session 12: the
shipped model's empty caption drew a path moving down and left at t = 999, which guidance 4 adds,
three times over and reversed, to every prompt's path: the wrong directions were mostly up and
right). Measured there: it made that path static and the oracle worse (docs/default_model.md).
`--clip-shift S` and `--clip-t-max T` change the ordinary clips' timesteps (default: stage 3's, uniform
over [0, 1000) shifted by 4, so only ~10% fall below t = 300, where the shipped sampler's last step,
t = 222, predicts the clip the decoder draws).
"""
import argparse
import random
import shutil
import time
from pathlib import Path

import torch
from diffusers import DDPMScheduler
from diffusers.training_utils import EMAModel

from t2v.data.shapes import HELD_IN, ShapesWorldDataset, caption, clip_to_video, item_rng, render_clip, sample_params
from t2v.diffusion.loss import sample_timesteps
from t2v.pipelines import TextToVideoPipeline


def mean_bank(pipe: TextToVideoPipeline, clips: int) -> torch.Tensor:
    """(88, C, 16, h, w): per held-in combination, the mean latent of `clips` rendered clips."""
    bank = []
    for k, combo in enumerate(HELD_IN):
        videos = []
        for i in range(clips):
            p = sample_params(item_rng(10_000 + k, i), combinations=(combo,))
            videos.append(clip_to_video(render_clip(p.color, p.shape, p.motion, num_frames=16, object_size=p.object_size,
                                                    displacement=p.displacement, start=p.start)))
        latents = torch.cat([pipe.encode_video(torch.stack(videos[j:j + 16])) for j in range(0, clips, 16)])
        bank.append(latents.mean(0))
    return torch.stack(bank)


@torch.no_grad()
def mean_guess(pipe: TextToVideoPipeline, sched: DDPMScheduler, x0: torch.Tensor, caption_text: str, draws: int,
               t: int, generator: torch.Generator) -> torch.Tensor:
    """The model's x0 estimate at timestep t for `caption_text`, from `draws` noisings of x0 (C, F, h, w),
    averaged over the draws -> (C, F, h, w)."""
    tt = torch.full((draws,), t, dtype=torch.long)
    xt = sched.add_noise(x0.expand(draws, *x0.shape), torch.randn((draws, *x0.shape), generator=generator), tt)
    abar = sched.alphas_cumprod[t]
    v = pipe.unet(xt, tt, pipe.encode_text([caption_text] * draws))
    return (abar.sqrt() * xt - (1 - abar).sqrt() * v).mean(0)  # v-prediction's x0 estimate


def mean_errors(pipe: TextToVideoPipeline, bank: torch.Tensor, sched: DDPMScheduler, draws: int = 4, t: int = 999,
                seed: int = 0) -> torch.Tensor:
    """(88,): per held-in combination, the squared distance between the bank's mean latent and the
    model's x0 estimate at timestep t from the combination's caption (`mean_guess`): the bias of the
    model's guess of E[x0 | caption] where the direction is decided (a path that drifts across its
    motion shows up here, and classifier-free guidance multiplies it)."""
    g = torch.Generator().manual_seed(seed)
    return torch.stack([(mean_guess(pipe, sched, bank[i], caption(*combo), draws, t, g) - bank[i]).square().mean()
                        for i, combo in enumerate(HELD_IN)])


def uncond_bias(pipe: TextToVideoPipeline, bank: torch.Tensor, sched: DDPMScheduler, black: torch.Tensor,
                draws: int = 8) -> float:
    """The empty caption's x0 estimate at t = 999 against the mean of all bank means (the training
    data's unconditional mean): squared distance over that mean's power around `black` (the black
    clip's latent).
    Classifier-free guidance, u + g (c - u), adds (g - 1) times any path that u draws, reversed, to
    every prompt's path (session 12)."""
    target = bank.mean(0)
    guess = mean_guess(pipe, sched, target, "", draws, 999, torch.Generator().manual_seed(0))
    return ((guess - target).square().mean() / (target - black).square().mean()).item()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model"); ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--clips", type=int, default=0, help="ordinary clips per step (stage-3 timesteps)")
    ap.add_argument("--mean-samples", type=int, default=4, help="conditional-mean samples per step, t in [t_min, 999]")
    ap.add_argument("--t-min", type=int, default=975)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--bank-clips", type=int, default=48)
    ap.add_argument("--only", default=None, help="COLOR,SHAPE: mean samples of that color and shape only")
    ap.add_argument("--color-balance", type=float, default=0.0, help="P: draw colors with weights (1 / latent signal)^P")
    ap.add_argument("--color-loss", type=float, default=0.0, help="Q: weight each sample's loss by (mean signal / signal)^Q")
    ap.add_argument("--fg-weight", type=float, default=0.0, help="L: ordinary clips' loss weighted 1 + L on the object's cells")
    ap.add_argument("--clip-shift", type=float, default=4.0, help="S: ordinary clips' timesteps uniform, shifted by S (stage 3's 4)")
    ap.add_argument("--clip-t-max", type=int, default=1000, help="ordinary clips' timesteps drawn below this")
    ap.add_argument("--uncond-samples", type=int, default=0,
                    help="empty-caption samples per step at t in [t_min, 999] with x0 = the mean of all bank means")
    ap.add_argument("--hard-means", type=int, default=0,
                    help="K: every K steps, draw the mean samples' combinations by the model's relative bias there")
    a = ap.parse_args()
    torch.manual_seed(0); random.seed(0)
    pipe = TextToVideoPipeline.from_pretrained(a.model)
    unet = pipe.unet
    unet.set_trainable(); unet.train()
    params = list(unet.trainable_parameters().values())
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0)
    ema = EMAModel(params, decay=0.99)
    sched = DDPMScheduler.from_config(pipe.scheduler_config)
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    bank_file = out / f"mean_bank_{a.bank_clips}.pt"
    t0 = time.time()
    bank = torch.load(bank_file) if bank_file.is_file() else mean_bank(pipe, a.bank_clips)
    torch.save(bank, bank_file)
    print(f"bank {tuple(bank.shape)} in {time.time() - t0:.0f}s", flush=True)
    choices = [i for i, c in enumerate(HELD_IN) if a.only is None or list(c[:2]) == a.only.split(",")]
    data = ShapesWorldDataset(10 ** 6, seed=11, num_frames=16)
    if a.color_balance or a.color_loss or a.hard_means or a.uncond_samples:
        with torch.no_grad():
            black = pipe.encode_video(-torch.ones(1, 3, 16, 64, 64))[0]
        dist = torch.stack([(m - black).norm() for m in bank])  # (88,) each mean's distance from the black clip
        power = dist.square() / bank[0].numel()  # its signal power (mean square)
    mean_w = None
    if a.color_balance or a.color_loss:
        signal = {}
        for i, c in enumerate(HELD_IN):
            signal.setdefault(c[0], []).append(dist[i].item())
        weight = {col: (sum(v) / len(v)) ** -a.color_balance for col, v in signal.items()}
        top = max(weight.values())
        print("color weights", {col: round(w / sum(weight.values()), 3) for col, w in weight.items()}, flush=True)
        choice_w = [weight[HELD_IN[i][0]] for i in choices]
        mean_w = choice_w if a.color_balance else None
        if a.color_loss:
            mean_s = sum(sum(v) / len(v) for v in signal.values()) / len(signal)
            loss_w = {col: (mean_s / (sum(v) / len(v))) ** a.color_loss for col, v in signal.items()}
            loss_w = {col: w * len(loss_w) / sum(loss_w.values()) for col, w in loss_w.items()}
            print("color loss weights", {col: round(w, 3) for col, w in loss_w.items()}, flush=True)

    def draw_item() -> tuple[dict, str]:
        if not a.color_balance:
            index = random.randrange(len(data))  # the stage 5-7 runs' draws, unchanged
            return data[index], data.params(index).color
        while True:  # an ordinary clip, its color accepted with probability weight / top
            index = random.randrange(len(data))
            if random.random() < weight[data.params(index).color] / top:
                return data[index], data.params(index).color
    g = torch.Generator().manual_seed(0)
    t0, losses = time.time(), []
    for step in range(a.steps):
        drawn = [draw_item() for _ in range(a.clips)]
        items = [it for it, _ in drawn]
        x0 = pipe.encode_video(torch.stack([it["video"] for it in items])) if items else bank[:0]
        caps = [it["caption"] if random.random() > 0.1 else "" for it in items]
        t = sample_timesteps(a.clip_t_max, a.clips, shift=a.clip_shift, generator=g).long()
        if a.hard_means and step % a.hard_means == 0:
            bias = mean_errors(pipe, bank, sched, seed=step) / power  # relative to each mean's own signal
            rel = bias[choices] / bias[choices].mean()
            base = choice_w if a.color_balance else [1.0] * len(choices)
            mean_w = [b * (0.5 + 0.5 * r) for b, r in zip(base, rel.tolist())]  # never below half the old weight
            worst = [" ".join(HELD_IN[choices[j]]) for j in rel.argsort(descending=True)[:3].tolist()]
            print(f"{step} relative bias at t = 999: mean {bias[choices].mean():.3f}, worst {worst}", flush=True)
        idx = (random.choices(choices, weights=mean_w, k=a.mean_samples) if mean_w is not None
               else [random.choice(choices) for _ in range(a.mean_samples)])
        colors = [c for _, c in drawn] + [HELD_IN[i][0] for i in idx] + [""] * a.uncond_samples
        x0 = torch.cat([x0, bank[idx], bank.mean(0, keepdim=True).expand(a.uncond_samples, *bank.shape[1:])])
        caps += [caption(*HELD_IN[i], phrasing=random.randrange(4)) for i in idx] + [""] * a.uncond_samples
        t = torch.cat([t, torch.randint(a.t_min, 1000, (a.mean_samples + a.uncond_samples,), generator=g)])
        noise = torch.randn(x0.shape, generator=g)
        xt, target = sched.add_noise(x0, noise, t), sched.get_velocity(x0, noise, t)
        with torch.no_grad():
            text = pipe.encode_text(caps)
        err = (unet(xt, t, text) - target).square()  # (B, C, F, h, w)
        w = torch.ones(err.shape[0], 1, *err.shape[2:])
        if a.fg_weight and items:  # the object's pixels (not black), max-pooled to the latent grid
            fg = torch.stack([it["video"].amax(0) > -0.8 for it in items]).float()  # (clips, F, 64, 64)
            fg = torch.nn.functional.max_pool2d(fg, fg.shape[-1] // err.shape[-1])  # (clips, F, h, w)
            w[: len(items), 0] += a.fg_weight * fg
        w = w / w.mean()  # the foreground weight moves the loss within a batch, not its scale
        if a.color_loss:
            w = w * torch.tensor([loss_w.get(c, 1.0) for c in colors]).view(-1, 1, 1, 1, 1)
        loss = (w * err).mean()
        opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(params, 1.0); opt.step(); ema.step(params)
        losses.append(loss.item())
        if (step + 1) % 50 == 0:
            print(step + 1, f"{time.time() - t0:.0f}s loss {sum(losses[-50:]) / 50:.4f}", flush=True)
        if (step + 1) % 250 == 0 or step + 1 == a.steps:
            ema.store(params); ema.copy_to(params)
            if a.uncond_samples:
                print(f"{step + 1} unconditional bias at t = 999: {uncond_bias(pipe, bank, sched, black):.3f}", flush=True)
            shutil.copytree(a.model, out, dirs_exist_ok=True)
            unet.save_pretrained(out / "unet")
            ema.restore(params)
            print("saved", out, step + 1, flush=True)


if __name__ == "__main__":
    main()
