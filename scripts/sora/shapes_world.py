"""The shapes world: a deterministic procedural video world for the embedded `shapes` model.

Every video is one flat-coloured shape on a flat background, 64×64 px, 51 frames at 24 fps (three 17-frame VAE
chunks, 2.1 s). Its caption is composed from four attributes (object colour, shape, motion, background colour), so a
trained model can be checked attribute by attribute with simple image analysis (src/eval/). A fixed set of attribute
combinations never appears in training; those are the evaluation prompts (`world.json` → `heldout`).

Rendering is 4× supersampled and box-filtered, so edges are anti-aliased the way a camera would blur them.
"""

from __future__ import annotations

import itertools
import math
import random
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Tuple, Union

import numpy as np

from sora.jsonio import write_canonical_json

SIZE = 64
FPS = 24
NUM_FRAMES = 51
SUPERSAMPLE = 4

COLOURS: Dict[str, Tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 230),
    "yellow": (240, 220, 40),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
    "purple": (140, 60, 200),
    "orange": (250, 140, 30),
}
SHAPES = ("circle", "square", "triangle")


@dataclass(frozen=True)
class Motion:
    name: str
    kind: str  # translate | still | grow | shrink
    direction: Tuple[int, int]  # image axes: x right, y down
    phrases: Tuple[str, ...]  # the first is the canonical caption phrase


MOTIONS: Tuple[Motion, ...] = (
    Motion("left", "translate", (-1, 0), ("moving left", "moving to the left", "going left")),
    Motion("right", "translate", (1, 0), ("moving right", "moving to the right", "going right")),
    Motion("up", "translate", (0, -1), ("moving up", "moving upwards", "going up")),
    Motion("down", "translate", (0, 1), ("moving down", "moving downwards", "going down")),
    Motion("up-left", "translate", (-1, -1), ("moving up and to the left", "moving diagonally up and left")),
    Motion("up-right", "translate", (1, -1), ("moving up and to the right", "moving diagonally up and right")),
    Motion("down-left", "translate", (-1, 1), ("moving down and to the left", "moving diagonally down and left")),
    Motion("down-right", "translate", (1, 1), ("moving down and to the right", "moving diagonally down and right")),
    Motion("still", "still", (0, 0), ("staying still", "standing still", "not moving")),
    Motion("growing", "grow", (0, 0), ("growing", "getting bigger")),
    Motion("shrinking", "shrink", (0, 0), ("shrinking", "getting smaller")),
)
MOTION_BY_NAME = {motion.name: motion for motion in MOTIONS}

CAPTION_TEMPLATE = "a {colour} {shape} {motion} on a {background} background"
# Training-only rephrasings, so that a prompt worded a little differently still reaches the same attributes.
CAPTION_VARIANTS = (
    "a {colour} {shape} {motion} against a {background} background",
    "{colour} {shape} {motion} on {background} background",
    "a {colour} {shape} on a {background} background, {motion}",
    "a {background} background with a {colour} {shape} {motion}",
)
CANONICAL_SHARE = 0.5
JUNK_WORD_SHARE = 0.15  # captions with one made-up word, so that unknown words learn to mean nothing

HALF_SIZE_RANGE = (8.0, 12.0)  # px; the shape's bounding box is 16–24 px wide
GROW_RANGE = (5.0, 13.0)  # px half-size at the start and end of a growing video
TRAVEL_RANGE = (20.0, 32.0)  # px the centre moves over the clip
MARGIN = 1.0

HELDOUT_COUNT = 64
HELDOUT_SEED = 20260
# 2: `geometry` (the trajectory ranges above), which the strict evaluator measures motion and size against.
WORLD_VERSION = 2


@dataclass(frozen=True)
class Attributes:
    colour: str
    shape: str
    motion: str
    background: str

    def caption(self, template: str = CAPTION_TEMPLATE, phrase_index: int = 0) -> str:
        phrases = MOTION_BY_NAME[self.motion].phrases
        text = template.format(
            colour=self.colour, shape=self.shape, background=self.background, motion=phrases[phrase_index % len(phrases)]
        )
        return re.sub(r"\ba (?=[aeiou])", "an ", text)


