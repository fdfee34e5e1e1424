"""Training of the shapes model, in four resumable stages (scripts/train_shapes.py runs them).

1. `vae-spatial`: the 2-D VAE decoder (SDXL layout) with a small training-only encoder, on single frames.
2. `vae-temporal`: the temporal VAE decoder (Open-Sora layout) with its training-only encoder, on 17-frame clips of
   frozen 2-D latents; the loss also looks at pixels through the frozen 2-D decoder.
3. `latents`: every training video encoded once; per-channel shift/scale measured (the VAE's normalisation).
4. `dit`: the T5 encoder and STDiT3 trained together with Open-Sora 1.2's rectified-flow objective
   (x_t = (1 - τ)·x0 + τ·ε, target velocity x0 - ε, 10% caption dropout to the learned-null caption).

Each stage saves a checkpoint (model, optimiser, data RNG) every few minutes and on finishing, written under a
temporary name and renamed; run again, a stage continues from its checkpoint, and a finished stage is skipped.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import multiprocessing
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from sora.configs import get_stdit3_config, get_t5_config
from sora.folder_weights import load_folder_modules
from sora.shapes_world import (
    FPS,
    NUM_FRAMES,
    SIZE,
    Attributes,
    Pair,
    Scene,
    sample_video,
    training_caption,
    training_combinations,
    training_pairs,
)
from sora.stdit3 import MASK_VALUE, STDiT3, stdit_block_pair, stdit_part1, stdit_part2
from sora.t5_encoder import T5EncoderModel, additive_mask
from sora.unigram import UnigramTokenizer
from sora.vae import OpenSoraVAEDecoder
from sora.vae_config import get_vae_config
from sora.vae_encoders import SpatialEncoder, TemporalEncoder

CONFIG_NAME = "shapes"
CHUNK = get_vae_config(CONFIG_NAME).micro_frame_size  # frames per temporal-VAE chunk
LATENT_NOISE = 0.1  # fixed-variance latent noise in VAE training: decoders learn to tolerate imprecise latents
LATENT_PENALTY = 1e-3  # keeps the deterministic latents O(1) so that the fixed noise stays meaningful
CHECKPOINT_EVERY_S = 300.0
LOG_EVERY_S = 30.0


def log(message: str) -> None:
    print(time.strftime("%H:%M:%S"), message, flush=True)


# ============================================================================================
# Checkpoints
# ============================================================================================


def save_checkpoint(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save(state, partial)
    partial.replace(path)


def load_checkpoint(path: Path) -> Optional[dict]:
    # Checkpoints hold RNG states and world attributes, which newer torch refuses to unpickle by default.
    return torch.load(path, map_location="cpu", weights_only=False) if path.exists() else None


@dataclass
class Loop:
    """Step counting, periodic checkpoints and a wall-clock budget shared by the stages.

    step_fn returns detached loss tensors: summing them without `.item()` keeps a GPU from waiting every step."""

    steps: int
    budget_s: float
    save: Callable[[int, bool], None]
    timed: bool = False  # the budget running out finishes the stage instead of leaving it to be resumed

    def run(self, start: int, step_fn: Callable[[int], Dict[str, torch.Tensor]]) -> int:
        began = last_save = last_log = time.time()
        totals: Dict[str, torch.Tensor] = {}
        window = 0  # steps summed in totals since the last log line
        step = start
        while step < self.steps and time.time() - began < self.budget_s:
            for key, value in step_fn(step).items():
                totals[key] = totals[key] + value if key in totals else value
            step += 1
            window += 1
            if time.time() - last_log > LOG_EVERY_S or step == self.steps or time.time() - began >= self.budget_s:
                means = " ".join(f"{k} {float(v) / window:.5f}" for k, v in totals.items())
                log(f"step {step}/{self.steps} {means} ({(time.time() - began) / (step - start):.3f} s/step)")
                totals, window, last_log = {}, 0, time.time()
            if time.time() - last_save > CHECKPOINT_EVERY_S:
                self.save(step, False)
                last_save = time.time()
        self.save(step, step >= self.steps or self.timed)
        return step


def _rng_state(rng: random.Random) -> dict:
    return {"python": rng.getstate(), "torch": torch.get_rng_state()}


def _restore_rng(rng: random.Random, state: dict) -> None:
    rng.setstate(state["python"])
    torch.set_rng_state(state["torch"])


Modules = Dict[str, torch.nn.Module]


def _resume(state: Optional[dict], modules: Modules, opt, rng: random.Random) -> int:
    """Loads a stage's checkpoint into its modules, optimiser and data RNG; returns the step to continue from."""
    if not state:
        return 0
    for key, module in modules.items():
        module.load_state_dict(state[key])
    opt.load_state_dict(state["opt"])
    _restore_rng(rng, state["rng"])
    return state["step"]


