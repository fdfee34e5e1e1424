"""Sizes of the Open-Sora VAE v1.2 decoder (temporal VAE + SDXL 2-D VAE) and of its tiny test twin.

Upstream: hpcaitech/Open-Sora v1.2.0 `OpenSoraVAE_V1_2` (opensora/models/vae/vae.py), `VAE_Temporal_SD`
(opensora/models/vae/vae_temporal.py) and the diffusers `AutoencoderKL` config of
`PixArt-alpha/pixart_sigma_sdxlvae_T5_diffusers` (subfolder `vae`).
"""

from dataclasses import dataclass
from typing import Dict, Tuple


@dataclass(frozen=True)
class TemporalVAEConfig:
    """`VAE_Temporal_SD`: MAGVIT-v2-style causal 3-D VAE over the 2-D VAE's latents."""

    latent_channels: int = 4  # upstream in_out_channels = latent_embed_dim = embed_dim
    filters: int = 128
    channel_multipliers: Tuple[int, ...] = (1, 2, 2, 4)
    num_res_blocks: int = 4
    temporal_downsample: Tuple[bool, ...] = (False, True, True)
    num_groups: int = 32
    norm_eps: float = 1e-5  # upstream uses nn.GroupNorm's default

    @property
    def time_downsample_factor(self) -> int:
        return 2 ** sum(self.temporal_downsample)


@dataclass(frozen=True)
class SpatialVAEConfig:
    """Decoder half of the SDXL `AutoencoderKL` (four `UpDecoderBlock2D`, attention in the mid block)."""

    latent_channels: int = 4
    block_out_channels: Tuple[int, ...] = (128, 256, 512, 512)
    layers_per_block: int = 2  # each up block holds layers_per_block + 1 resnets
    norm_num_groups: int = 32
    norm_eps: float = 1e-6
    out_channels: int = 3
    # Open-Sora divides by SD1's factor, not the SDXL config's 0.13025 (VideoAutoencoderKL.decode).
    scaling_factor: float = 0.18215


@dataclass(frozen=True)
class VAEConfig:
    name: str
    temporal: TemporalVAEConfig
    spatial: SpatialVAEConfig
    # Latent normalisation per channel: encode stores (z - shift) / scale, decode undoes it.
    scale: Tuple[float, ...] = (3.85, 2.32, 2.33, 3.06)
    shift: Tuple[float, ...] = (-0.10, 0.34, 0.27, 0.98)
    micro_frame_size: int = 17  # frames per temporal chunk
    # Latent frames per temporal chunk: 17 frames are front-padded to 20, then /4 -> 5. Derived, but a field so
    # that it reaches the manifest; __post_init__ rejects an inconsistent value.
    micro_z_frame_size: int = 5
    micro_batch_size: int = 4  # frames per spatial decoder call

    def __post_init__(self) -> None:
        factor = self.temporal.time_downsample_factor
        expected = -(-self.micro_frame_size // factor)
        if self.micro_z_frame_size != expected:
            raise ValueError(
                f"micro_z_frame_size {self.micro_z_frame_size} != ceil({self.micro_frame_size} / {factor}) = {expected}"
            )

    @property
    def dropped_frames(self) -> int:
        """Leading frames the temporal decoder emits beyond micro_frame_size (the encoder's front padding)."""
        return self.micro_z_frame_size * self.temporal.time_downsample_factor - self.micro_frame_size


VAE_CONFIGS: Dict[str, VAEConfig] = {
    "OpenSora-VAE-v1.2": VAEConfig(
        name="OpenSora-VAE-v1.2",
        temporal=TemporalVAEConfig(),
        spatial=SpatialVAEConfig(),
    ),
    # Same modules and state-dict keys as the real decoder, only narrower: 742k parameters, 2.97 MB float32.
    "tiny": VAEConfig(
        name="tiny",
        temporal=TemporalVAEConfig(filters=8, num_groups=4),
        spatial=SpatialVAEConfig(block_out_channels=(8, 16, 20, 20), norm_num_groups=4),
    ),
    # The shapes world's VAE (sora/shapes_model.py), trained here; scale, shift and the 2-D scaling factor are
    # measured on its training latents and replaced when the model is exported.
    "shapes": VAEConfig(
        name="shapes",
        # Two norm groups: a GroupNorm keeps only the direction of each group's channel vector on a flat image, so
        # the 8-channel last level needs 4 channels a group to carry a colour through conv_norm_out.
        temporal=TemporalVAEConfig(filters=16, num_groups=2),
        # A larger epsilon: frames of flat colour give groups of near-zero variance, which 1e-6 would blow up.
        spatial=SpatialVAEConfig(block_out_channels=(8, 16, 32, 64), norm_num_groups=2, norm_eps=1e-3),
    ),
}


def get_vae_config(name: str) -> VAEConfig:
    if name not in VAE_CONFIGS:
        raise ValueError(f"unknown config '{name}'; known: {', '.join(VAE_CONFIGS)}")
    return VAE_CONFIGS[name]
