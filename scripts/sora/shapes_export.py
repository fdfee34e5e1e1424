"""Exports the trained shapes model (checkpoints of sora.shapes_training) as a model folder: tokenizer, every block
of the contract, manifest.json, and world.json (the world's attributes and held-out prompts, for `ondevice-sora
eval`). The blocks go through the same export as the tiny model and converted checkpoints, so the runtime path is
the one real Open-Sora weights take."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

from sora.manifest import Defaults, architecture_dict, build_manifest, check_can_write, write_manifest
from sora.onnx_export import export_units, model_units
from sora.shapes_training import load_text_and_dit, load_vae, log
from sora.shapes_world import FPS, NUM_FRAMES, SHAPES, SIZE, caption_words, write_world
from sora.tokenizer_builder import write_tokenizer

MODEL_NAME = "shapes"
TOKENIZER_VOCAB = 256
WORLD_FILE = "world.json"
DESCRIPTION = (
    "Open-Sora 1.2 architecture (T5 v1.1 encoder, STDiT3, VAE v1.2 decoder) at a small size, trained on this "
    "project's procedural shapes world: one coloured circle, square or triangle moving left/right/up/down/"
    "diagonally, staying still, growing or shrinking on a plain background, 64x64, 51 frames. Prompts like "
    "'a blue square moving right on a white background'. Retrain with scripts/train_shapes.py."
)
DEFAULTS = Defaults(
    steps=30,
    # Measured with `ondevice-sora eval --configs baseline --cfg-scale S` on the held-out prompts: 4 scored above 7
    # (Open-Sora's default) and 10; a small model trained briefly overshoots under strong guidance.
    cfg_scale=4.0,
    fps=FPS,
    aesthetic_score=6.5,
    resolution=f"{SIZE}x{SIZE}",
    num_frames=NUM_FRAMES,
    resolutions=(f"{SIZE}x{SIZE}",),
    num_frames_choices=(NUM_FRAMES,),
)

# The words of every training caption (junk words aside, which training teaches the model to ignore) and the one
# object a scene holds: `generate` warns about prompts outside them.
VOCABULARY = {"words": sorted(caption_words()), "objectWords": list(SHAPES), "maxObjects": 1}


def export_shapes_model(work: Path, out_dir: Path, overwrite: bool = False, two_objects: bool = False) -> Dict[str, Any]:
    """`two_objects`: the model was trained on the two-object world too (train_shapes.py --pairs)."""
    t5, stdit = load_text_and_dit(work)
    vae, _, _ = load_vae(work)
    configs = dict(t5=t5.config, stdit=stdit.config, vae=vae.cfg)
    check_can_write(out_dir, MODEL_NAME, architecture_dict(**configs), overwrite)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_tokenizer(out_dir, TOKENIZER_VOCAB, caption_words())
    specs = export_units(model_units(t5, stdit, vae), out_dir)
    manifest = build_manifest(
        out_dir, name=MODEL_NAME, description=DESCRIPTION, blocks=specs, defaults=DEFAULTS,
        vocabulary={**VOCABULARY, "maxObjects": 2 if two_objects else 1}, **configs,
    )
    write_manifest(out_dir, manifest, overwrite=True)
    write_world(out_dir / WORLD_FILE, two_objects)
    log(f"exported {out_dir}: {len(specs)} blocks")
    return manifest
