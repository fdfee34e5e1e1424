"""STDiT3 and T5 encoder modules, their per-block wrappers and ONNX exportability.

Key/shape fixtures (test/fixtures/keys/stdit3-xl2.json, t5-v1_1-xxl-encoder.json) were written by hand from
the upstream definitions, not by dumping scripts/sora modules:
* stdit3-xl2.json: hpcaitech/Open-Sora v1.2.0 opensora/models/stdit/stdit3.py + opensora/models/layers/blocks.py
  (STDiT3-XL/2: depth 28, hidden 1152, 16 heads, qk_norm, caption 4096, 300 tokens), timm 0.9.16 Mlp names,
  rotary_embedding_torch 0.5.3 (`freqs` is an nn.Parameter → `rope.freqs`; its other buffers are
  non-persistent), PositionEmbedding2D's buffer is non-persistent (no key).
* t5-v1_1-xxl-encoder.json: transformers T5EncoderModel module tree with the DeepFloyd/t5-v1_1-xxl
  config.json values (d_model 4096, 64 heads × d_kv 64, d_ff 10240, 24 layers, vocab 32128, gated-gelu,
  32 buckets); its state_dict lists the tied embedding under both `shared.weight` and
  `encoder.embed_tokens.weight`.
"""

from __future__ import annotations

import io
import json
import math
import pathlib
from types import SimpleNamespace

import onnx
import pytest
import torch

from sora.configs import get_stdit3_config, get_t5_config
from sora.stdit3 import (
    STDiT3,
    block_diagonal_mask,
    merge_frame_pairs,
    sincos_pos_embed_2d,
    stdit_part2,
    timestep_embedding,
    unmerge_frame_pairs,
)
from sora.stdit_blocks import STDiTBlockPair, STDiTPart1, STDiTPart2
from sora.t5_encoder import T5EncoderModel, additive_mask, relative_position_bucket
from sora.text_blocks import T5Embed, T5FinalNorm, T5Layer, T5Layer0

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "test" / "fixtures" / "keys"
TOKENS = 300
TOLERANCE = 1e-5


def _key_shapes(module: torch.nn.Module):
    return sorted([name, list(tensor.shape)] for name, tensor in module.state_dict().items())


def _load_fixture(name: str):
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture(scope="module")
def tiny_t5():
    torch.manual_seed(0)
    return T5EncoderModel(get_t5_config("tiny")).eval()


@pytest.fixture(scope="module")
def tiny_stdit():
    torch.manual_seed(1)
    return STDiT3(get_stdit3_config("tiny")).eval()


def _t5_inputs(valid: int, vocab: int):
    input_ids = torch.zeros(1, TOKENS, dtype=torch.long)
    input_ids[0, :valid] = torch.randint(2, vocab, (valid,))
    input_ids[0, valid - 1] = 1  # EOS
    return input_ids, additive_mask((input_ids != 0).long())


def _stdit_inputs(model: STDiT3, batch: int, frames: int, h: int, w: int, valid: int):
    cfg = model.config
    mask = torch.zeros(1, TOKENS)
    mask[0, :valid] = 1
    return dict(
        z=torch.randn(batch, cfg.in_channels, frames, h, w),
        t=torch.full((batch,), 731.5),
        y=torch.randn(batch, 1, TOKENS, cfg.caption_channels),
        mask=mask,
        fps=torch.tensor([24.0]),
        height=torch.tensor([8.0 * h]),
        width=torch.tensor([8.0 * w]),
    )


# ------------------------------------------------------------------------------------------ configs


def test_unknown_config_name_raises():
    with pytest.raises(ValueError, match=r"unknown config 'nope'; known: STDiT3-XL/2, shapes, tiny"):
        get_stdit3_config("nope")
    with pytest.raises(ValueError, match=r"unknown config 'nope'; known: shapes, t5-v1_1-xxl, tiny"):
        get_t5_config("nope")


@pytest.mark.parametrize(
    "build, fixture",
    [
        (lambda: STDiT3(get_stdit3_config("STDiT3-XL/2"), device="meta"), "stdit3-xl2.json"),
        (lambda: T5EncoderModel(get_t5_config("t5-v1_1-xxl"), device="meta"), "t5-v1_1-xxl-encoder.json"),
    ],
    ids=["stdit3-xl2", "t5-v1_1-xxl"],
)
def test_full_size_state_dict_matches_upstream_keys(build, fixture):
    assert _key_shapes(build()) == _load_fixture(fixture)


