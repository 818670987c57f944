"""The synthetic suites of world v4, and the held-out-combination suites.

- balanced relation swap: the true relation against subject and object
  swapped, the same number of items for each of HEADLINE_PREDICATES (the
  least-filled predicate a scene offers is asked first), so that every subset a
  headline averages holds enough items;
- crowded Winoground-style pairs: two images and two captions, the pair's two
  objects swapped (or its arrow turned round) while 0 to 3 other objects stay
  put near them; the pair lies up to 20° off the axis; subsets by object count
  ("2 objects" ... "5 objects");
- heldout-relation-swap and heldout-winoground: the same, keeping only the
  items whose true caption names a combination data.world_v4 holds out of
  training (a held-out (shape, colour), or a relation whose canonical telling
  has a held-out (predicate, subject shape)); drawn from the full world v4.

Every pair is rendered here and checked with data.negatives.statement_holds:
caption k holds for image k and not for the other image.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, replace

import numpy as np

from data.negatives import held_out_in_text, held_out_kinds, statement_holds
from data.synthetic import PHRASES, SceneObject, describe_triplet, inside_canvas
from data.world_v4 import OFF_AXIS, draw_object, draw_style, geometry_agrees, held_out_facts, place_beside, reach
from evaluate.suites import SYMMETRIC, WINOGROUND_PREDICATES, _ref, _scenes, _unique_phrases, render_layout
from graphs.schema import PREDICATES

HEADLINE_PREDICATES = ("left of", "above", "on top of", "inside", "points at")
SCENES_PER_ITEM = 40  # how many test scenes a suite may look through per item before it stops short
PAIR_OBJECTS = (2, 5)  # fewest and most objects in a crowded pair's images


def balanced_relation_swap(
    count: int = 500,
    seed: int = 0,
    world: str = "v4",
    held_out: bool = False,
    wanted: Callable[[str], bool] | None = None,
    prefix: str = "rel",
) -> list[dict]:
    """Relation swap with count / 5 items (rounded up) per headline predicate, in scene order.

    `wanted` keeps only the items whose true caption it accepts. When the test
    scenes run out (count × SCENES_PER_ITEM of them) the suite stops short: the
    subsets report their sizes and the headline leaves out those under 50."""
    quota = -(-count // len(HEADLINE_PREDICATES))
    filled: Counter = Counter()
    items = []
    for index, scene in _scenes(seed, "test", world, held_out):
        if len(items) == count or index >= count * SCENES_PER_ITEM:
            break
        unique = _unique_phrases(scene)
        candidates = []
        for position, (s, p, o) in enumerate(scene.triplets):
            name = PREDICATES[p]
            if name in SYMMETRIC or name not in HEADLINE_PREDICATES or filled[name] >= quota:
                continue
            if not (unique[s] and unique[o]):
                continue
            true = describe_triplet(scene, (s, p, o))
            if wanted is None or wanted(true):
                candidates.append((filled[name], position, name, true, describe_triplet(scene, (o, p, s))))
        if not candidates:
            continue
        _, _, name, true, false = min(candidates)
        filled[name] += 1
        ref = _ref(seed, index, world, held_out)
        items.append({"id": f"{prefix}-{index}", "subset": name, "image": ref, "captions": [true, false], "answer": 0})
    return items


def _layout(objects: list[SceneObject], arrows: list, style, seed: int, canvas: int) -> dict:
    as_dicts = [
        {
            "shape": o.shape,
            "colour": o.colour,
            "size": o.size,
            "centre": [float(v) for v in o.centre],
            "radius": o.radius,
            "angle": o.angle,
            "stretch": o.stretch,
            "shade": list(o.shade),
        }
        for o in objects
    ]
    style = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(style).items()}
    return {"layout": {"seed": seed, "canvas": canvas, "objects": as_dicts, "arrows": arrows, "style": style}}


def _distractors(
    rng: np.random.Generator, pair: list[SceneObject], count: int, canvas: int, held_out: bool
) -> list[SceneObject] | None:
    """`count` objects near the pair, clear of it and of each other, named unlike the pair's two."""
    placed = list(pair)
    phrases = {o.phrase for o in pair}
    for _ in range(40 * count + 1):
        if len(placed) == len(pair) + count:
            return placed[len(pair) :]
        obj = draw_object(rng, held_out)
        if obj.phrase in phrases:
            continue
        host = placed[rng.integers(len(placed))]
        candidate = place_beside(host, obj, rng.uniform(0, 360), rng.uniform(2, 10) * canvas / 96, canvas)
        if not inside_canvas(candidate, canvas):
            continue
        if any(
            np.hypot(*np.subtract(candidate.centre, other.centre)) < reach(candidate, canvas) + reach(other, canvas) + 2
            for other in placed
        ):
            continue
        placed.append(candidate)
    return None