def all_combinations() -> List[Attributes]:
    names = list(COLOURS)
    return [
        Attributes(colour, shape, motion.name, background)
        for colour, background in itertools.permutations(names, 2)
        for shape in SHAPES
        for motion in MOTIONS
    ]


def heldout_combinations() -> List[Attributes]:
    """A fixed sample of combinations never trained on. Sampled per motion so every motion is evaluated."""
    rng = random.Random(HELDOUT_SEED)
    combos = all_combinations()
    per_motion = -(-HELDOUT_COUNT // len(MOTIONS))
    chosen: List[Attributes] = []
    for motion in MOTIONS:
        of_motion = [combo for combo in combos if combo.motion == motion.name]
        chosen.extend(rng.sample(of_motion, per_motion))
    return sorted(chosen[:HELDOUT_COUNT], key=lambda a: (a.motion, a.shape, a.colour, a.background))


def training_combinations() -> List[Attributes]:
    heldout = set(heldout_combinations())
    return [combo for combo in all_combinations() if combo not in heldout]


# ============================================================================================
# Rendering
# ============================================================================================


@dataclass(frozen=True)
class Trajectory:
    """Centre (px) and half-size per frame."""

    cx: np.ndarray
    cy: np.ndarray
    half: np.ndarray


def sample_trajectory(motion: Motion, rng: random.Random, frames: int = NUM_FRAMES) -> Trajectory:
    steps = np.linspace(0.0, 1.0, frames)
    if motion.kind in ("grow", "shrink"):
        small, large = GROW_RANGE
        start, end = (small, large) if motion.kind == "grow" else (large, small)
        half = start + (end - start) * steps
        low, high = large + MARGIN, SIZE - large - MARGIN
        cx, cy = rng.uniform(low, high), rng.uniform(low, high)
        return Trajectory(np.full(frames, cx), np.full(frames, cy), half)
    half_size = rng.uniform(*HALF_SIZE_RANGE)
    low, high = half_size + MARGIN, SIZE - half_size - MARGIN
    if motion.kind == "still":
        cx, cy = rng.uniform(low, high), rng.uniform(low, high)
        return Trajectory(np.full(frames, cx), np.full(frames, cy), np.full(frames, half_size))
    dx, dy = motion.direction
    norm = math.hypot(dx, dy)
    travel = min(rng.uniform(*TRAVEL_RANGE), (high - low) * norm / max(abs(dx), abs(dy)))
    ux, uy = dx / norm * travel, dy / norm * travel

    def start_on(axis_travel: float) -> float:
        return rng.uniform(low - min(axis_travel, 0.0), high - max(axis_travel, 0.0))

    x0, y0 = start_on(ux), start_on(uy)
    return Trajectory(x0 + ux * steps, y0 + uy * steps, np.full(frames, half_size))


def _coverage(shape: str, traj: Trajectory) -> np.ndarray:
    """[F, SIZE, SIZE] fraction of each pixel the shape covers (box filter over SUPERSAMPLE² samples)."""
    fine = SIZE * SUPERSAMPLE
    axis = (np.arange(fine) + 0.5) / SUPERSAMPLE
    x = axis[None, None, :]
    y = axis[None, :, None]
    cx, cy, half = (v[:, None, None] for v in (traj.cx, traj.cy, traj.half))
    if shape == "circle":
        inside = (x - cx) ** 2 + (y - cy) ** 2 <= half**2
    elif shape == "square":
        inside = (np.abs(x - cx) <= half) & (np.abs(y - cy) <= half)
    elif shape == "triangle":
        # Apex up at cy - half, base at cy + half spanning cx ± half.
        rel = y - (cy - half)
        inside = (rel >= 0) & (y <= cy + half) & (np.abs(x - cx) <= rel / 2)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    frames = inside.shape[0]
    return inside.reshape(frames, SIZE, SUPERSAMPLE, SIZE, SUPERSAMPLE).mean(axis=(2, 4))


def _paint(video: np.ndarray, attrs: Attributes, traj: Trajectory) -> np.ndarray:
    cover = _coverage(attrs.shape, traj)[..., None]
    return video + (np.array(COLOURS[attrs.colour], dtype=np.float64) - video) * cover


def _background(attrs: Attributes, frames: int) -> np.ndarray:
    return np.broadcast_to(np.array(COLOURS[attrs.background], dtype=np.float64), (frames, SIZE, SIZE, 3))


def render(attrs: Attributes, traj: Trajectory) -> np.ndarray:
    """uint8 video [F, SIZE, SIZE, 3]."""
    return np.rint(_paint(_background(attrs, len(traj.cx)), attrs, traj)).astype(np.uint8)


PAIR_GAP = 2.0  # px between the boxes of a scene's two objects, in every frame
PAIR_ATTEMPTS = 1000


def _apart(a: Trajectory, b: Trajectory) -> bool:
    reach = a.half + b.half + PAIR_GAP
    return bool(np.all((np.abs(a.cx - b.cx) >= reach) | (np.abs(a.cy - b.cy) >= reach)))


def sample_video(scene: "Scene", seed: int, frames: int = NUM_FRAMES) -> np.ndarray:
    """A one-object scene (Attributes) or a two-object one (Pair), on the trajectories `seed` picks. The two objects
    of a pair never touch: each stays whole, so each can be judged on its own shape."""
    rng = random.Random(seed)
    if not isinstance(scene, Pair):
        return render(scene, sample_trajectory(MOTION_BY_NAME[scene.motion], rng, frames))
    for _ in range(PAIR_ATTEMPTS):
        first = sample_trajectory(MOTION_BY_NAME[scene.first.motion], rng, frames)
        second = sample_trajectory(MOTION_BY_NAME[scene.second.motion], rng, frames)
        if _apart(first, second):
            break
    else:
        raise ValueError(f"no trajectories keep {scene.caption()!r} apart")
    video = _paint(_paint(_background(scene.first, frames), scene.first, first), scene.second, second)
    return np.rint(video).astype(np.uint8)


# ============================================================================================
# The two-object world: two shapes, each with its own colour, shape and motion, on one background
# ============================================================================================


PAIR_TEMPLATE = "a {first} and a {second} on a {background} background"
HELDOUT_PAIR_COUNT = 64
HELDOUT_PAIR_SEED = 20261


@dataclass(frozen=True)
class Pair:
    """Two objects of different colours on the background they share (each object's `background`)."""

    first: Attributes
    second: Attributes

    @property
    def objects(self) -> Tuple[Attributes, Attributes]:
        return (self.first, self.second)

    def caption(self, phrase_indices: Tuple[int, int] = (0, 0)) -> str:
        def phrase(attrs: Attributes, index: int) -> str:
            phrases = MOTION_BY_NAME[attrs.motion].phrases
            return f"{attrs.colour} {attrs.shape} {phrases[index % len(phrases)]}"

        text = PAIR_TEMPLATE.format(
            first=phrase(self.first, phrase_indices[0]),
            second=phrase(self.second, phrase_indices[1]),
            background=self.first.background,
        )
        return re.sub(r"\ba (?=[aeiou])", "an ", text)


Scene = Union[Attributes, Pair]


def _random_pair(rng: random.Random) -> Pair:
    background, first_colour, second_colour = rng.sample(list(COLOURS), 3)
    first, second = (
        Attributes(colour, rng.choice(SHAPES), rng.choice(MOTIONS).name, background)
        for colour in (first_colour, second_colour)
    )
    return Pair(first, second)


def heldout_pairs() -> List[Pair]:
    """Two-object scenes never trained on, each of whose objects alone is a training combination: what a two-object
    model is measured on is the composition, not an unseen object."""
    rng = random.Random(HELDOUT_PAIR_SEED)
    trained = set(training_combinations())
    chosen: Dict[Pair, None] = {}
    while len(chosen) < HELDOUT_PAIR_COUNT:
        pair = _random_pair(rng)
        if pair.first in trained and pair.second in trained:
            chosen.setdefault(pair, None)
    return list(chosen)


def training_pairs(count: int, seed: int = 7) -> List[Pair]:
    """`count` random two-object scenes, none of them held out."""
    rng = random.Random(seed)
    heldout = set(heldout_pairs())
    pairs: List[Pair] = []
    while len(pairs) < count:
        pair = _random_pair(rng)
        if pair not in heldout:
            pairs.append(pair)
    return pairs


# ============================================================================================
# Captions for training
# ============================================================================================


def _junk_word(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 7)))