@pytest.mark.parametrize("dropped", ["shared.weight", "encoder.embed_tokens.weight"])
def test_t5_loads_checkpoints_with_one_embedding_name(tiny_t5, dropped):
    state = {k: v for k, v in tiny_t5.state_dict().items() if k != dropped}
    fresh = T5EncoderModel(get_t5_config("tiny"))
    fresh.load_state_dict(state, strict=True)
    assert fresh.encoder.embed_tokens.weight is fresh.shared.weight
    assert torch.equal(fresh.shared.weight, tiny_t5.shared.weight)


# ------------------------------------------------------------------------------ semantics from spec


def test_t5_relative_position_buckets():
    # Bidirectional, 32 buckets, max distance 128: exact below 8, keys after the query use buckets 16..31.
    relative = torch.tensor([0, -1, 1, -7, -8, 8, -16, -127, -1000, 127, 1000])
    expected = [0, 1, 17, 7, 8, 24, 10, 15, 15, 31, 31]
    assert relative_position_bucket(relative, 32, 128).tolist() == expected


def test_timestep_embedding_is_cos_then_sin():
    t = torch.tensor([3.0])
    emb = timestep_embedding(t, 8)
    freqs = [math.exp(-math.log(10000) * k / 4) for k in range(4)]
    expected = [math.cos(3 * f) for f in freqs] + [math.sin(3 * f) for f in freqs]
    assert torch.allclose(emb[0], torch.tensor(expected), atol=1e-6)