def _stage_state(step: int, done: bool, modules: Modules, opt, rng: random.Random, **extra) -> dict:
    weights = {key: module.state_dict() for key, module in modules.items()}
    return dict(step=step, done=done, opt=opt.state_dict(), rng=_rng_state(rng), **weights, **extra)


# ============================================================================================
# Data
# ============================================================================================


def to_unit(frames: np.ndarray) -> torch.Tensor:
    """uint8 [..., H, W, 3] -> float [..., 3, H, W] in [-1, 1]."""
    tensor = torch.from_numpy(frames).float().div(127.5).sub(1.0)
    return tensor.movedim(-1, -3)


def _render_job(job: Tuple[Attributes, int]) -> np.ndarray:
    return sample_video(*job)


class TrainingVideos:
    """The training set, rendered once in parallel: every training combination × `variants` trajectories, and
    `pairs` two-object scenes (the two-object world; none by default).

    All stages draw from these videos (the latents stage encodes exactly them), so rendering happens once per run
    instead of in every step, where it would keep a GPU waiting. It happens on first use: a run whose VAE and
    latents stages are finished already renders nothing."""

    def __init__(self, variants: int, workers: Optional[int] = None, pairs: int = 0):
        combos = training_combinations()
        scenes: List[Scene] = [c for _ in range(variants) for c in combos] + list(training_pairs(pairs))
        self.jobs = [(scene, 1000 * index + 7) for index, scene in enumerate(scenes)]
        self.workers = workers

    @functools.cached_property
    def videos(self) -> np.ndarray:
        began = time.time()
        with multiprocessing.get_context("fork").Pool(self.workers) as pool:
            videos = np.stack(pool.map(_render_job, self.jobs, chunksize=16))
        log(f"rendered {len(self.jobs)} training videos in {time.time() - began:.0f} s")
        return videos

    @property
    def attrs(self) -> List[Scene]:
        return [combo for combo, _ in self.jobs]

    def clip(self, rng: random.Random, frames: int) -> np.ndarray:
        """`frames` consecutive frames of a random training video, starting at a chunk boundary."""
        video = self.videos[rng.randrange(len(self.videos))]
        start = rng.randrange(0, NUM_FRAMES - frames + 1, CHUNK) if frames > 1 else rng.randrange(NUM_FRAMES)
        return video[start : start + frames]


# ============================================================================================
# Stage 1: 2-D VAE
# ============================================================================================


def _adamw(params, lr: float):
    return torch.optim.AdamW(params, lr=lr, weight_decay=0.0)


def _warmup_lr(opt, step: int, base: float, warmup: int = 100) -> None:
    for group in opt.param_groups:
        group["lr"] = base * min(1.0, (step + 1) / warmup)


def _step(opt, loss: torch.Tensor, params) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    # Loss spikes (a rare batch of near-flat frames) would otherwise undo minutes of training in one step.
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()


