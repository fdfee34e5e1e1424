"""scripts/convert_checkpoint.py on random-weight checkpoints written in the upstream formats at the tiny sizes.

The checkpoints hold the weights of models/tiny (build_tiny_modules), so a conversion must reproduce the committed
block files byte for byte. Full-size key sets are checked against the upstream key fixtures without any weights.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import convert_checkpoint
from convert_checkpoint import Configs, ConversionError, convert, key_problems, open_sources, unit_slots, validate
from sora.manifest import ManifestError
from sora.onnx_export import export_units, model_units
from sora.safetensors_io import write_safetensors, write_sharded_safetensors
from sora.tiny_model import build_tiny_modules
from sora.tokenizer_builder import write_tokenizer
from sora.vae_config import get_vae_config
from sora.upstream_checkpoints import encoder_stand_ins, write_random_repository, write_tiny_repositories

ROOT = Path(__file__).resolve().parents[2]
TINY_DIR = ROOT / "models" / "tiny"
KEY_FIXTURES = ROOT / "test" / "fixtures" / "keys"
TINY = Configs("tiny", "tiny", "tiny")


@pytest.fixture(scope="module")
def modules():
    return build_tiny_modules()


@pytest.fixture(scope="module")
def checkpoints(modules, tmp_path_factory):
    """The three repositories as published (config.json beside the weights; T5 sharded so that every block spans
    files), holding the tiny model's weights, plus a tokenizer folder of the fast-tokenizer files."""
    root = tmp_path_factory.mktemp("checkpoints")
    repos = write_tiny_repositories(root, modules, tokenizer=False)
    write_tokenizer(root / "tokenizer", modules.t5.config.vocab_size)
    return SimpleNamespace(
        stdit=repos.stdit, t5=repos.t5 / "model.safetensors.index.json", vae=repos.vae / "model.safetensors",
        tokenizer=root / "tokenizer", root=root,
    )


def _convert(ck, out, **options):
    return convert(ck.stdit, ck.t5, ck.vae, ck.tokenizer, out, configs=TINY, name="tiny", **options)


def _block_files(folder: Path):
    files = [path for path in folder.rglob("*") if path.suffix in (".onnx", ".data")]
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in files}


def test_cli_conversion_reproduces_the_direct_export(checkpoints, tmp_path):
    out = tmp_path / "converted"
    args = ["--stdit", checkpoints.stdit, "--t5", checkpoints.t5, "--vae", checkpoints.vae,
            "--tokenizer", checkpoints.tokenizer, "--out", out, "--name", "tiny",
            "--config-stdit", "tiny", "--config-t5", "tiny", "--config-vae", "tiny", "--plain-gelu"]
    assert convert_checkpoint.main([str(arg) for arg in args]) == 0
    converted, direct = _block_files(out), _block_files(TINY_DIR)
    assert sorted(converted) == sorted(direct)
    assert [name for name in direct if converted[name] != direct[name]] == []
    manifest, committed = (json.loads((d / "manifest.json").read_text()) for d in (out, TINY_DIR))
    assert manifest["blocks"] == committed["blocks"] and manifest["tokenizer"] == committed["tokenizer"]
    assert (manifest["defaults"]["numFrames"], manifest["defaults"]["resolution"]) == (68, "256x256")


def test_onnx_conversion_exports_the_gelu_onnx_runtime_fuses_and_leaves_the_rest_as_the_direct_export(checkpoints, tmp_path):
    import onnx

    _convert(checkpoints, tmp_path / "converted")
    converted, direct = _block_files(tmp_path / "converted"), _block_files(TINY_DIR)
    differing = sorted(name for name in direct if converted[name] != direct[name])
    # The graphs with a tanh-GELU MLP: every block pair's, and part1's (the caption projection).
    assert differing == sorted([name for name in direct if name.startswith("stdit/stdit3_block_") and name.endswith(".onnx")]
                               + ["stdit/stdit3_part1.onnx"])
    for name in differing:
        graph = onnx.load(str(tmp_path / "converted" / name), load_external_data=False).graph
        act = [node.op_type for node in graph.node if "/act/" in node.name]
        # FusableTanhGelu: x³ as Pow (what FastGeluFusion matches), one per tanh-GELU.
        assert act.count("Pow") >= 1 and act.count("Pow") == act.count("Tanh")