def test_position_embedding_layout():
    dim, h, w = 16, 2, 3
    scale, base = torch.tensor([0.5]), torch.tensor(2.0)
    emb = sincos_pos_embed_2d(dim, h, w, scale, base)
    freqs = [10000 ** (-2 * k / (dim // 2)) for k in range(dim // 4)]

    def half(p):
        return [math.sin(p * f) for f in freqs] + [math.cos(p * f) for f in freqs]

    row, col = 1, 2  # token row·w + col; coordinates index / scale · base / n
    expected = half(col / 0.5 * 2 / w) + half(row / 0.5 * 2 / h)
    assert torch.allclose(emb[row * w + col], torch.tensor(expected), atol=1e-5)


def test_tdtm_merge_and_unmerge_odd_frames():
    frames = torch.tensor([5])
    x = torch.arange(5.0).reshape(1, 5, 1, 1)
    merged = merge_frame_pairs(x)
    assert merged.flatten().tolist() == [0.5, 2.5]
    assert unmerge_frame_pairs(merged, frames).flatten().tolist() == [0.5, 0.5, 2.5, 2.5, 2.5]


@pytest.mark.parametrize("frames", [1, 2, 3, 4, 5])
def test_one_graph_per_pair_equals_both_variants_bit_for_bit(tiny_stdit, frames):
    """The ONNX export's block (tdtm="either") reads the variant from the mask's height; its frame matrices multiply
    by 1, ½ and 0 only, so it gives exactly the ST and the TDTM block's numbers."""
    torch.manual_seed(frames)
    space, valid, dim = 6, 3, tiny_stdit.config.hidden_size
    tokens = frames * space
    inputs = (torch.randn(2, tokens, dim), torch.randn(1, 2 * valid, dim), torch.randn(2, 6 * dim))
    either = STDiTBlockPair(tiny_stdit, 1, tdtm="either")
    variants = [(STDiTBlockPair(tiny_stdit, 1), tokens)]
    if frames >= 2:
        variants.append((STDiTBlockPair(tiny_stdit, 1, tdtm=True), frames // 2 * space))
    with torch.no_grad():
        for block, queries in variants:
            args = (*inputs, block_diagonal_mask(2, queries, valid), torch.tensor([frames]))
            assert torch.equal(either(*args)[0], block(*args)[0])


def test_block_diagonal_mask():
    mask = block_diagonal_mask(2, 3, 2)[0, 0]
    assert mask.shape == (6, 4)
    assert (mask[:3, :2] == 0).all() and (mask[3:, 2:] == 0).all()
    assert (mask[:3, 2:] == torch.finfo(torch.float32).min).all()


def test_unpatchify_feature_layout(tiny_stdit):
    """Latent (t, h, w) channel c is feature ((h%2)·2 + w%2)·8 + c of token (t, h//2, w//2); pads are cropped."""
    frames, rows, cols = 2, 2, 3  # patch grid of a 3×6 latent (H odd: padH = 1)
    tokens = torch.arange(frames * rows * cols, dtype=torch.float32)
    x = (tokens[:, None] * 100 + torch.arange(32.0)[None])[None]
    identity_head = SimpleNamespace(config=tiny_stdit.config, final_layer=lambda x, t: x)
    out = stdit_part2(identity_head, torch.zeros(1, 4, frames, 3, 6), x, None, torch.tensor([1]), torch.tensor([0]))
    assert out.shape == (1, 8, frames, 3, 6)
    for t, h, w, c in [(0, 0, 0, 0), (1, 1, 0, 3), (0, 2, 5, 7), (1, 1, 1, 5)]:
        token = (t * rows + h // 2) * cols + w // 2
        assert out[0, c, t, h, w].item() == token * 100 + ((h % 2) * 2 + w % 2) * 8 + c


# --------------------------------------------------------------------------- wrapper chains == full


def test_t5_wrapper_chain_matches_full_encoder(tiny_t5):
    torch.manual_seed(2)
    input_ids, mask = _t5_inputs(valid=23, vocab=tiny_t5.config.vocab_size)
    null_caption = torch.randn(TOKENS, tiny_t5.config.d_model)
    y_embedding = torch.ones(TOKENS, tiny_t5.config.d_model)
    with torch.no_grad():
        expected = tiny_t5(input_ids, mask)
        (hidden,) = T5Embed(tiny_t5)(input_ids)
        hidden, bias, y_null = T5Layer0(tiny_t5, null_caption)(hidden, mask, y_embedding)
        for i in range(1, tiny_t5.config.num_layers):
            (hidden,) = T5Layer(tiny_t5, i)(hidden, mask, bias)
        (out,) = T5FinalNorm(tiny_t5)(hidden)
    assert bias.shape == (1, tiny_t5.config.num_heads, TOKENS, TOKENS)
    assert torch.equal(y_null, null_caption)
    assert torch.isfinite(out).all()
    assert (out - expected).abs().max().item() <= TOLERANCE


def _run_stdit_chain(model: STDiT3, inputs, tdtm: bool, per_head_attn: bool):
    z = inputs["z"]
    pad_h = torch.tensor([z.shape[3] % 2])
    pad_w = torch.tensor([z.shape[4] % 2])
    x, y, t_mlp, frames, t_cond = STDiTPart1(model)(
        z, inputs["t"], inputs["y"], inputs["mask"], inputs["fps"], inputs["height"], inputs["width"], pad_h, pad_w
    )
    batch, tokens = x.shape[0], x.shape[1]
    queries = (frames.item() // 2) * (tokens // frames.item()) if tdtm else tokens
    attn = block_diagonal_mask(batch, queries, y.shape[1] // batch)
    if per_head_attn:
        attn = attn.expand(1, model.config.num_heads, -1, -1).contiguous()
    for i in range(model.config.depth):
        (x,) = STDiTBlockPair(model, i, tdtm=tdtm)(x, y, t_mlp, attn, frames)
    (out,) = STDiTPart2(model)(z, x, t_cond, pad_h, pad_w)
    return out, frames, y


@pytest.mark.parametrize(
    "frames, h, w, tdtm, per_head_attn",
    [
        (4, 8, 8, False, False),
        (5, 7, 9, False, True),
        (4, 7, 9, True, False),
        (5, 8, 5, True, True),
    ],
)
def test_stdit_wrapper_chain_matches_full_forward(tiny_stdit, frames, h, w, tdtm, per_head_attn):
    torch.manual_seed(3)
    inputs = _stdit_inputs(tiny_stdit, batch=2, frames=frames, h=h, w=w, valid=11)
    with torch.no_grad():
        expected = tiny_stdit(**inputs, tdtm=tdtm)
        out, frame_count, y_tokens = _run_stdit_chain(tiny_stdit, inputs, tdtm, per_head_attn)
    assert out.shape == (2, 8, frames, h, w)
    assert frame_count.dtype == torch.int64 and frame_count.tolist() == [frames]
    assert y_tokens.shape == (1, 2 * 11, tiny_stdit.config.hidden_size)
    assert torch.isfinite(out).all()
    assert (out - expected).abs().max().item() <= TOLERANCE


def test_tdtm_changes_the_result(tiny_stdit):
    inputs = _stdit_inputs(tiny_stdit, batch=2, frames=4, h=6, w=6, valid=5)
    with torch.no_grad():
        plain, merged = tiny_stdit(**inputs), tiny_stdit(**inputs, tdtm=True)
    assert not torch.allclose(plain, merged)


# ------------------------------------------------------------------------------------- ONNX export


def _export(wrapper: torch.nn.Module, args) -> onnx.ModelProto:
    buffer = io.BytesIO()
    torch.onnx.export(
        wrapper,
        tuple(args),
        buffer,
        input_names=list(wrapper.INPUTS),
        output_names=list(wrapper.OUTPUTS),
        dynamic_axes=wrapper.DYNAMIC_AXES,
        opset_version=17,
    )
    model = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(model)
    return model


def _assert_signature(model: onnx.ModelProto, wrapper: torch.nn.Module, int64_names=()):
    assert [i.name for i in model.graph.input] == list(wrapper.INPUTS)
    assert [o.name for o in model.graph.output] == list(wrapper.OUTPUTS)
    for value in list(model.graph.input) + list(model.graph.output):
        tensor_type = value.type.tensor_type
        expected_type = onnx.TensorProto.INT64 if value.name in int64_names else onnx.TensorProto.FLOAT
        assert tensor_type.elem_type == expected_type, value.name
        for axis in wrapper.DYNAMIC_AXES.get(value.name, {}):
            assert tensor_type.shape.dim[axis].dim_param, f"{value.name} axis {axis} is not symbolic"


def test_t5_wrappers_export_to_onnx(tiny_t5):
    d = tiny_t5.config.d_model
    input_ids, mask = _t5_inputs(valid=9, vocab=tiny_t5.config.vocab_size)
    hidden = torch.randn(1, TOKENS, d)
    bias = torch.randn(1, tiny_t5.config.num_heads, TOKENS, TOKENS)
    cases = [
        (T5Embed(tiny_t5), [input_ids], ("input_ids",)),
        (T5Layer0(tiny_t5, torch.randn(TOKENS, d)), [hidden, mask, torch.ones(TOKENS, d)], ()),
        (T5Layer(tiny_t5, 1), [hidden, mask, bias], ()),
        (T5FinalNorm(tiny_t5), [hidden], ()),
    ]
    for wrapper, args, int64_names in cases:
        _assert_signature(_export(wrapper, args), wrapper, int64_names)


def test_stdit_wrappers_export_with_symbolic_dims(tiny_stdit):
    inputs = _stdit_inputs(tiny_stdit, batch=2, frames=4, h=7, w=8, valid=6)
    z = inputs["z"]
    pads = [torch.tensor([1]), torch.tensor([0])]
    part1 = STDiTPart1(tiny_stdit)
    part1_args = [z, inputs["t"], inputs["y"], inputs["mask"], inputs["fps"], inputs["height"], inputs["width"]]
    with torch.no_grad():
        x, y, t_mlp, frames, t_cond = part1(*part1_args, *pads)
    int_inputs = ("T", "padH", "padW")
    _assert_signature(_export(part1, part1_args + pads), part1, int_inputs)

    for tdtm in (False, True):
        pair = STDiTBlockPair(tiny_stdit, 0, tdtm=tdtm)
        queries = (x.shape[1] // 2) if tdtm else x.shape[1]
        attn = block_diagonal_mask(2, queries, y.shape[1] // 2)
        _assert_signature(_export(pair, [x, y, t_mlp, attn, frames]), pair, int_inputs)

    part2 = STDiTPart2(tiny_stdit)
    _assert_signature(_export(part2, [z, x, t_cond, *pads]), part2, int_inputs)


def test_fusable_tanh_gelu_matches_nn_gelu_and_exports_the_pow_form():
    from sora.stdit3 import FusableTanhGelu, Mlp, use_fusable_gelu

    x = torch.randn(4, 64, generator=torch.Generator().manual_seed(3)) * 4
    expected = torch.nn.GELU(approximate="tanh")(x)
    assert torch.max(torch.abs(FusableTanhGelu()(x) - expected)).item() <= 1e-6
    mlp = Mlp(8, 32, 8).eval()
    before = mlp(x[:, :8])
    use_fusable_gelu(mlp)
    assert isinstance(mlp.act, FusableTanhGelu)
    assert torch.max(torch.abs(mlp(x[:, :8]) - before)).item() <= 1e-5
    # ORT's FastGeluFusion matches x * 0.5 * (1 + tanh(k * (x + c * Pow(x, 3)))); nn.GELU exports x * (x * x).
    buffer = io.BytesIO()
    torch.onnx.export(FusableTanhGelu(), (x,), buffer, opset_version=17)
    ops = [node.op_type for node in onnx.load_from_string(buffer.getvalue()).graph.node]
    assert ops.count("Pow") == 1 and ops.count("Tanh") == 1
