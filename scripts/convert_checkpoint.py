#!/usr/bin/env python3
"""Converts released Open-Sora 1.2 checkpoints into a model folder: every ONNX block, the tokenizer, manifest.json.

    /usr/bin/python3 scripts/convert_checkpoint.py \\
        --stdit <file|dir>  --t5 <file|dir|index.json>  --vae <file|dir>  --tokenizer <dir>  --out <model dir> \\
        [--format onnx|coreml] [--dtype float16] [--name NAME] [--overwrite] \\
        [--config-stdit auto|STDiT3-XL/2] [--config-t5 auto|t5-v1_1-xxl] [--config-vae auto|OpenSora-VAE-v1.2]

Checkpoints: hpcai-tech/OpenSora-STDiT-v3, DeepFloyd/t5-v1_1-xxl (encoder, possibly sharded) and
hpcai-tech/OpenSora-VAE-v1.2, as safetensors or PyTorch files. --tokenizer is a folder with the T5 tokenizer's
tokenizer.json + tokenizer_config.json (Hugging Face fast-tokenizer format), copied into the model folder.

Configs default to `auto`: chosen from the config.json beside each checkpoint where it decides, else by the
checkpoint's parameter shapes (sora/config_detect.py). Every checkpoint's key set, shapes and dtypes are validated
before anything is written. One `[i/n] block names` line is printed per exported unit, for progress displays. The three models are then built on
PyTorch's `meta` device (no memory) and each block's tensors are read from the (memory-mapped) checkpoint only while
that block is exported, then dropped again: peak memory stays near one block (T5-XXL whole would be 18 GB in float32).
The VAE encoder's keys are ignored; T5's tied embedding may be stored as `shared.weight` or
`encoder.embed_tokens.weight`; STDiT's `rope.freqs` (fixed frequencies, not learned) is computed when absent.
PyTorch pickles (.bin/.pt) cannot be read partially, so each such file or shard is loaded whole while its tensors
are needed (a T5-XXL .bin shard is ~10 GB); safetensors files are memory-mapped tensor by tensor.

--format coreml writes one .mlpackage per block instead (sora/coreml_export.py: coremltools 8.3, which this Python
must have: run it with a venv's python, see the README); compute precision and compute units are chosen per block
(--dtype float32 or float16 forces one precision for every block), the flexible shapes cover the defaults' choices.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from sora.dependencies import require_modules

if __name__ == "__main__":
    require_modules("scripts/convert_checkpoint.py")  # before the imports below, which need them

import torch  # noqa: E402
from torch import nn

from sora.config_detect import choose_config
from sora.configs import get_stdit3_config, get_t5_config
from sora.coreml_export import CoreMLSettings, LatentBounds, export_coreml_unit, import_coremltools
from sora.manifest import Defaults, architecture_dict, build_manifest, check_can_write, write_manifest
from sora.onnx_export import DTYPES, NULL_CAPTION_KEY, ExportUnit, export_unit, stdit_units, t5_units, vae_units
from sora.safetensors_io import CheckpointReader
from sora.stdit3 import STDiT3, RotaryEmbedding, use_fusable_gelu
from sora.t5_encoder import T5EncoderModel
from sora.vae import ENCODER_PREFIXES, OpenSoraVAEDecoder
from sora.vae_config import get_vae_config

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
DEFAULT_NAME = "opensora-v1.2"
FORMATS = ("onnx", "coreml")
MAX_LISTED = 5
# On-device Sora's settings: 68 frames at 256x256 (192x192 is the app's smaller choice).
DEFAULTS = Defaults(
    steps=30,
    cfg_scale=7.0,
    fps=24,
    aesthetic_score=6.5,
    resolution="256x256",
    num_frames=68,
    resolutions=("192x192", "256x256"),
    num_frames_choices=(17, 34, 51, 68),
)
T5_EMBEDDING_KEYS = ("shared.weight", "encoder.embed_tokens.weight")
AUTO = "auto"


class ConversionError(ValueError):
    """Bad arguments or inputs; the message says what to fix."""


@dataclass
class Source:
    """One checkpoint and the (meta-device) model its keys must fit."""

    label: str  # option name, for messages
    reader: CheckpointReader
    model: nn.Module
    # Model key → checkpoint keys accepted for it, first present wins.
    aliases: Mapping[str, Tuple[str, ...]] = field(default_factory=dict)
    # Model key → its value when the checkpoint lacks it.
    computed: Mapping[str, Callable[[], torch.Tensor]] = field(default_factory=dict)
    ignored_prefixes: Tuple[str, ...] = ()
    config: str = ""  # name of the model's config (sora/configs.py, sora/vae_config.py)

    def __post_init__(self) -> None:
        self.keys = set(self.reader.keys())
        state = self.model.state_dict()
        self.expected = {key: tuple(value.shape) for key, value in state.items()}
        self.floating = {key: value.is_floating_point() for key, value in state.items()}

    def candidates(self, key: str) -> Tuple[str, ...]:
        return self.aliases.get(key, (key,))

    def stored_key(self, key: str) -> Optional[str]:
        return next((name for name in self.candidates(key) if name in self.keys), None)

    def load(self, key: str) -> torch.Tensor:
        stored = self.stored_key(key)
        return self.reader.load(stored) if stored is not None else self.computed[key]()


# ============================================================================================
# Validation (before anything is written)
# ============================================================================================


def _listed(names: Sequence[str]) -> str:
    more = f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else ""
    return ", ".join(names[:MAX_LISTED]) + more


def key_problems(source: Source) -> List[str]:
    """Missing, unexpected and wrongly shaped keys, each kind with its first few names."""
    accepted = {name for key in source.expected for name in source.candidates(key)}
    missing = [key for key in source.expected if source.stored_key(key) is None and key not in source.computed]
    unexpected = sorted(
        key for key in source.keys - accepted if not key.startswith(source.ignored_prefixes)
    )
    stored_shapes = {source.stored_key(key): shape for key, shape in source.expected.items()}  # aliases once
    stored_shapes.pop(None, None)
    wrong = [
        f"{stored} {list(source.reader.shape(stored))} (expected {list(shape)})"
        for stored, shape in stored_shapes.items()
        if tuple(source.reader.shape(stored)) != shape
    ]
    # An integer tensor where a float weight belongs (or the reverse) would fail only when its block is exported.
    stored_floats = {source.stored_key(key): source.floating[key] for key in source.expected}
    wrong_dtypes = [
        f"{stored} {source.reader.dtype(stored)} (expected {'a float' if floating else 'an integer'} type)"
        for stored, floating in stored_floats.items()
        if stored is not None and source.reader.is_floating(stored) != floating
    ]
    problems = []
    kinds = (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", wrong),
             ("wrong dtypes", wrong_dtypes))
    for kind, names in kinds:
        if names:
            problems.append(f"{len(names)} {kind}: {_listed(names)}")
    return problems


def validate(sources: Sequence[Source]) -> None:
    messages = [
        f"--{source.label} {source.reader.path}: {'; '.join(problems)}"
        for source in sources
        if (problems := key_problems(source))
    ]
    if messages:
        raise ConversionError("checkpoint does not fit the model config: " + "; ".join(messages))


def tokenizer_files(folder: Optional[Path]) -> List[Path]:
    if folder is None:
        raise ConversionError(
            "--tokenizer is required: a folder with the T5 tokenizer's tokenizer.json and tokenizer_config.json "
            "(Hugging Face fast-tokenizer format; T5TokenizerFast.save_pretrained writes both from spiece.model)"
        )
    files = [folder / name for name in TOKENIZER_FILES]
    missing = [path.name for path in files if not path.is_file()]
    if missing:
        needed = " and ".join(TOKENIZER_FILES)
        raise ConversionError(f"--tokenizer {folder}: lacks {', '.join(missing)} (needs {needed})")
    return files


# ============================================================================================
# Loading one unit's tensors into the meta models
# ============================================================================================


Slot = Tuple[nn.Module, str, bool, str, Source]  # module, attribute, is parameter, checkpoint key, source


def module_owners(sources: Sequence[Source]) -> Dict[int, Tuple[str, Source]]:
    """id(module) → (its key prefix, its source), for every module of every model."""
    owners: Dict[int, Tuple[str, Source]] = {}
    for source in sources:
        for name, module in source.model.named_modules():
            owners.setdefault(id(module), (f"{name}." if name else "", source))
    return owners


def unit_slots(unit: ExportUnit, owners: Mapping[int, Tuple[str, Source]]) -> List[Slot]:
    """Every model parameter and persistent buffer the unit's wrappers use, once each."""
    slots: Dict[Tuple[int, str], Slot] = {}
    for block in unit.blocks:
        for module in block.wrapper.modules():
            if id(module) not in owners:
                continue  # a wrapper's own module; it holds no checkpoint tensor
            prefix, source = owners[id(module)]
            persistent = [name for name in module._buffers if name not in module._non_persistent_buffers_set]
            tensors = [(name, True) for name in module._parameters] + [(name, False) for name in persistent]
            for name, is_param in tensors:
                if getattr(module, name) is not None:
                    slots[(id(module), name)] = (module, name, is_param, prefix + name, source)
    return list(slots.values())