def train_vae_spatial(
    work: Path, steps: int, budget_s: float, batch: int = 32, lr: float = 5e-4,
    videos: Optional[TrainingVideos] = None, device: str = "cpu", timed: bool = False,
    init_from: Optional[Path] = None,
) -> None:
    """`init_from`: a model folder whose 2-D decoder is kept as it is (frozen); only the encoder learns to invert it."""
    path = work / "vae_spatial.pt"
    state = load_checkpoint(path)
    if state and state["done"]:
        log("vae-spatial: done already")
        return
    decoder = _folder_vae(init_from) if init_from else OpenSoraVAEDecoder(get_vae_config(CONFIG_NAME))
    decoder = decoder.spatial_vae.module.to(device)
    encoder = SpatialEncoder().to(device)
    params = [*encoder.parameters(), *([] if init_from else decoder.parameters())]
    decoder.requires_grad_(init_from is None)
    opt = _adamw(params, lr)
    rng = random.Random(1)
    torch.manual_seed(1)
    modules = {"encoder": encoder, "decoder": decoder}
    start = _resume(state, modules, opt, rng)
    videos = videos or TrainingVideos(variants=1)

    def step_fn(step: int) -> Dict[str, torch.Tensor]:
        _warmup_lr(opt, step, lr)
        x = to_unit(np.concatenate([videos.clip(rng, 1) for _ in range(batch)])).to(device)
        mu = encoder(x)
        recon = decoder.decode(mu + LATENT_NOISE * torch.randn_like(mu))
        l1 = (recon - x).abs().mean()
        mse = (recon - x).pow(2).mean()
        penalty = mu.pow(2).mean()
        _step(opt, l1 + mse + LATENT_PENALTY * penalty, params)
        return {"l1": l1.detach(), "mse": mse.detach(), "mu2": penalty.detach()}

    def save(step: int, done: bool) -> None:
        save_checkpoint(path, _stage_state(step, done, modules, opt, rng))

    log(f"vae-spatial: from step {start}")
    Loop(steps, budget_s, save, timed).run(start, step_fn)


def _folder_vae(model_dir: Path) -> OpenSoraVAEDecoder:
    return modules_from_folder(model_dir)[2]


def load_spatial(work: Path, device: str = "cpu") -> Tuple[SpatialEncoder, torch.nn.Module]:
    state = load_checkpoint(work / "vae_spatial.pt")
    if not state or not state["done"]:
        raise SystemExit("vae-spatial has not finished; run that stage first")
    encoder = SpatialEncoder()
    encoder.load_state_dict(state["encoder"])
    decoder = OpenSoraVAEDecoder(get_vae_config(CONFIG_NAME)).spatial_vae.module
    decoder.load_state_dict(state["decoder"])
    for module in (encoder, decoder):
        module.to(device).eval().requires_grad_(False)
    return encoder, decoder


