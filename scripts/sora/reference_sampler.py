"""Reference rectified-flow sampler (Open-Sora 1.2 RFLOW), written from docs reference §B.

Used to produce the golden sampler data that the TypeScript pipeline must reproduce, so every rule of §B is
explicit here: raw timesteps (1 - i/N)·1000, optional rounding, the timestep transform (Open-Sora's or the iOS
app's), classifier-free guidance on a batch of two (conditional first), and Euler steps whose sizes sum to one.
The image/video-conditioning mask of §B is omitted: for text-to-video it is a no-op in both Open-Sora and the app.

The schedule is computed in float64 (Python floats); the latent update runs in float32 like the runtime.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, List

import torch

NUM_TIMESTEPS = 1000
BASE_RESOLUTION = 512 * 512  # pixels; Open-Sora's timestep transform is relative to a 512x512 image
BASE_NUM_FRAMES = 1
FRAMES_PER_LATENT_CHUNK = 17  # pixel frames that the VAE turns into LATENTS_PER_CHUNK latent frames
LATENTS_PER_CHUNK = 5
IOS_LATENT_FRAMES = 15  # the iOS app hard-codes Int(51/17)*5 whatever the frame count
TRANSFORMS = ("opensora", "ios")

# model(z2 [2b,C,T,H,W], t2 [2b] transformed timesteps, y2 [2b,1,300,Cy] (cond rows first), mask) -> [2b,2C,T,H,W]
Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class SamplerConfig:
    num_steps: int = 30
    cfg_scale: float = 7.0
    transform: str = "opensora"  # "opensora" | "ios"
    discrete_timesteps: bool = False  # round raw timesteps to integers before the transform


OPENSORA = SamplerConfig()  # upstream v1.2 inference config: transform on, no rounding
IOS = SamplerConfig(transform="ios", discrete_timesteps=True)  # the app always rounds


@dataclass
class StepTrace:
    index: int
    t: float  # transformed timestep given to the model, in [0, 1000]
    dt: float  # Euler step size in normalised time
    drift: torch.Tensor  # CFG-combined velocity v_pred, the quantity LPL compares between steps


@dataclass
class SampleResult:
    latent: torch.Tensor
    trace: List[StepTrace]


def _round_raw(t: float, transform: str) -> float:
    # Swift's round() (the app) goes half away from zero, Python's round() (Open-Sora) half to even. They differ
    # only on exact .5 ties, which occur for step counts such as 16 but not for 30.
    return float(math.floor(t + 0.5)) if transform == "ios" else float(round(t))


def raw_timesteps(config: SamplerConfig) -> List[float]:
    """t_i = (1 - i/N)·1000 for i = 0..N-1: starts at 1000 and never reaches 0."""
    values = [(1.0 - i / config.num_steps) * NUM_TIMESTEPS for i in range(config.num_steps)]
    return [_round_raw(t, config.transform) for t in values] if config.discrete_timesteps else values


def transform_latent_frames(transform: str, num_frames: int) -> int:
    """Latent frame count the transform assumes; Open-Sora derives it from the pixel frames (1 for an image)."""
    if transform == "ios":
        return IOS_LATENT_FRAMES
    if transform == "opensora":
        return 1 if num_frames == 1 else num_frames // FRAMES_PER_LATENT_CHUNK * LATENTS_PER_CHUNK
    raise ValueError(f"unknown timestep transform {transform!r}; known: {', '.join(TRANSFORMS)}")


def transform_ratio(height: float, width: float, latent_frames: int) -> float:
    """sqrt(H·W / 512²) · sqrt(F_lat / 1): the shift that moves more of the schedule to high noise."""
    return math.sqrt(height * width / BASE_RESOLUTION) * math.sqrt(latent_frames / BASE_NUM_FRAMES)


def timestep_transform(t: float, ratio: float) -> float:
    tau = t / NUM_TIMESTEPS
    return NUM_TIMESTEPS * ratio * tau / (1.0 + (ratio - 1.0) * tau)


def sampling_timesteps(config: SamplerConfig, *, height: float, width: float, num_frames: int) -> List[float]:
    """The transformed timesteps t_0..t_{N-1} that the model sees (height/width in pixels)."""
    ratio = transform_ratio(height, width, transform_latent_frames(config.transform, num_frames))
    return [timestep_transform(t, ratio) for t in raw_timesteps(config)]


def step_sizes(timesteps: List[float]) -> List[float]:
    """dt_i = (t_i - t_{i+1})/1000, and t_{N-1}/1000 for the last step, so the steps sum to t_0/1000 = 1."""
    following = timesteps[1:] + [0.0]
    return [(t - t_next) / NUM_TIMESTEPS for t, t_next in zip(timesteps, following)]


def guided_drift(out: torch.Tensor, channels: int, cfg_scale: float) -> torch.Tensor:
    """v_uncond + s·(v_cond - v_uncond) from a batch-2 output; only the first `channels` are velocity."""
    velocity = out[:, :channels]
    cond, uncond = velocity.chunk(2, dim=0)
    return uncond + cfg_scale * (cond - uncond)


def _check_inputs(config: SamplerConfig, z: torch.Tensor, y: torch.Tensor, y_null: torch.Tensor) -> None:
    if config.num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {config.num_steps}")
    if config.transform not in TRANSFORMS:
        raise ValueError(f"unknown timestep transform {config.transform!r}; known: {', '.join(TRANSFORMS)}")
    if z.dim() != 5 or z.dtype != torch.float32:
        raise ValueError(f"z must be a float32 [B,C,T,H,W] latent, got {z.dtype} {list(z.shape)}")
    if y.shape != y_null.shape or y.shape[0] != z.shape[0]:
        raise ValueError(f"y {list(y.shape)} and y_null {list(y_null.shape)} must match, batch as z {list(z.shape)}")


def sample(
    model: Denoiser,
    z: torch.Tensor,
    y: torch.Tensor,
    y_null: torch.Tensor,
    mask: torch.Tensor,
    *,
    height: float,
    width: float,
    num_frames: int,
    config: SamplerConfig = OPENSORA,
) -> SampleResult:
    """Denoises the initial noise z with Euler steps; returns the final latent and the per-step trace."""
    _check_inputs(config, z, y, y_null)
    timesteps = sampling_timesteps(config, height=height, width=width, num_frames=num_frames)
    y_pair = torch.cat([y, y_null], dim=0)
    trace: List[StepTrace] = []
    for index, (t, dt) in enumerate(zip(timesteps, step_sizes(timesteps))):
        z_pair = torch.cat([z, z], dim=0)
        out = model(z_pair, torch.full((z_pair.shape[0],), t, dtype=torch.float32), y_pair, mask)
        if out.shape[0] != z_pair.shape[0] or out.shape[2:] != z.shape[2:] or out.shape[1] < z.shape[1]:
            raise ValueError(f"denoiser output {list(out.shape)} does not fit the latent pair {list(z_pair.shape)}")
        drift = guided_drift(out, z.shape[1], config.cfg_scale)
        z = z + drift * torch.tensor(dt, dtype=torch.float32)
        trace.append(StepTrace(index, t, dt, drift))
    return SampleResult(z, trace)
