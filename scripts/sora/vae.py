"""Open-Sora VAE v1.2 decoder (`OpenSoraVAE_V1_2` = `VideoAutoencoderPipeline`), decode path only.

State-dict layout follows the released checkpoint (hpcai-tech/OpenSora-VAE-v1.2):
  scale, shift                 buffers [1, 4, 1, 1, 1] (registered by VideoAutoencoderPipeline, so they are saved)
  spatial_vae.module.…         diffusers AutoencoderKL inside VideoAutoencoderKL (`.module`)
  temporal_vae.…               VAE_Temporal
The checkpoint also holds the encoders; ENCODER_PREFIXES lists exactly those key prefixes, which a converter
may drop. Any other key this module lacks is unexpected.
"""

from typing import List

import torch
from torch import nn

from .vae_config import VAEConfig
from .vae_spatial import SpatialVAE
from .vae_temporal import TemporalVAE

ENCODER_PREFIXES = (
    "spatial_vae.module.encoder.",
    "spatial_vae.module.quant_conv.",
    "temporal_vae.encoder.",
    "temporal_vae.quant_conv.",
)


class VideoSpatialVAE(nn.Module):
    """Upstream VideoAutoencoderKL: only adds the `.module` level to the keys, and the scaling factor."""

    def __init__(self, vae_cfg: VAEConfig, device=None):
        super().__init__()
        self.module = SpatialVAE(vae_cfg.spatial, device)
        self.scaling_factor = vae_cfg.spatial.scaling_factor
        self.micro_batch_size = vae_cfg.micro_batch_size

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 4, F, h, w] -> [B, 3, F, 8h, 8w], decoding micro_batch_size frames at a time."""
        batch = x.shape[0]
        frames = x.transpose(1, 2).flatten(0, 1)  # (B F), C, h, w
        pieces = [
            self.module.decode(piece / self.scaling_factor) for piece in frames.split(self.micro_batch_size)
        ]
        return torch.cat(pieces).unflatten(0, (batch, -1)).transpose(1, 2)


class OpenSoraVAEDecoder(nn.Module):
    """Latents [1, 4, T_lat, h, w] -> video; also the owner of every weight the 18 parts (vae_blocks) share."""

    def __init__(self, cfg: VAEConfig, device=None):
        super().__init__()
        self.cfg = cfg
        channels = cfg.temporal.latent_channels
        self.register_buffer("scale", torch.tensor(cfg.scale, device=device).reshape(1, channels, 1, 1, 1))
        self.register_buffer("shift", torch.tensor(cfg.shift, device=device).reshape(1, channels, 1, 1, 1))
        self.spatial_vae = VideoSpatialVAE(cfg, device)
        self.temporal_vae = TemporalVAE(cfg.temporal, cfg.dropped_frames, device)

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        """Undo the encoder's (z - shift) / scale."""
        return z * self.scale + self.shift

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """[1, 4, T_lat, h, w] with T_lat a multiple of micro_z_frame_size (5) -> [1, 3, F, 8h, 8w] in ≈[-1, 1],
        F = T_lat / 5 · 17."""
        chunk = self.cfg.micro_z_frame_size
        if z.shape[2] % chunk:
            raise ValueError(f"latent frames ({z.shape[2]}) must be a multiple of {chunk}")
        z = self.denormalize(z)
        frames: List[torch.Tensor] = [self.temporal_vae.decode(piece) for piece in z.split(chunk, dim=2)]
        return self.spatial_vae.decode(torch.cat(frames, dim=2))