def _assign(module: nn.Module, name: str, is_param: bool, value: torch.Tensor) -> None:
    if is_param:
        module._parameters[name] = nn.Parameter(value, requires_grad=False)
    else:
        module._buffers[name] = value


@contextmanager
def materialized(unit: ExportUnit, owners: Mapping[int, Tuple[str, Source]]) -> Iterator[None]:
    """Loads the unit's tensors from the checkpoints; puts meta placeholders back afterwards."""
    slots = unit_slots(unit, owners)
    try:
        for module, name, is_param, key, source in slots:
            _assign(module, name, is_param, source.load(key))
        for block in unit.blocks:
            unloaded = [name for name, value in block.wrapper.state_dict().items() if value.is_meta]
            if unloaded:
                raise ConversionError(f"{block.name}: tensors without checkpoint data: {_listed(unloaded)}")
        yield
    finally:
        for module, name, is_param, _, _ in slots:
            _assign(module, name, is_param, torch.empty_like(getattr(module, name), device="meta"))


# ============================================================================================
# Conversion
# ============================================================================================


@dataclass(frozen=True)
class Configs:
    stdit: str
    t5: str
    vae: str


def stdit_source(reader: CheckpointReader, config: str) -> Source:
    cfg = get_stdit3_config(config)
    return Source(
        "stdit", reader, STDiT3(cfg, device="meta"),
        computed={"rope.freqs": lambda: RotaryEmbedding(cfg.head_dim).freqs.detach()}, config=config,
    )