def training_caption(scene: Scene, rng: random.Random) -> str:
    if isinstance(scene, Pair):
        counts = [len(MOTION_BY_NAME[attrs.motion].phrases) for attrs in scene.objects]
        return scene.caption((rng.randrange(counts[0]), rng.randrange(counts[1])))
    attrs = scene
    phrase = rng.randrange(len(MOTION_BY_NAME[attrs.motion].phrases))
    template = CAPTION_TEMPLATE if rng.random() < CANONICAL_SHARE else rng.choice(CAPTION_VARIANTS)
    caption = attrs.caption(template, phrase if template != CAPTION_TEMPLATE or rng.random() < 0.5 else 0)
    if rng.random() < JUNK_WORD_SHARE:
        words = caption.split(" ")
        words.insert(rng.randint(0, len(words)), _junk_word(rng))
        caption = " ".join(words)
    return caption


def caption_words() -> List[str]:
    """Every word a training caption can hold except junk words, in first-seen order (for the tokenizer)."""
    seen: Dict[str, None] = {}
    texts = [CAPTION_TEMPLATE, *CAPTION_VARIANTS]
    for text in texts:
        for word in text.replace(",", " ").split():
            if not word.startswith("{"):
                seen.setdefault(word, None)
    for word in ["an", *PAIR_TEMPLATE.split(), *COLOURS, *SHAPES, *(w for m in MOTIONS for p in m.phrases for w in p.split())]:
        if word.startswith("{"):
            continue
        seen.setdefault(word, None)
    return list(seen)