def crowded_pair(rng: np.random.Generator, canvas: int = 96, held_out: bool = False) -> dict | None:
    """One Winoground-style item of world v4, or None where the draw does not check out."""
    first, second = draw_object(rng, held_out), draw_object(rng, held_out)
    if first.phrase == second.phrase:
        return None
    predicate = WINOGROUND_PREDICATES[rng.integers(len(WINOGROUND_PREDICATES))]
    vertical = predicate == "above" or (predicate == "points at" and rng.random() < 0.5)
    angle = (90.0 if vertical else 0.0) + rng.uniform(-OFF_AXIS, OFF_AXIS)
    gap = rng.uniform(14, 24) if predicate == "points at" else rng.uniform(4, 14)  # room for the arrow
    distance = reach(first, canvas) + reach(second, canvas) + gap * canvas / 96
    direction = np.array([np.cos(np.deg2rad(angle)), np.sin(np.deg2rad(angle))])
    middle = canvas / 2 + rng.uniform(-10, 10, size=2) * canvas / 96
    spots = [tuple(float(v) for v in middle + side * distance / 2 * direction) for side in (-1, 1)]
    objects = int(rng.integers(PAIR_OBJECTS[0], PAIR_OBJECTS[1] + 1))
    at_spots = [replace(o, centre=spot) for o, spot in zip((first, second), spots, strict=True)]
    others = _distractors(rng, at_spots, objects - 2, canvas, held_out)
    if others is None:
        return None
    style, seeds = draw_style(rng), [int(v) for v in rng.integers(1 << 30, size=2)]
    layouts = []
    for k, (a, b) in enumerate(((first, second), (second, first))):
        if predicate == "points at":  # the same picture, the arrow turned round
            placed, arrows = at_spots, [[0, 1] if k == 0 else [1, 0]]
        else:  # the same two objects, their places swapped
            placed = [replace(o, centre=spot) for o, spot in zip((a, b), spots, strict=True)]
            arrows = []
        layouts.append(_layout([*placed, *others], arrows, style, seeds[k], canvas))
    captions = [f"a {a.phrase} {PHRASES[predicate]} a {b.phrase}" for a, b in ((first, second), (second, first))]
    for k, layout in enumerate(layouts):
        try:
            scene = render_layout(layout["layout"])
        except ValueError:  # no room for the arrow
            return None
        if len(scene.objects) != objects or not all(inside_canvas(o, canvas) for o in scene.objects):
            return None
        if not geometry_agrees(np.stack([o.mask(canvas) for o in scene.objects])):
            return None
        if not statement_holds(scene, captions[k]) or statement_holds(scene, captions[1 - k]):
            return None
        if held_out and held_out_facts(scene.objects, scene.triplets):
            return None
    return {"subset": f"{objects} objects", "predicate": predicate, "images": layouts, "captions": captions}


def crowded_winoground(
    count: int = 200,
    seed: int = 0,
    canvas: int = 96,
    held_out: bool = False,
    wanted: Callable[[dict], bool] | None = None,
    prefix: str = "wino",
) -> list[dict]:
    """Winoground-style pairs of world v4 (2 to 5 objects, off the axis), subsets by object count."""
    rng = np.random.default_rng([seed, 99, 4])
    items = []
    while len(items) < count:
        item = crowded_pair(rng, canvas, held_out)
        if item is not None and (wanted is None or wanted(item)):
            items.append({"id": f"{prefix}-{len(items)}", **item})
    return items


def held_out_label(captions: list[str]) -> str:
    """What an item's captions hold out, for its `held_out` breakdown: ``object`` when one names a
    held-out (shape, colour), else ``relation`` (a held-out (predicate, subject shape))."""
    kinds = set().union(*(held_out_kinds(caption) for caption in captions))
    return "object" if "object" in kinds else "relation"


def heldout_relation_swap(count: int = 500, seed: int = 0) -> list[dict]:
    """Balanced relation swap whose true captions all name a held-out combination; each item's
    `held_out` says which kind its true caption names (evaluate.compositional scores each kind)."""
    items = balanced_relation_swap(count, seed, "v4", False, wanted=held_out_in_text, prefix="heldout-rel")
    return [item | {"held_out": held_out_label([item["captions"][item["answer"]]])} for item in items]


def heldout_winoground(count: int = 200, seed: int = 0, canvas: int = 96) -> list[dict]:
    """Crowded Winoground-style pairs one of whose captions names a held-out combination; each
    item's `held_out` says which kind its captions name."""

    def names_one(item: dict) -> bool:
        return any(held_out_in_text(caption) for caption in item["captions"])

    items = crowded_winoground(count, seed, canvas, False, wanted=names_one, prefix="heldout-wino")
    return [item | {"held_out": held_out_label(item["captions"])} for item in items]