def t5_source(reader: CheckpointReader, config: str) -> Source:
    return Source(
        "t5", reader, T5EncoderModel(get_t5_config(config), device="meta"),
        aliases={key: (key,) + tuple(k for k in T5_EMBEDDING_KEYS if k != key) for key in T5_EMBEDDING_KEYS},
        config=config,
    )


def vae_source(reader: CheckpointReader, config: str) -> Source:
    return Source("vae", reader, OpenSoraVAEDecoder(get_vae_config(config), device="meta"),
                  ignored_prefixes=ENCODER_PREFIXES, config=config)


SOURCE_BUILDERS: Dict[str, Callable[[CheckpointReader, str], Source]] = {
    "stdit": stdit_source, "t5": t5_source, "vae": vae_source,
}


def open_sources(stdit_path: Path, t5_path: Path, vae_path: Path, configs: Configs) -> List[Source]:
    """STDiT, T5 and VAE sources with meta-device models of the named (or `auto`-chosen) configs."""
    sources = []
    for label, path in (("stdit", stdit_path), ("t5", t5_path), ("vae", vae_path)):
        reader, config = CheckpointReader(path), getattr(configs, label)
        if config == AUTO:
            config, reason = choose_config(label, path, lambda name: not key_problems(SOURCE_BUILDERS[label](reader, name)))
            print(f"config {label}: {config} ({reason})", flush=True)
        sources.append(SOURCE_BUILDERS[label](reader, config))
    return sources


def conversion_units(stdit: Source, t5: Source, vae: Source, fmt: str, plain_gelu: bool = False) -> List[ExportUnit]:
    """Blocks in pipeline order (for CoreML an ST and a TDTM graph per block pair, see stdit_units). The few small
    tensors that wrappers capture when they are built (the null caption baked into T5 layer 0, the VAE's latent
    scale/shift) are loaded here, for good."""
    null_caption = stdit.load(NULL_CAPTION_KEY)
    decoder = vae.model
    for name in ("scale", "shift"):
        _assign(decoder, name, False, vae.load(name))
    if fmt == "onnx" and not plain_gelu:
        # The MLP's tanh-GELU in the form ONNX Runtime fuses into one FastGelu (same maths; at 256², 68 frames the
        # blocks ran 3-11 % faster and peaked 0.7 GiB lower). CoreML keeps nn.GELU, which it maps to its own op.
        use_fusable_gelu(stdit.model)
    return t5_units(t5.model, null_caption) + stdit_units(stdit.model, fmt == "onnx") + vae_units(decoder)