def test_configs_are_chosen_from_config_json_and_progress_is_printed(checkpoints, tmp_path, capsys):
    out = tmp_path / "converted"
    args = ["--stdit", checkpoints.stdit, "--t5", checkpoints.t5, "--vae", checkpoints.vae,
            "--tokenizer", checkpoints.tokenizer, "--out", out, "--name", "tiny", "--plain-gelu"]
    assert convert_checkpoint.main([str(arg) for arg in args]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("config stdit: tiny (config.json: depth 4, hidden_size 64, num_heads 4")
    assert lines[1].startswith("config t5: tiny (config.json: vocab_size 512, d_model 64")
    # The VAE's config.json names no sizes: the parameter shapes decide among the configs it agrees with.
    assert lines[2].startswith("config vae: tiny (config.json: micro_frame_size 17, scale [") and "parameter shapes" in lines[2]
    progress = [line for line in lines if line.startswith("[")]
    assert progress[0] == "[1/28] t5embed-tokens" and progress[-1] == "[28/28] vae_spatial_part4"
    assert "[6/28] stdit3_ST_0+stdit3_TDTM_0" in progress
    assert [name for name, data in _block_files(out).items() if data != _block_files(TINY_DIR)[name]] == []


def test_without_config_json_the_parameter_shapes_decide(checkpoints, tmp_path):
    bare = tmp_path / "stdit-without-config"
    bare.mkdir()
    (bare / "model.safetensors").write_bytes((checkpoints.stdit / "model.safetensors").read_bytes())
    sources = open_sources(bare, checkpoints.t5, checkpoints.vae, Configs("auto", "tiny", "tiny"))
    assert sources[0].config == "tiny"


def test_a_checkpoint_of_another_model_type_is_named(checkpoints, tmp_path):
    with pytest.raises(ValueError, match=r"--stdit .*config.json: model_type 't5', expected 'STDiT3'"):
        open_sources(checkpoints.t5.parent, checkpoints.t5, checkpoints.vae, Configs("auto", "auto", "auto"))
    stated = json.loads((checkpoints.stdit / "config.json").read_text())
    odd = tmp_path / "odd-stdit"
    odd.mkdir()
    (odd / "config.json").write_text(json.dumps({**stated, "hidden_size": 96}))
    (odd / "model.safetensors").write_bytes((checkpoints.stdit / "model.safetensors").read_bytes())
    with pytest.raises(ValueError, match=r"hidden_size 96.* match none of the known configs"):
        open_sources(odd, checkpoints.t5, checkpoints.vae, Configs("auto", "tiny", "tiny"))


def test_random_repositories_of_a_named_config_validate(tmp_path):
    folders = [write_random_repository(c, "tiny", tmp_path / c, seed=5) for c in ("stdit", "t5", "vae")]
    stdit, t5, vae = sources = open_sources(*folders, Configs("auto", "auto", "auto"))
    validate(sources)
    assert (stdit.config, t5.config, vae.config) == ("tiny", "tiny", "tiny")
    assert torch.equal(vae.load("scale"), torch.tensor(get_vae_config("tiny").scale).reshape(vae.expected["scale"]))


def test_float16_conversion_equals_the_direct_float16_export(modules, checkpoints, tmp_path):
    _convert(checkpoints, tmp_path / "converted", dtype="float16", plain_gelu=True)
    units = model_units(modules.t5, modules.stdit, modules.vae)
    export_units([units[1], units[5], units[-2]], tmp_path / "direct", "float16")  # T5 layer 0, ST/TDTM pair, VAE part
    converted, direct = _block_files(tmp_path / "converted"), _block_files(tmp_path / "direct")
    assert len(direct) == 6 and [name for name in direct if converted[name] != direct[name]] == []
    blocks = json.loads((tmp_path / "converted" / "manifest.json").read_text())["blocks"]
    assert {block["dtype"] for block in blocks} == {"float16"}


def test_the_owner_map_covers_the_modules_that_are_exported(checkpoints, tmp_path, monkeypatch):
    """conversion_units replaces every MLP's GELU with FusableTanhGelu; the owner map (id → checkpoint key prefix) must
    be made after that, over the modules exported, not over the ones replaced (whose ids Python may give to new
    objects: that made a conversion fail now and then with a KeyError on `….mlp.act.scale`)."""
    captured = {}
    real_units, real_owners = convert_checkpoint.conversion_units, convert_checkpoint.module_owners

    def spy_units(stdit, t5, vae, fmt, plain_gelu=False):
        captured["sources"] = (stdit, t5, vae)
        return real_units(stdit, t5, vae, fmt, plain_gelu)

    def spy_owners(sources):
        owners = real_owners(sources)
        captured["owners"] = owners
        return owners

    monkeypatch.setattr(convert_checkpoint, "conversion_units", spy_units)
    monkeypatch.setattr(convert_checkpoint, "module_owners", spy_owners)
    _convert(checkpoints, tmp_path / "out")

    owners = captured["owners"]
    for source in captured["sources"]:
        for name, module in source.model.named_modules():
            assert owners.get(id(module), (None,))[0] == (f"{name}." if name else ""), name
    swapped = [module for module in captured["sources"][0].model.modules() if type(module).__name__ == "FusableTanhGelu"]
    assert swapped and all(id(module) in owners for module in swapped)


def test_only_one_unit_is_loaded_at_a_time(checkpoints, tmp_path, monkeypatch):
    """Each unit's tensors are read just before its export and dropped after it (the rest of the models stay on the
    meta device), and every tensor is read once per unit that needs it."""
    captured, loads, exports = {}, [], []
    real_open, real_export, real_load = open_sources, convert_checkpoint.export_unit, convert_checkpoint.Source.load

    def spy_open(*args):
        captured["sources"] = real_open(*args)
        return captured["sources"]

    def spy_load(self, key):
        loads.append(key)
        return real_load(self, key)

    def spy_export(unit, out_dir, dtype):
        real = sum(not p.is_meta for source in captured["sources"] for p in source.model.parameters())
        needed = unit_slots(unit, convert_checkpoint.module_owners(captured["sources"]))
        exports.append((real, sum(1 for slot in needed if slot[2]), len(needed)))
        return real_export(unit, out_dir, dtype)

    monkeypatch.setattr(convert_checkpoint, "open_sources", spy_open)
    monkeypatch.setattr(convert_checkpoint, "export_unit", spy_export)
    monkeypatch.setattr(convert_checkpoint.Source, "load", spy_load)
    _convert(checkpoints, tmp_path / "out")

    assert [real for real, _, _ in exports] == [params for _, params, _ in exports]  # nothing else resident
    upfront = ["y_embedder.y_embedding", "scale", "shift"]  # captured by wrappers when they are built
    assert loads[:3] == upfront and len(loads) == 3 + sum(slots for _, _, slots in exports)
    expected_keys = {key for source in captured["sources"] for key in source.expected}
    assert set(loads) == expected_keys - {"encoder.embed_tokens.weight"}  # the tied embedding is read once
    assert len(exports) == 4 + 6 + 18  # T5: embed, 2 layers, norm; STDiT: part1, 4 pairs, part2; VAE parts


def _write_stdit(tmp_path, state):
    path = tmp_path / "bad-stdit.safetensors"
    write_safetensors(path, state)
    return path


def _drop(*prefixes):
    return lambda state: [state.pop(key) for key in list(state) if key.startswith(prefixes)]


def _set(key, value):
    return lambda state: state.update({key: value})


@pytest.mark.parametrize(
    "edit, message",
    [
        (_drop("spatial_blocks.0.attn.qkv.weight"), "1 missing keys: spatial_blocks.0.attn.qkv.weight"),
        (_set("spatial_blocks.0.attn.extra", torch.zeros(1)), "1 unexpected keys: spatial_blocks.0.attn.extra"),
        (_set("final_layer.linear.bias", torch.zeros(5)), r"1 wrong shapes: final_layer.linear.bias \[5\] \(expected"),
        (_drop("temporal_blocks."), r"missing keys: .* and \d+ more"),
        (_set("final_layer.linear.bias", torch.zeros(32, dtype=torch.int64)),
         r"1 wrong dtypes: final_layer.linear.bias I64 \(expected a float type\)"),
    ],
    ids=["missing", "unexpected", "wrong-shape", "many-missing", "wrong-dtype"],
)
def test_bad_checkpoints_are_rejected_before_anything_is_written(modules, checkpoints, tmp_path, edit, message):
    state = dict(modules.stdit.state_dict())
    edit(state)
    out = tmp_path / "out"
    with pytest.raises(ConversionError, match=message) as raised:
        convert(_write_stdit(tmp_path, state), checkpoints.t5, checkpoints.vae, checkpoints.tokenizer, out,
                configs=TINY, name="tiny")
    assert "--stdit" in str(raised.value) and not out.exists()


def test_cli_refuses_an_integer_weight_in_one_line_writing_nothing(modules, checkpoints, tmp_path, capsys):
    state = dict(modules.stdit.state_dict())
    state["final_layer.linear.bias"] = state["final_layer.linear.bias"].long()
    out = tmp_path / "out"
    args = ["--stdit", _write_stdit(tmp_path, state), "--t5", checkpoints.t5, "--vae", checkpoints.vae,
            "--tokenizer", checkpoints.tokenizer, "--out", out,
            "--config-stdit", "tiny", "--config-t5", "tiny", "--config-vae", "tiny"]
    assert convert_checkpoint.main([str(arg) for arg in args]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "1 wrong dtypes: final_layer.linear.bias I64 (expected a float type)" in lines[0]
    assert not out.exists()


def test_unknown_config_name_is_rejected(checkpoints, tmp_path):
    with pytest.raises(ValueError, match="unknown config 'nope'"):
        convert(checkpoints.stdit, checkpoints.t5, checkpoints.vae, checkpoints.tokenizer, tmp_path / "out",
                configs=Configs("nope", "tiny", "tiny"))


def test_tokenizer_is_required(checkpoints, tmp_path):
    with pytest.raises(ConversionError, match="--tokenizer is required: .*tokenizer.json and tokenizer_config.json"):
        convert(checkpoints.stdit, checkpoints.t5, checkpoints.vae, None, tmp_path / "out", configs=TINY)
    partial = tmp_path / "tokenizer"
    partial.mkdir()
    (partial / "tokenizer.json").write_text("{}")
    with pytest.raises(ConversionError, match="lacks tokenizer_config.json"):
        convert(checkpoints.stdit, checkpoints.t5, checkpoints.vae, partial, tmp_path / "out", configs=TINY)
    assert not (tmp_path / "out").exists()


def test_a_folder_holding_another_model_is_not_overwritten_silently(checkpoints, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps({"name": "other", "architecture": {}}))
    with pytest.raises(ManifestError, match="describes a different model"):
        _convert(checkpoints, out)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"]
    _convert(checkpoints, out, overwrite=True)
    assert json.loads((out / "manifest.json").read_text())["name"] == "tiny"


def test_cli_names_the_overwrite_flag_and_the_failure_in_one_line(checkpoints, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps({"name": "other", "architecture": {}}))
    args = ["--stdit", checkpoints.stdit, "--t5", checkpoints.t5, "--vae", checkpoints.vae,
            "--tokenizer", checkpoints.tokenizer, "--out", out, "--name", "tiny",
            "--config-stdit", "tiny", "--config-t5", "tiny", "--config-vae", "tiny"]
    assert convert_checkpoint.main([str(arg) for arg in args]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].endswith("run again with --overwrite to replace it")
    assert "overwrite=True" not in lines[0]


def test_alternative_key_layouts_are_accepted(modules, tmp_path):
    """T5's tied embedding under its other name, STDiT without rope.freqs, PyTorch pickles, VAE encoder keys."""
    stdit_state = {k: v for k, v in modules.stdit.state_dict().items() if k != "rope.freqs"}
    torch.save({"state_dict": stdit_state}, tmp_path / "stdit.pt")
    t5_state = {k: v for k, v in modules.t5.state_dict().items() if k != "shared.weight"}
    write_safetensors(tmp_path / "t5.safetensors", t5_state)
    torch.save({**modules.vae.state_dict(), **encoder_stand_ins()}, tmp_path / "vae.bin")
    sources = open_sources(tmp_path / "stdit.pt", tmp_path / "t5.safetensors", tmp_path / "vae.bin", TINY)
    validate(sources)
    stdit, t5, _ = sources
    assert torch.equal(stdit.load("rope.freqs"), modules.stdit.rope.freqs)
    assert torch.equal(t5.load("shared.weight"), modules.t5.shared.weight)


class KeyListReader:
    """Keys and shapes of a real checkpoint, from the upstream key fixtures; no tensor data."""

    def __init__(self, path):
        self.path = Path(path)
        self.shapes = {key: tuple(shape) for key, shape in json.loads(self.path.read_text())}

    def keys(self):
        return sorted(self.shapes)

    def shape(self, key):
        return self.shapes[key]

    def dtype(self, key):
        return "F32"  # the fixtures list no dtypes; the published checkpoints are float32

    def is_floating(self, key):
        return True


def test_full_size_upstream_key_sets_validate(tmp_path, monkeypatch):
    vae_keys = json.loads((KEY_FIXTURES / "opensora-vae-v1.2-decoder.json").read_text())
    vae_keys.append(["temporal_vae.encoder.conv_in.conv.weight", [128, 4, 3, 3, 3]])
    (tmp_path / "vae.json").write_text(json.dumps(vae_keys))
    monkeypatch.setattr(convert_checkpoint, "CheckpointReader", KeyListReader)
    sources = open_sources(
        KEY_FIXTURES / "stdit3-xl2.json", KEY_FIXTURES / "t5-v1_1-xxl-encoder.json", tmp_path / "vae.json",
        Configs("STDiT3-XL/2", "t5-v1_1-xxl", "OpenSora-VAE-v1.2"),
    )
    assert [key_problems(source) for source in sources] == [[], [], []]
    sources[0].reader.shapes["x_embedder.proj.weight"] = (1152, 4, 1, 1, 1)
    assert key_problems(sources[0]) == [
        "1 wrong shapes: x_embedder.proj.weight [1152, 4, 1, 1, 1] (expected [1152, 4, 1, 2, 2])"
    ]