def encode_frames(encoder: SpatialEncoder, frames: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    """[N, 3, H, W] -> [N, 4, h, w] latent means."""
    with torch.no_grad():
        return torch.cat([encoder(piece) for piece in frames.split(chunk)])


# ============================================================================================
# Stage 2: temporal VAE
# ============================================================================================


def _device_of(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


def clips_to_latents(encoder: SpatialEncoder, clips: np.ndarray) -> torch.Tensor:
    """uint8 [B, F, H, W, 3] -> 2-D latents [B, 4, F, h, w], on the encoder's device."""
    batch, frames = clips.shape[:2]
    flat = to_unit(clips.reshape(batch * frames, *clips.shape[2:])).to(_device_of(encoder))
    return encode_frames(encoder, flat).unflatten(0, (batch, frames)).transpose(1, 2)


def measure_scaling(encoder: SpatialEncoder, rng: random.Random, videos: TrainingVideos, samples: int = 256) -> float:
    """1 / std of the 2-D latents: Open-Sora multiplies them by this factor before the temporal VAE."""
    frames = np.concatenate([videos.clip(rng, 1) for _ in range(samples)])
    return float(1.0 / encode_frames(encoder, to_unit(frames).to(_device_of(encoder))).std())


def train_vae_temporal(
    work: Path, steps: int, budget_s: float, batch: int = 16, lr: float = 5e-4,
    videos: Optional[TrainingVideos] = None, device: str = "cpu", timed: bool = False,
    init_from: Optional[Path] = None,
) -> None:
    """`init_from`: a model folder whose temporal decoder and 2-D latent scaling are kept (decoder frozen)."""
    path = work / "vae_temporal.pt"
    state = load_checkpoint(path)
    if state and state["done"]:
        log("vae-temporal: done already")
        return
    spatial_encoder, spatial_decoder = load_spatial(work, device)
    folder = _folder_vae(init_from) if init_from else None
    temporal = (folder or OpenSoraVAEDecoder(get_vae_config(CONFIG_NAME))).temporal_vae.to(device)
    encoder = TemporalEncoder().to(device)
    params = [*encoder.parameters(), *([] if init_from else temporal.parameters())]
    temporal.requires_grad_(init_from is None)
    opt = _adamw(params, lr)
    rng = random.Random(2)
    torch.manual_seed(2)
    modules = {"encoder": encoder, "temporal": temporal}
    start = _resume(state, modules, opt, rng)
    videos = videos or TrainingVideos(variants=1)
    if state:
        scaling = state["scaling"]
    elif folder is not None:
        scaling = folder.cfg.spatial.scaling_factor
    else:
        scaling = measure_scaling(spatial_encoder, rng, videos)
    log(f"vae-temporal: from step {start}, 2-D latent scaling factor {scaling:.4f}")

    def step_fn(step: int) -> Dict[str, torch.Tensor]:
        _warmup_lr(opt, step, lr)
        clips = np.stack([videos.clip(rng, CHUNK) for _ in range(batch)])
        target = clips_to_latents(spatial_encoder, clips) * scaling
        mu = encoder(target)
        recon = temporal.decode(mu + LATENT_NOISE * torch.randn_like(mu))
        latent_mse = (recon - target).pow(2).mean()
        # Pixels of 4 random frames per clip through the frozen 2-D decoder: sharp edges matter more than latents.
        picks = [rng.randrange(CHUNK) for _ in range(4 * batch)]
        owners = [b for b in range(batch) for _ in range(4)]
        pixels = spatial_decoder.decode(recon[owners, :, picks] / scaling)
        truth = to_unit(clips[owners, picks]).to(device)
        pixel_l1 = (pixels - truth).abs().mean()
        penalty = mu.pow(2).mean()
        _step(opt, latent_mse + pixel_l1 + LATENT_PENALTY * penalty, params)
        return {"latent_mse": latent_mse.detach(), "pixel_l1": pixel_l1.detach(), "mu2": penalty.detach()}

    def save(step: int, done: bool) -> None:
        save_checkpoint(path, _stage_state(step, done, modules, opt, rng, scaling=scaling))

    Loop(steps, budget_s, save, timed).run(start, step_fn)


# ============================================================================================
# The trained VAE as one decoder module
# ============================================================================================


def load_vae(work: Path, device: str = "cpu") -> Tuple[OpenSoraVAEDecoder, SpatialEncoder, TemporalEncoder]:
    """The full decoder with trained weights and measured normalisation, plus both encoders (eval mode)."""
    spatial_encoder, spatial_decoder = load_spatial(work, device)
    t_state = load_checkpoint(work / "vae_temporal.pt")
    if not t_state or not t_state["done"]:
        raise SystemExit("vae-temporal has not finished; run that stage first")
    stats = load_checkpoint(work / "latent_stats.pt")
    base = get_vae_config(CONFIG_NAME)
    spatial_cfg = type(base.spatial)(**{**base.spatial.__dict__, "scaling_factor": t_state["scaling"]})
    extra = {} if stats is None else {"scale": tuple(stats["scale"]), "shift": tuple(stats["shift"])}
    cfg = type(base)(**{**base.__dict__, "spatial": spatial_cfg, **extra})
    vae = OpenSoraVAEDecoder(cfg)
    vae.spatial_vae.module.load_state_dict(spatial_decoder.state_dict())
    vae.temporal_vae.load_state_dict(t_state["temporal"])
    encoder = TemporalEncoder()
    encoder.load_state_dict(t_state["encoder"])
    for module in (vae, encoder):
        module.to(device).eval().requires_grad_(False)
    return vae, spatial_encoder, encoder


def encode_video(vae: OpenSoraVAEDecoder, spatial: SpatialEncoder, temporal: TemporalEncoder, video: np.ndarray):
    """uint8 [F, H, W, 3] (F a multiple of 17) -> un-normalised temporal latents [4, F/17·5, h, w]."""
    z = clips_to_latents(spatial, video[None]) * vae.cfg.spatial.scaling_factor
    with torch.no_grad():
        chunks = [temporal(piece) for piece in z.split(CHUNK, dim=2)]
    return torch.cat(chunks, dim=2)[0].cpu()


# ============================================================================================
# Stage 3: latents of the training set
# ============================================================================================


def encode_training_set(
    work: Path, variants: int, budget_s: float, videos: Optional[TrainingVideos] = None, device: str = "cpu",
    init_from: Optional[Path] = None,
) -> None:
    """`init_from`: keep that model folder's latent normalisation (its decoder and DiT work in it) instead of
    measuring one; the measured values are logged for comparison."""
    path = work / "latents.pt"
    state = load_checkpoint(path)
    if state and state["done"]:
        log("latents: done already")
        return
    vae, spatial, temporal = load_vae(work, device)
    videos = videos or TrainingVideos(variants)
    latents: List[torch.Tensor] = state["latents"] if state else []
    began = time.time()
    for index in range(len(latents), len(videos.jobs)):
        if time.time() - began > budget_s:
            break
        latents.append(encode_video(vae, spatial, temporal, videos.videos[index]).half())
        if (index + 1) % 500 == 0:
            log(f"latents: {index + 1}/{len(videos.jobs)}")
    attrs = videos.attrs
    done = len(latents) == len(attrs)
    stats = None
    if done:
        stacked = torch.stack(latents).float()
        shift = stacked.mean(dim=(0, 2, 3, 4))
        scale = stacked.std(dim=(0, 2, 3, 4))
        stats = dict(shift=shift.tolist(), scale=scale.tolist())
        log(f"latents: shift {[round(v, 3) for v in stats['shift']]} scale {[round(v, 3) for v in stats['scale']]}")
        if init_from:
            cfg = vae_config_of(init_from)
            stats = dict(shift=list(cfg.shift), scale=list(cfg.scale))
            log(f"latents: keeping the normalisation of {init_from}")
        save_checkpoint(work / "latent_stats.pt", stats)
    save_checkpoint(path, dict(done=done, latents=latents, attrs=attrs[: len(latents)]))


# ============================================================================================
# Stage 4: T5 + STDiT3 with rectified flow
# ============================================================================================


def dit_forward(
    stdit: STDiT3, z: torch.Tensor, t: torch.Tensor, y: torch.Tensor, y_valid: torch.Tensor, tdtm: bool = False
) -> torch.Tensor:
    """STDiT3.forward for a batch whose captions differ in length: y [B, L, Cy] padded, y_valid [B, L] bool.

    The runtime drops padding rows before cross-attention (one shared mask per call); training keeps them and masks
    them out of the block-diagonal mask instead, which gives each sample the same attention as at run time.
    """
    batch, length = y_valid.shape
    device = z.device
    pad = torch.zeros(1, dtype=torch.long, device=device)
    size = torch.tensor([float(SIZE)], device=device)
    all_rows = torch.ones(1, length, device=device)
    fps = torch.tensor([float(FPS)], device=device)
    x, y_tokens, t_mlp, frames, t_cond = stdit_part1(stdit, z, t, y[:, None], all_rows, fps, size, size, pad, pad)
    queries = (frames[0] // 2) * (x.shape[1] // frames[0]) if tdtm else x.shape[1]
    query_owner = torch.arange(batch, device=device).repeat_interleave(queries)
    key_owner = torch.arange(batch, device=device).repeat_interleave(length)
    allowed = (query_owner[:, None] == key_owner[None, :]) & y_valid.reshape(-1)[None, :]
    attn = torch.where(allowed, 0.0, MASK_VALUE)[None, None]
    for spatial, temporal in zip(stdit.spatial_blocks, stdit.temporal_blocks):
        x = stdit_block_pair(spatial, temporal, x, y_tokens, t_mlp, attn, frames, tdtm)
    return stdit_part2(stdit, z, x, t_cond, pad, pad)


class CaptionBatcher:
    """Tokenises captions like the runtime (ids + </s>), padded to the longest in the batch."""

    def __init__(self, tokenizer: UnigramTokenizer, eos_id: int = 1, pad_id: int = 0):
        self.tokenizer = tokenizer
        self.eos_id, self.pad_id = eos_id, pad_id
        self.cache: Dict[str, List[int]] = {}

    def ids(self, caption: str) -> List[int]:
        if caption not in self.cache:
            self.cache[caption] = self.tokenizer.encode(caption) + [self.eos_id]
        return self.cache[caption]

    def __call__(self, captions: Sequence[str]) -> Tuple[torch.Tensor, torch.Tensor]:
        rows = [self.ids(c) for c in captions]
        length = max(map(len, rows))
        ids = torch.full((len(rows), length), self.pad_id, dtype=torch.long)
        valid = torch.zeros(len(rows), length, dtype=torch.bool)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
            valid[i, : len(row)] = True
        return ids, valid


def sample_tau(batch: int, device: str = "cpu") -> torch.Tensor:
    """Noise levels in (0, 1): half logit-normal, half uniform. Not shifted by the run-time timestep transform
    (ratio 0.48 at 64×64, which moves sampling's steps to low noise): where the object appears is decided at high
    noise, and a model trained mostly at low noise drew backgrounds without objects."""
    logit_normal = torch.sigmoid(torch.randn(batch, device=device))
    uniform = torch.rand(batch, device=device)
    return torch.where(torch.rand(batch, device=device) < 0.5, logit_normal, uniform).clamp(1e-4, 1.0)


FOREGROUND_DEVIATION = 2.0  # summed |x0 - per-frame spatial median| over channels; ~20 % of latent positions
FOREGROUND_WEIGHT = 2.0  # extra loss weight there: the object is small, and the background dominates a plain MSE


def foreground_weights(x0: torch.Tensor) -> torch.Tensor:
    """[B, 1, T, H, W] loss weights: 1 + FOREGROUND_WEIGHT where the latent stands out from its frame's background."""
    median = x0.flatten(3).median(dim=3).values[..., None, None]
    standout = (x0 - median).abs().sum(dim=1, keepdim=True) > FOREGROUND_DEVIATION
    return 1.0 + FOREGROUND_WEIGHT * standout.float()


def build_text_and_dit(seed: int = 3) -> Tuple[T5EncoderModel, STDiT3]:
    torch.manual_seed(seed)
    t5 = T5EncoderModel(get_t5_config(CONFIG_NAME))
    with torch.no_grad():
        # HF's T5 init: embeddings N(0, 1), q scaled by d_kv^-1/2 (T5 attention has no score scaling).
        for name, param in t5.named_parameters():
            if name.endswith("SelfAttention.q.weight"):
                param.mul_(t5.config.d_kv**-0.5)
    stdit = STDiT3(get_stdit3_config(CONFIG_NAME))
    with torch.no_grad():
        # adaLN-zero as upstream initialises it: every block starts as the identity, the output as zero.
        for block in [*stdit.spatial_blocks, *stdit.temporal_blocks]:
            block.attn.proj.weight.zero_()
            block.cross_attn.proj.weight.zero_()
            block.mlp.fc2.weight.zero_()
        stdit.final_layer.linear.weight.zero_()
        stdit.final_layer.linear.bias.zero_()
    return t5, stdit


# Growing and shrinking are 2 of the 11 motions, and the slowest to learn: the first shapes model barely changed
# sizes (its videos grew 1.0–1.6× where the world grows 2.6×). Fine-tuning draws them more often.
SCALING_MOTIONS = ("growing", "shrinking")


def _scales(scene: Scene) -> bool:
    return any(a.motion in SCALING_MOTIONS for a in (scene.objects if isinstance(scene, Pair) else (scene,)))


# TDTM in training: Open-Sora 1.2 was trained on many frame counts and frame rates, so attention over the ⌊T/2⌋
# merged frames of TDTM stays within what it has seen. A model trained on one length only (the shapes model: 15 latent
# frames) has not: run with TDTM, its objects stopped moving. Training a share of steps through the merged forward
# (the runtime's own, the loss still on all T frames) gives it that robustness.
def train_dit(
    work: Path, tokenizer_path: Path, steps: int, budget_s: float, batch: int = 16, lr: float = 6e-4,
    ema_decay: float = 0.995, dropout: float = 0.1, device: str = "cpu", timed: bool = False, tdtm_share: float = 0.0,
    init_from: Optional[Path] = None, scaling_weight: float = 1.0,
) -> None:
    """`tdtm_share`: the fraction of steps whose forward runs with TDTM's frame-pair merging (see the comment above).
    `init_from`: a model folder whose T5 and STDiT weights training starts from (fine-tuning).
    `scaling_weight`: how much more often a growing or shrinking video is drawn than any other (see SCALING_MOTIONS)."""
    path = work / "dit.pt"
    state = load_checkpoint(path)
    if state and state["done"]:
        log("dit: done already")
        return
    data = load_checkpoint(work / "latents.pt")
    stats = load_checkpoint(work / "latent_stats.pt")
    if not data or not data["done"]:
        raise SystemExit("latents have not been encoded; run that stage first")
    shift = torch.tensor(stats["shift"]).reshape(1, 4, 1, 1, 1)
    scale = torch.tensor(stats["scale"]).reshape(1, 4, 1, 1, 1)
    latents = torch.stack(data["latents"]).float()
    latents = ((latents - shift) / scale).to(device)
    attrs: List[Scene] = data["attrs"]
    t5, stdit = modules_from_folder(init_from)[:2] if init_from else build_text_and_dit()
    t5.to(device)
    stdit.to(device)
    params = [*t5.parameters(), *stdit.parameters()]
    draw_weights = [scaling_weight if _scales(scene) else 1.0 for scene in attrs]
    opt = _adamw(params, lr)
    ema = {"t5": copy.deepcopy(t5.state_dict()), "stdit": copy.deepcopy(stdit.state_dict())}
    rng = random.Random(4)
    torch.manual_seed(4)
    modules = {"t5": t5, "stdit": stdit}
    start = _resume(state, modules, opt, rng)
    if state:
        ema = {key: {name: value.to(device) for name, value in weights.items()} for key, weights in state["ema"].items()}
    batcher = CaptionBatcher(UnigramTokenizer.from_file(tokenizer_path))
    null = stdit.y_embedder.y_embedding
    log(f"dit: {len(attrs)} videos, from step {start}")
    t5.train()
    stdit.train()

    def update_ema() -> None:
        with torch.no_grad():
            for key, module in (("t5", t5), ("stdit", stdit)):
                for name, value in module.state_dict().items():
                    if value.dtype.is_floating_point:
                        ema[key][name].mul_(ema_decay).add_(value, alpha=1 - ema_decay)

    def step_fn(step: int) -> Dict[str, torch.Tensor]:
        _warmup_lr(opt, step, lr, warmup=200)
        picks = rng.choices(range(len(attrs)), weights=draw_weights, k=batch)
        x0 = latents[picks]
        ids, valid = (v.to(device) for v in batcher([training_caption(attrs[i], rng) for i in picks]))
        y = t5(ids, additive_mask(valid))
        drop = torch.tensor([rng.random() < dropout for _ in picks], device=device)
        y = torch.where(drop[:, None, None], null[: y.shape[1]][None], y)
        tau = sample_tau(batch, device)
        noise = torch.randn_like(x0)
        view = tau.reshape(-1, 1, 1, 1, 1)
        x_t = (1 - view) * x0 + view * noise
        merged = rng.random() < tdtm_share
        velocity = dit_forward(stdit, x_t, tau * 1000, y, valid, tdtm=merged)[:, :4]
        loss = (foreground_weights(x0) * (velocity - (x0 - noise)).pow(2)).mean()
        _step(opt, loss, params)
        update_ema()
        return {"loss": loss.detach()}

    def save(step: int, done: bool) -> None:
        save_checkpoint(path, _stage_state(step, done, modules, opt, rng, ema=ema))

    Loop(steps, budget_s, save, timed).run(start, step_fn)


def vae_config_of(model_dir: Path):
    """The shapes VAE config with the normalisation a model folder's manifest records (measured when it was trained)."""
    vae = json.loads((model_dir / "manifest.json").read_text())["architecture"]["vae"]
    base = get_vae_config(CONFIG_NAME)
    spatial = dataclasses.replace(base.spatial, scaling_factor=vae["spatial"]["scaling_factor"])
    return dataclasses.replace(base, spatial=spatial, scale=tuple(vae["scale"]), shift=tuple(vae["shift"]))


def modules_from_folder(model_dir: Path) -> Tuple[T5EncoderModel, STDiT3, OpenSoraVAEDecoder]:
    """T5, STDiT3 and the VAE decoder of an exported shapes model folder (eval mode), e.g. models/shapes."""
    t5, stdit = build_text_and_dit()
    vae = OpenSoraVAEDecoder(vae_config_of(model_dir))
    load_folder_modules(model_dir, t5, stdit, vae)
    return t5.eval(), stdit.eval(), vae.eval()


def load_text_and_dit(work: Path, use_ema: bool = True) -> Tuple[T5EncoderModel, STDiT3]:
    state = load_checkpoint(work / "dit.pt")
    if not state:
        raise SystemExit("no dit checkpoint; run the dit stage first")
    t5, stdit = build_text_and_dit()
    t5.load_state_dict(state["ema"]["t5"] if use_ema else state["t5"])
    stdit.load_state_dict(state["ema"]["stdit"] if use_ema else state["stdit"])
    return t5.eval(), stdit.eval()