def convert(
    stdit_path: Path,
    t5_path: Path,
    vae_path: Path,
    tokenizer_dir: Optional[Path],
    out_dir: Path,
    *,
    configs: Configs = Configs(AUTO, AUTO, AUTO),
    dtype: Optional[str] = None,
    name: str = DEFAULT_NAME,
    overwrite: bool = False,
    fmt: str = "onnx",
    plain_gelu: bool = False,
) -> Path:
    """Writes the model folder; returns the manifest path. Raises before writing anything on bad input.

    dtype None: float32 for ONNX, each block's own precision for CoreML (coreml_export.BLOCK_PRECISION).
    plain_gelu: ONNX STDiT blocks keep torch's export of the tanh-GELU (as the shipped models/tiny has it) instead of
    the form ONNX Runtime fuses."""
    if dtype is not None and dtype not in DTYPES:
        raise ConversionError(f"--dtype {dtype}: must be one of {', '.join(DTYPES)}")
    if fmt not in FORMATS:
        raise ConversionError(f"--format {fmt}: must be one of {', '.join(FORMATS)}")
    if fmt == "coreml":
        import_coremltools()  # before any work: a missing coremltools is named with its install command
    stdit, t5, vae = sources = open_sources(stdit_path, t5_path, vae_path, configs)
    validate(sources)
    tokenizer = tokenizer_files(tokenizer_dir)
    architecture = dict(t5=t5.model.config, stdit=stdit.model.config, vae=vae.model.cfg)
    check_can_write(out_dir, name, architecture_dict(**architecture), overwrite)

    out_dir.mkdir(parents=True, exist_ok=True)
    export = _exporter(fmt, dtype, stdit.model)
    specs = []
    units = conversion_units(stdit, t5, vae, fmt, plain_gelu)
    # After the units: conversion_units swaps the MLPs' GELU modules, and a module made later could take a freed
    # one's id, so an owner map made before would give it that module's checkpoint keys (a KeyError, now and then).
    owners = module_owners(sources)
    for number, unit in enumerate(units, start=1):
        names = [block.name for block in unit.blocks] + [alias.name for alias in unit.aliases]
        print(f"[{number}/{len(units)}] {'+'.join(names)}", flush=True)
        with materialized(unit, owners):
            specs += export(unit, out_dir)
    for path in tokenizer:
        shutil.copyfile(path, out_dir / path.name)
    description = (
        f"Open-Sora 1.2 converted from checkpoints (STDiT {stdit.config}, T5 {t5.config}, VAE {vae.config}), "
        + _precision_text(fmt, dtype)
    )
    manifest = build_manifest(
        out_dir, name=name, description=description, blocks=specs, defaults=DEFAULTS, **architecture
    )
    return write_manifest(out_dir, manifest, overwrite=overwrite)


def _exporter(fmt: str, dtype: Optional[str], stdit: STDiT3) -> Callable[[ExportUnit, Path], list]:
    if fmt == "onnx":
        return lambda unit, out_dir: export_unit(unit, out_dir, dtype or "float32")
    settings = CoreMLSettings(LatentBounds.from_defaults(DEFAULTS), stdit.config.num_heads, precision=dtype)
    return lambda unit, out_dir: export_coreml_unit(unit, out_dir, settings)


def _precision_text(fmt: str, dtype: Optional[str]) -> str:
    if fmt == "coreml":
        return f"CoreML packages, {dtype or 'per-block'} precision"
    dtype = dtype or "float32"
    return f"{dtype} weights" + (" stored as float16, computed in float32" if dtype == "float16" else "")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stdit", type=Path, required=True, help="STDiT3 checkpoint file or folder")
    parser.add_argument("--t5", type=Path, required=True, help="T5 encoder checkpoint file, folder or *.index.json")
    parser.add_argument("--vae", type=Path, required=True, help="VAE checkpoint file or folder")
    parser.add_argument(
        "--tokenizer", type=Path, help="folder with tokenizer.json and tokenizer_config.json (required)"
    )
    parser.add_argument("--out", type=Path, required=True, help="model folder to write")
    parser.add_argument("--format", default="onnx", choices=FORMATS, help="block format (default onnx)")
    parser.add_argument(
        "--dtype", choices=DTYPES,
        help="onnx: weight storage (default float32); coreml: one compute precision for all blocks (default per block)",
    )
    parser.add_argument("--name", default=DEFAULT_NAME, help=f"model name in the manifest (default {DEFAULT_NAME})")
    parser.add_argument("--overwrite", action="store_true", help="replace a folder that holds a different model")
    parser.add_argument("--config-stdit", default=AUTO, help="a name from sora/configs.py, or auto (default)")
    parser.add_argument("--config-t5", default=AUTO, help="a name from sora/configs.py, or auto (default)")
    parser.add_argument("--config-vae", default=AUTO, help="a name from sora/vae_config.py, or auto (default)")
    parser.add_argument(
        "--plain-gelu", action="store_true",
        help="onnx: export the STDiT's tanh-GELU as torch does (eight element-wise nodes) instead of the form "
        "ONNX Runtime fuses into FastGelu (same maths); models/tiny was exported so",
    )
    args = parser.parse_args(argv)
    try:
        manifest = convert(
            args.stdit, args.t5, args.vae, args.tokenizer, args.out,
            configs=Configs(args.config_stdit, args.config_t5, args.config_vae),
            dtype=args.dtype, name=args.name, overwrite=args.overwrite, fmt=args.format, plain_gelu=args.plain_gelu,
        )
    except (ValueError, OSError) as error:  # CheckpointError, ManifestError, ExportError, unknown configs
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {manifest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