# ============================================================================================
# world.json: what the evaluator needs to know about this world
# ============================================================================================


def world_description(heldout: Sequence[Attributes], pairs: Sequence[Pair] = ()) -> dict:
    """`pairs`: the held-out two-object scenes of a model trained on the two-object world too."""
    described = {
        "version": WORLD_VERSION,
        "size": SIZE,
        "fps": FPS,
        "num_frames": NUM_FRAMES,
        "colours": {name: list(rgb) for name, rgb in COLOURS.items()},
        "shapes": list(SHAPES),
        "motions": {
            m.name: {"phrase": m.phrases[0], "kind": m.kind, "direction": list(m.direction)} for m in MOTIONS
        },
        "caption_template": CAPTION_TEMPLATE,
        "geometry": {
            "half_size": list(HALF_SIZE_RANGE),
            "grow_half_size": list(GROW_RANGE),
            "travel": list(TRAVEL_RANGE),
            "margin": MARGIN,
        },
        "heldout": [
            {"prompt": a.caption(), "shape": a.shape, "colour": a.colour, "background": a.background, "motion": a.motion}
            for a in heldout
        ],
    }
    if pairs:
        described["max_objects"] = 2
        described["heldout_pairs"] = [
            {
                "prompt": pair.caption(),
                "background": pair.first.background,
                "objects": [dict(shape=a.shape, colour=a.colour, motion=a.motion) for a in pair.objects],
            }
            for pair in pairs
        ]
    return described


def write_world(path: Path, two_objects: bool = False) -> Path:
    pairs = heldout_pairs() if two_objects else ()
    return write_canonical_json(path, world_description(heldout_combinations(), pairs))
