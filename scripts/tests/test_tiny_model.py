"""The shipped tiny model (models/tiny): manifest, size, byte-identical regeneration, activations end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import make_golden
import make_tiny_model
from sora.manifest import validate_manifest
from sora.reference_sampler import sample
from sora.t5_encoder import additive_mask
from sora.tiny_model import DEFAULTS, build_tiny_modules
from sora.vae_blocks import build_vae_parts, decode_with_parts

MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "tiny"
MAX_TOTAL_BYTES = 25_000_000
# "O(1)": generous bounds that random weights at default scales violate by orders of magnitude.
MAX_ABS_ACTIVATION = 50.0
STD_RANGE = (0.05, 5.0)


@pytest.fixture(scope="module")
def manifest():
    return json.loads((MODEL_DIR / "manifest.json").read_text(encoding="utf-8"))


def test_manifest_validates_against_the_shared_schema(manifest):
    validate_manifest(manifest)  # models/manifest.schema.json, generated from the TypeScript zod schema


def test_manifest_names_the_tiny_model_and_its_defaults(manifest):
    assert manifest["name"] == "tiny" and "random" in manifest["description"]
    assert manifest["defaults"] == {
        "steps": 30, "cfgScale": 7.0, "fps": 24, "aestheticScore": 6.5, "resolution": "256x256", "numFrames": 17,
        "resolutions": ["128x128", "192x192", "256x256"], "numFramesChoices": [17, 34, 51, 68],
    }
    assert [entry["path"] for entry in manifest["tokenizer"]["files"]] == ["tokenizer.json", "tokenizer_config.json"]
    vocab = json.loads((MODEL_DIR / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    assert len(vocab) == manifest["architecture"]["t5"]["vocab_size"] == 512


def test_folder_holds_only_listed_files_within_the_size_limit(manifest):
    files = {path.relative_to(MODEL_DIR).as_posix() for path in MODEL_DIR.rglob("*") if path.is_file()}
    assert files == make_tiny_model.listed_files(manifest)
    assert sum((MODEL_DIR / name).stat().st_size for name in files) <= MAX_TOTAL_BYTES


def test_regeneration_is_byte_identical(capsys):
    assert make_tiny_model.main(["--check"]) == 0, capsys.readouterr().out


def test_weights_do_not_depend_on_the_global_random_state():
    torch.manual_seed(123)
    first = build_tiny_modules()
    torch.manual_seed(456)
    second = build_tiny_modules()
    for name in ("t5", "stdit", "vae"):
        a, b = getattr(first, name).state_dict(), getattr(second, name).state_dict()
        assert all(torch.equal(a[key], b[key]) for key in a), name


class ActivationLog:
    """Records, per module, the extreme statistics of every output it produced."""

    def __init__(self):
        self.stats = {}

    def watch(self, name: str, module: torch.nn.Module) -> None:
        module.register_forward_hook(lambda _module, _inputs, output: self.note(name, output))

    def note(self, name: str, output) -> None:
        tensor = output[0] if isinstance(output, tuple) else output
        finite = bool(torch.isfinite(tensor).all())
        peak, std = tensor.abs().max().item(), tensor.std().item()
        old = self.stats.get(name, (True, 0.0, float("inf"), 0.0))
        self.stats[name] = (old[0] and finite, max(old[1], peak), min(old[2], std), max(old[3], std))


def test_activations_stay_finite_and_order_one_from_prompt_to_pixels():
    modules = build_tiny_modules()
    log = ActivationLog()
    for i, block in enumerate(modules.t5.encoder.block):
        log.watch(f"t5 layer {i}", block)
    log.watch("t5 final norm", modules.t5.encoder.final_layer_norm)
    for i, (spatial, temporal) in enumerate(zip(modules.stdit.spatial_blocks, modules.stdit.temporal_blocks)):
        log.watch(f"stdit spatial {i}", spatial)
        log.watch(f"stdit temporal {i}", temporal)
    log.watch("stdit final layer", modules.stdit.final_layer)
    parts = build_vae_parts(modules.vae)
    for name, part in parts:
        log.watch(name, part)

    ids, token_mask = make_golden.tokenize(modules)
    pixels = 64
    conditioning = (torch.tensor([float(DEFAULTS.fps)]), torch.tensor([float(pixels)]), torch.tensor([float(pixels)]))
    with torch.no_grad():
        y = modules.t5(ids, additive_mask(token_mask))[:, None]
        y_null = modules.stdit.y_embedder.y_embedding[None, None]
        z = torch.randn(1, 4, 5, 8, 8, generator=torch.Generator().manual_seed(0))
        result = sample(
            lambda z2, t2, y2, mask: modules.stdit(z2, t2, y2, mask, *conditioning),
            z, y, y_null, token_mask, height=pixels, width=pixels, num_frames=17,
        )
        for step in result.trace:
            log.note(f"drift step {step.index}", step.drift)
        log.note("final latent", result.latent)
        video = decode_with_parts(parts, result.latent, modules.vae.cfg)

    assert len(log.stats) == 2 + 1 + 2 * 4 + 1 + 18 + 30 + 1
    bad = {name: stats for name, stats in log.stats.items()
           if not (stats[0] and stats[1] < MAX_ABS_ACTIVATION and STD_RANGE[0] < stats[2] and stats[3] < STD_RANGE[1])}
    assert not bad, f"(finite, max|x|, min std, max std) out of range: {bad}"
    assert video.shape == (1, 3, 17, pixels, pixels)
    assert 0.1 < video.std().item() < 1.0 and (video.abs() > 1).float().mean().item() < 0.1


def test_the_caption_changes_the_velocity_but_guidance_stays_bounded():
    modules = build_tiny_modules()
    ids, token_mask = make_golden.tokenize(modules)
    with torch.no_grad():
        y = modules.t5(ids, additive_mask(token_mask))[:, None]
        y_pair = torch.cat([y, modules.stdit.y_embedder.y_embedding[None, None]])
        z = torch.randn(1, 4, 5, 8, 8, generator=torch.Generator().manual_seed(0)).repeat(2, 1, 1, 1, 1)
        out = modules.stdit(z, torch.full((2,), 900.0), y_pair, token_mask,
                            torch.tensor([24.0]), torch.tensor([64.0]), torch.tensor([64.0]))
    difference = (out[0, :4] - out[1, :4]).std().item()
    assert 0.01 < difference < 0.5
