#!/usr/bin/env python3
"""Writes the golden parity data (test/fixtures/golden/*.json) from the tiny model's PyTorch modules.

    /usr/bin/python3 scripts/make_golden.py [--out test/fixtures/golden]
    /usr/bin/python3 scripts/make_golden.py --check [--out test/fixtures/golden]   compare a fresh run byte by byte

One file per block kind (`block` holds the contract name), with inputs and the outputs of the PyTorch wrapper, chained
from one prompt so that every input is realistic: T5 embed → layer 0 → last layer → final norm; STDiT part1 (odd
latent H, so padH = 1) → ST_0 → TDTM_1 with even T, TDTM_1 with odd T, part2; the 18 VAE parts on one temporal and
one spatial chunk. Plus the reference sampler (reference §B) run with the full PyTorch STDiT3 from stored noise and
the stored text encoding, once per timestep transform. Shapes are small to keep the files small; the T5 position
bias ([1, heads, 300, 300], fixed by the contract) is the bulk.

Float results are bit-reproducible on one machine; another CPU may round a few last bits differently.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch

from sora.folder_compare import check_regenerates
from sora.golden_io import Golden, write_golden
from sora.reference_sampler import IOS, OPENSORA, SamplerConfig, sample
from sora.stdit3 import block_diagonal_mask
from sora.stdit_blocks import STDiTBlockPair, STDiTPart1, STDiTPart2
from sora.t5_encoder import additive_mask
from sora.text_blocks import T5Embed, T5FinalNorm, T5Layer, T5Layer0
from sora.tiny_model import DEFAULTS, TinyModules, build_tiny_modules
from sora.tokenizer_builder import build_tokenizer
from sora.unigram import UnigramTokenizer
from sora.vae_blocks import SPATIAL_PART_NAMES, build_vae_parts

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "test" / "fixtures" / "golden"

PROMPT = "a red ball rolling on the grass"
SEED = 7
CFG_BATCH = 2
# STDiT blocks: odd H (padH = 1), even W; TDTM also gets an odd frame count.
STDIT_FRAMES, STDIT_ODD_FRAMES, STDIT_HEIGHT, STDIT_WIDTH = 4, 3, 5, 6
STDIT_TIMESTEP = 873.5
VAE_HEIGHT, VAE_WIDTH = 2, 3
# Sampler: 17 frames at 64x64 pixels → latent [1, 4, 5, 8, 8].
SAMPLER_HEIGHT = SAMPLER_WIDTH = 64
SAMPLER_FRAMES = 17
SAMPLER_LATENT = (1, 4, 5, 8, 8)

Goldens = Dict[str, Golden]  # file name → content


def prompt_text() -> str:
    """The prompt as the runtime builds it (aesthetic-score suffix, `%.1f`)."""
    return f"{PROMPT} aesthetic score: {DEFAULTS.aesthetic_score:.1f}."


def tokenize(modules: TinyModules) -> Tuple[torch.Tensor, torch.Tensor]:
    """ids int64 [1, 300] (text ids, EOS, padding) and the 1/0 token mask [1, 300]."""
    cfg = modules.t5.config
    tokenizer = UnigramTokenizer(build_tokenizer(cfg.vocab_size)[0])
    text_ids = tokenizer.encode(prompt_text())[: cfg.max_length - 1] + [1]
    ids = torch.zeros(1, cfg.max_length, dtype=torch.long)
    ids[0, : len(text_ids)] = torch.tensor(text_ids)
    mask = torch.zeros(1, cfg.max_length)
    mask[0, : len(text_ids)] = 1
    return ids, mask


def text_goldens(
    modules: TinyModules, ids: torch.Tensor, token_mask: torch.Tensor
) -> Tuple[Goldens, torch.Tensor, torch.Tensor]:
    """T5 block goldens; also returns the text encoding y and the null caption, both [1, 1, 300, D]."""
    t5 = modules.t5
    last = t5.config.num_layers - 1
    mask = additive_mask(token_mask)
    ones = torch.ones(t5.config.max_length, modules.stdit.config.caption_channels)
    meta = {"prompt": prompt_text(), "validTokens": int(token_mask.sum())}
    (embedded,) = T5Embed(t5)(ids)
    hidden, bias, null = T5Layer0(t5, modules.stdit.y_embedder.y_embedding)(embedded, mask, ones)
    goldens = {
        "t5embed-tokens.json": Golden("t5embed-tokens", {"input_ids": ids}, {"output": embedded}, meta),
        "t5block-layer0.json": Golden(
            "t5block-layer0",
            {"hidden_states": embedded, "attention_mask": mask, "y_embedding": ones},
            {"output_hidden_states": hidden, "output_position_bias": bias, "yNull": null},
            meta,
        ),
    }
    for index in range(1, last + 1):
        inputs = {"hidden_states": hidden, "attention_mask": mask, "position_bias": bias}
        (hidden,) = T5Layer(t5, index)(*inputs.values())
        if index == last:
            name = f"t5block-layer{index}"
            goldens[f"{name}.json"] = Golden(name, inputs, {"output_hidden_states": hidden}, meta)
    (encoded,) = T5FinalNorm(t5)(hidden)
    goldens["t5final-layer-norm.json"] = Golden("t5final-layer-norm", {"input": hidden}, {"output": encoded}, meta)
    return goldens, encoded[:, None], null[None, None]


def _part1_inputs(
    modules: TinyModules, z: torch.Tensor, y: torch.Tensor, y_null: torch.Tensor, token_mask: torch.Tensor
) -> Dict[str, torch.Tensor]:
    _, ph, pw = modules.stdit.config.patch_size
    height, width = z.shape[3], z.shape[4]
    return {
        "z_in": torch.cat([z, z]),
        "t": torch.full((CFG_BATCH,), STDIT_TIMESTEP),
        "y": torch.cat([y, y_null]),
        "mask": token_mask,
        "fps": torch.tensor([float(DEFAULTS.fps)]),
        "height": torch.tensor([8.0 * height]),
        "width": torch.tensor([8.0 * width]),
        "padH": torch.tensor([-height % ph]),
        "padW": torch.tensor([-width % pw]),
    }


def _block_inputs(part1_out: Tuple[torch.Tensor, ...], valid: int, tdtm: bool) -> Dict[str, torch.Tensor]:
    x, out_y, t_mlp, frames, _ = part1_out
    tokens = x.shape[1]
    queries = frames.item() // 2 * (tokens // frames.item()) if tdtm else tokens
    return {"x": x, "y": out_y, "t_mlp": t_mlp, "attn": block_diagonal_mask(CFG_BATCH, queries, valid), "T": frames}


def stdit_goldens(modules: TinyModules, y: torch.Tensor, y_null: torch.Tensor, token_mask: torch.Tensor) -> Goldens:
    stdit = modules.stdit
    gen = torch.Generator().manual_seed(SEED)
    z = torch.randn(1, stdit.config.in_channels, STDIT_FRAMES, STDIT_HEIGHT, STDIT_WIDTH, generator=gen)
    valid = int(token_mask.sum())
    part1 = STDiTPart1(stdit)
    part1_in = _part1_inputs(modules, z, y, y_null, token_mask)
    part1_out = part1(*part1_in.values())
    odd_out = part1(*_part1_inputs(modules, z[:, :, :STDIT_ODD_FRAMES], y, y_null, token_mask).values())

    st_in = _block_inputs(part1_out, valid, tdtm=False)
    (st_out,) = STDiTBlockPair(stdit, 0)(*st_in.values())
    tdtm = STDiTBlockPair(stdit, 1, tdtm=True)
    even_in, odd_in = _block_inputs(part1_out, valid, tdtm=True), _block_inputs(odd_out, valid, tdtm=True)
    pads = {name: part1_in[name] for name in ("padH", "padW")}
    part2_in = {"z_in": part1_in["z_in"], "x": st_out, "t": part1_out[4], **pads}
    (part2_out,) = STDiTPart2(stdit)(*part2_in.values())
    return {
        "stdit3_part1.json": Golden("stdit3_part1", part1_in, dict(zip(STDiTPart1.OUTPUTS, part1_out))),
        "stdit3_ST_0.json": Golden("stdit3_ST_0", st_in, {"output": st_out}),
        "stdit3_TDTM_1.even.json": Golden(
            "stdit3_TDTM_1", even_in, {"output": tdtm(*even_in.values())[0]}, {"T": STDIT_FRAMES}
        ),
        "stdit3_TDTM_1.odd.json": Golden(
            "stdit3_TDTM_1", odd_in, {"output": tdtm(*odd_in.values())[0]}, {"T": STDIT_ODD_FRAMES}
        ),
        "stdit3_part2.json": Golden("stdit3_part2", part2_in, {"output": part2_out}),
    }


def vae_goldens(modules: TinyModules) -> Goldens:
    """Every part on one temporal chunk (5 latent frames) and then one spatial chunk (its first 4 frames)."""
    cfg = modules.vae.cfg
    gen = torch.Generator().manual_seed(SEED)
    x = torch.randn(1, cfg.temporal.latent_channels, cfg.micro_z_frame_size, VAE_HEIGHT, VAE_WIDTH, generator=gen)
    goldens = {}
    for name, part in build_vae_parts(modules.vae):
        if name == SPATIAL_PART_NAMES[0]:
            x = x[:, :, : cfg.micro_batch_size]
        y = part(x)
        goldens[f"{name}.json"] = Golden(name, {"latents": x}, {"output": y})
        x = y
    return goldens


def _sampler_golden(modules: TinyModules, config: SamplerConfig, z, y, y_null, token_mask) -> Golden:
    fps = torch.tensor([float(DEFAULTS.fps)])
    height, width = torch.tensor([float(SAMPLER_HEIGHT)]), torch.tensor([float(SAMPLER_WIDTH)])

    def denoise(z2, t2, y2, mask):
        return modules.stdit(z2, t2, y2, mask, fps, height, width)

    result = sample(
        denoise, z, y, y_null, token_mask,
        height=SAMPLER_HEIGHT, width=SAMPLER_WIDTH, num_frames=SAMPLER_FRAMES, config=config,
    )
    meta = {
        "prompt": prompt_text(),
        "height": SAMPLER_HEIGHT,
        "width": SAMPLER_WIDTH,
        "numFrames": SAMPLER_FRAMES,
        "fps": DEFAULTS.fps,
        "steps": config.num_steps,
        "cfgScale": config.cfg_scale,
        "transform": config.transform,
        "discreteTimesteps": config.discrete_timesteps,
        "timesteps": [step.t for step in result.trace],
        "dt": [step.dt for step in result.trace],
    }
    inputs = {"z": z, "y": y, "yNull": y_null, "mask": token_mask}
    return Golden("sampler", inputs, {"latent": result.latent}, meta)


def sampler_goldens(modules: TinyModules, y: torch.Tensor, y_null: torch.Tensor, token_mask: torch.Tensor) -> Goldens:
    z = torch.randn(*SAMPLER_LATENT, generator=torch.Generator().manual_seed(SEED))
    configs = {"sampler-opensora.json": OPENSORA, "sampler-ios.json": IOS}
    return {name: _sampler_golden(modules, config, z, y, y_null, token_mask) for name, config in configs.items()}


def all_goldens() -> Goldens:
    modules = build_tiny_modules()
    ids, token_mask = tokenize(modules)
    with torch.no_grad():
        goldens, y, y_null = text_goldens(modules, ids, token_mask)
        goldens.update(stdit_goldens(modules, y, y_null, token_mask))
        goldens.update(vae_goldens(modules))
        goldens.update(sampler_goldens(modules, y, y_null, token_mask))
    return goldens


def write_all(out_dir: Path) -> List[Path]:
    return [
        write_golden(out_dir / name, golden.block, golden.inputs, golden.outputs, golden.meta)
        for name, golden in all_goldens().items()
    ]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="golden folder (default: test/fixtures/golden)")
    parser.add_argument("--check", action="store_true", help="compare a fresh run with --out instead of writing")
    args = parser.parse_args(argv)
    if args.check:
        return check_regenerates(write_all, args.out)
    paths = write_all(args.out)
    print(f"wrote {len(paths)} files, {sum(path.stat().st_size for path in paths)} bytes, to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
