"""The procedural shapes world: held-out split, rendering, captions, tokenizer coverage, world.json."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from sora.shapes_world import (
    COLOURS,
    MOTION_BY_NAME,
    MOTIONS,
    NUM_FRAMES,
    SIZE,
    Attributes,
    all_combinations,
    caption_words,
    heldout_combinations,
    render,
    sample_trajectory,
    sample_video,
    training_caption,
    training_combinations,
    write_world,
)
from sora.tokenizer_builder import build_tokenizer
from sora.unigram import UnigramTokenizer


def test_heldout_is_fixed_disjoint_and_covers_every_motion():
    heldout = heldout_combinations()
    assert heldout == heldout_combinations()
    assert len(heldout) == 64
    assert not set(heldout) & set(training_combinations())
    assert len(training_combinations()) + len(heldout) == len(all_combinations())
    assert {a.motion for a in heldout} == {m.name for m in MOTIONS}


def test_every_attribute_value_is_trained():
    trained = training_combinations()
    assert {a.colour for a in trained} == set(COLOURS) == {a.background for a in trained}
    assert {a.motion for a in trained} == {m.name for m in MOTIONS}


def test_videos_are_deterministic_and_two_seconds_at_24_fps():
    attrs = Attributes("red", "circle", "left", "black")
    video = sample_video(attrs, seed=5)
    assert video.shape == (NUM_FRAMES, SIZE, SIZE, 3) and video.dtype == np.uint8
    assert NUM_FRAMES / 24 >= 2
    assert np.array_equal(video, sample_video(attrs, seed=5))
    assert not np.array_equal(video, sample_video(attrs, seed=6))


def _object_mask(frame: np.ndarray, background: str) -> np.ndarray:
    return np.abs(frame.astype(int) - COLOURS[background]).sum(-1) > 60


@pytest.mark.parametrize("shape, fill", [("circle", np.pi / 4), ("square", 1.0), ("triangle", 0.5)])
def test_shapes_fill_their_bounding_box_as_geometry_says(shape, fill):
    video = sample_video(Attributes("blue", shape, "still", "white"), seed=1)
    mask = _object_mask(video[0], "white")
    ys, xs = np.nonzero(mask)
    box = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
    assert mask.sum() / box == pytest.approx(fill, abs=0.08)
    colour = video[0][mask].mean(0)
    assert np.abs(colour - COLOURS["blue"]).max() < 40


@pytest.mark.parametrize("motion", [m.name for m in MOTIONS if m.kind == "translate"])
def test_translation_moves_the_centroid_the_named_way_and_stays_in_frame(motion):
    for seed in range(5):
        video = sample_video(Attributes("yellow", "square", motion, "black"), seed=seed)
        masks = [_object_mask(frame, "black") for frame in video]
        first, last = (np.argwhere(m).mean(0) for m in (masks[0], masks[-1]))  # (y, x)
        dx, dy = MOTION_BY_NAME[motion].direction
        moved = last - first
        assert np.hypot(*moved) >= 19
        assert np.sign(np.round(moved[1] / 5)) == dx and np.sign(np.round(moved[0] / 5)) == dy
        for m in (masks[0], masks[-1]):
            assert not (m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any())


def test_growing_and_shrinking_change_the_area():
    rng = random.Random(3)
    grow = sample_trajectory(MOTION_BY_NAME["growing"], rng)
    assert grow.half[-1] > 2 * grow.half[0]
    video = render(Attributes("green", "circle", "shrinking", "white"), sample_trajectory(MOTION_BY_NAME["shrinking"], rng))
    areas = [_object_mask(frame, "white").sum() for frame in video]
    assert areas[-1] * 4 < areas[0]


def test_training_captions_tokenize_without_unknown_words():
    tokenizer_json, _ = build_tokenizer(256, caption_words())
    tokenizer = UnigramTokenizer(tokenizer_json)
    vocab = {piece for piece, _ in tokenizer_json["model"]["vocab"]}
    rng = random.Random(0)
    for attrs in training_combinations()[:200]:
        caption = training_caption(attrs, rng)
        assert attrs.colour in caption and attrs.shape in caption and attrs.background in caption
        known = [word for word in caption.replace(",", " ").split() if "\u2581" + word in vocab]
        assert len(known) >= len(caption.replace(",", " ").split()) - 1  # at most one made-up word
        assert tokenizer.unk_id not in tokenizer.encode(caption)


def test_canonical_caption_uses_an_before_vowels():
    assert Attributes("orange", "square", "up", "white").caption() == "an orange square moving up on a white background"
    assert Attributes("red", "circle", "left", "orange").caption() == "a red circle moving left on an orange background"


def test_world_file_lists_heldout_prompts_with_attributes(tmp_path):
    world = json.loads(write_world(tmp_path / "world.json").read_text())
    assert world["size"] == SIZE and world["num_frames"] == NUM_FRAMES and world["fps"] == 24
    assert len(world["heldout"]) == 64
    entry = world["heldout"][0]
    attrs = Attributes(entry["colour"], entry["shape"], entry["motion"], entry["background"])
    assert entry["prompt"] == attrs.caption()
    assert set(world["motions"]) == {m.name for m in MOTIONS}


def test_two_object_scenes_are_held_out_as_compositions_and_drawn_with_both_objects(tmp_path):
    from sora.shapes_world import Pair, heldout_pairs, training_pairs, world_description

    pairs = heldout_pairs()
    assert pairs == heldout_pairs() and len(set(pairs)) == 64
    assert not set(pairs) & set(training_pairs(2000))
    trained = set(training_combinations())
    for pair in pairs:
        assert pair.first in trained and pair.second in trained  # each object alone was trained on
        assert len({pair.first.colour, pair.second.colour, pair.first.background}) == 3
        assert pair.first.background == pair.second.background
    pair = Pair(Attributes("red", "circle", "left", "white"), Attributes("blue", "square", "up", "white"))
    assert pair.caption() == "a red circle moving left and a blue square moving up on a white background"
    video = sample_video(pair, seed=3)
    for colour in ("red", "blue", "white"):
        assert (np.abs(video.astype(int) - COLOURS[colour]).sum(-1) < 10).any(axis=(1, 2)).all()
    described = world_description(heldout_combinations(), pairs)
    assert described["max_objects"] == 2 and len(described["heldout_pairs"]) == 64
    assert described["heldout_pairs"][0]["objects"][0].keys() == {"shape", "colour", "motion"}
    assert training_caption(pair, random.Random(0)).endswith("on a white background")
