"""Compositional suites as data, and the synthetic twins of ARO, COCO-Order and Winoground.

A suite is a JSON-lines file, one item per line, of two kinds:

- a choice: one image, several captions, the index of the true one::

    {"id": "rel-12", "subset": "left of", "image": REF, "captions": ["a red circle to the left of a blue square",
     "a blue square to the left of a red circle"], "answer": 0}

- a Winoground-style pair: two images and two captions, caption k true of image k::

    {"id": "wino-3", "subset": "left of", "images": [REF, REF], "captions": ["...", "..."]}

An image REF is one of
``{"file": "img.jpg"}`` (relative to the suite file; optional ``"box": [x, y, w, h]`` crops it),
``{"synthetic": {"seed": 0, "split": "test", "index": 12}}`` (a scene of the world; optional
``"world": "v4"`` and ``"held_out": true`` pick the world's version and options), or
``{"layout": {"seed": 3, "canvas": 96, "objects": [{"shape": "circle", "colour": "red",
"size": "small", "centre": [30, 48]}, ...], "arrows": [[0, 1]]}}`` (objects drawn where they
are told, with optional arrows from one object to another, by index; an object may also
give world v4's ``radius``, ``angle``, ``stretch`` and ``shade``, and the layout a
``style``).

The synthetic suites are drawn in a world version (`world=`, the checkpoint's by
default in evaluate.compositional). In world v4, relation swap asks about five
predicates with the same number of items each (subsets by predicate), and the
Winoground-style pairs hold 2 to 5 objects, the pair up to 20° off the axis with
the others near it (subsets by object count). The ``heldout-*`` suites (world v4
only) ask only about the combinations data.world_v4 holds out of training with
``--held-out-combinations``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from data.negatives import order_perturbations
from data.synthetic import (
    COLOURS,
    DEFAULT_WORLD,
    PHRASES,
    SHAPES,
    Scene,
    SceneObject,
    Style,
    arrow_mask,
    check_world,
    describe_triplet,
    make_scene,
    render_scene,
)
from graphs.schema import PREDICATES

SYNTHETIC_SUITES = (
    "relation-swap",
    "attribute-swap",
    "word-order",
    "winoground-synthetic",
    "heldout-relation-swap",
    "heldout-winoground",
)
SYMMETRIC = {"next to", "overlapping", "near"}
WINOGROUND_PREDICATES = ("left of", "above", "points at")


def read_suite(path: str | Path) -> list[dict]:
    """Items of a suite file, validated; a bad line names the file and line number."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"suite file {path} does not exist")
    items = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{where}: not valid JSON ({error.msg})") from None
        check_item(item, where)
        items.append(item)
    if not items:
        raise ValueError(f"{path} holds no items")
    return items


def check_item(item: dict, where: str) -> None:
    if not isinstance(item, dict) or not isinstance(item.get("captions"), list) or len(item["captions"]) < 2:
        raise ValueError(f"{where}: an item needs at least two 'captions'")
    if "images" in item:
        if len(item["images"]) != 2 or len(item["captions"]) != 2:
            raise ValueError(f"{where}: a pair item needs exactly two images and two captions")
    elif "image" in item:
        answer = item.get("answer")
        if not isinstance(answer, int) or not 0 <= answer < len(item["captions"]):
            raise ValueError(f"{where}: 'answer' must index the captions (0..{len(item['captions']) - 1})")
    else:
        raise ValueError(f"{where}: an item needs 'image' (a choice) or 'images' (a pair)")
    for ref in item.get("images", [item.get("image")]):
        if not isinstance(ref, dict) or not ({"file", "synthetic", "layout"} & ref.keys()):
            raise ValueError(f"{where}: an image must be {{'file': ...}}, {{'synthetic': ...}} or {{'layout': ...}}")


class UndrawableLayout(ValueError):
    """A layout the renderer cannot draw as told: an arrow with no room between its two objects.

    Moving the objects to make room would change what the item asks, so such an item is
    skipped, counted and named, never drawn otherwise."""


def layout_object(o: dict) -> SceneObject:
    """A layout's object, with world v4's pose and shade where given."""
    pose = {k: o[k] for k in ("radius", "angle", "stretch") if k in o}
    shade = {"shade": tuple(o["shade"])} if "shade" in o else {}
    return SceneObject(o["shape"], o["colour"], o["size"], tuple(o["centre"]), **pose, **shade)


def render_layout(spec: dict) -> Scene:
    """The scene of a ``{"layout": ...}`` image REF; `UndrawableLayout` when an arrow has no room."""
    objects = [layout_object(o) for o in spec["objects"]]
    arrows = [(int(a), int(b)) for a, b in spec.get("arrows", [])]
    canvas = spec.get("canvas", 96)
    style = None
    if "style" in spec:
        style = Style(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec["style"].items()})
    if arrows:
        masks = np.stack([o.mask(canvas) for o in objects])
        for tail, head in arrows:
            if not (0 <= tail < len(objects) and 0 <= head < len(objects)):
                raise ValueError(f"arrow [{tail}, {head}] names an object outside 0..{len(objects) - 1}")
            if arrow_mask(objects[tail].centre, objects[head].centre, masks, canvas, style) is None:
                raise UndrawableLayout(f"no room for an arrow from object {tail} to object {head}")
    return render_scene(objects, np.random.default_rng(spec.get("seed", 0)), canvas, arrows=arrows, style=style)


def scene_of_ref(spec: dict) -> Scene:
    """The scene of a ``{"synthetic": ...}`` image REF."""
    world, held_out = spec.get("world", DEFAULT_WORLD), bool(spec.get("held_out", False))
    return make_scene(spec.get("seed", 0), spec.get("split", "test"), spec["index"], world=world, held_out=held_out)


def world_of(settings, world: str | None = None) -> dict:
    """The world options of a run's params or DataOptions (world v3 for runs older than the option),
    or `world` instead of its version where given (held-out combinations stay v4's)."""
    values = settings if isinstance(settings, dict) else vars(settings)
    world = world or values.get("world") or DEFAULT_WORLD
    return {"world": world, "held_out": bool(values.get("held_out_combinations")) and world != DEFAULT_WORLD}




def write_suite(items: list[dict], path: str | Path) -> None:
    Path(path).write_text("".join(json.dumps(item) + "\n" for item in items))


def _unique_phrases(scene: Scene) -> list[bool]:
    phrases = [obj.phrase for obj in scene.objects]
    return [phrases.count(p) == 1 for p in phrases]


def _scenes(
    seed: int, split: str = "test", world: str = DEFAULT_WORLD, held_out: bool = False
) -> Iterator[tuple[int, Scene]]:
    index = 0
    while True:
        yield index, make_scene(seed, split, index, world=world, held_out=held_out)
        index += 1


def _ref(seed: int, index: int, world: str = DEFAULT_WORLD, held_out: bool = False) -> dict:
    spec = {"seed": seed, "split": "test", "index": index}
    if world != DEFAULT_WORLD:
        spec["world"] = world
    if held_out:
        spec["held_out"] = True
    return {"synthetic": spec}


def relation_swap(count: int = 300, seed: int = 0, world: str = DEFAULT_WORLD, held_out: bool = False) -> list[dict]:
    """The true relation against subject and object swapped (ARO VG-Relation), subsets by predicate.

    World v3: every other scene with an arrow is asked about its arrow ("points at"),
    the relation whose direction only the scene graph's directional edges carry.
    World v4: evaluate.suites_v4.balanced_relation_swap, the same number of items per predicate."""
    check_world(world, held_out)
    if world != DEFAULT_WORLD:
        from evaluate.suites_v4 import balanced_relation_swap

        return balanced_relation_swap(count, seed, world, held_out)
    items = []
    for index, scene in _scenes(seed):
        if len(items) == count:
            break
        unique = _unique_phrases(scene)
        candidates = [t for t in scene.triplets if PREDICATES[t[1]] not in SYMMETRIC and unique[t[0]] and unique[t[2]]]
        if not candidates:
            continue
        drawn = [t for t in candidates if PREDICATES[t[1]] == "points at"]
        s, p, o = drawn[0] if drawn and index % 2 == 0 else candidates[index % len(candidates)]
        true = describe_triplet(scene, (s, p, o))
        false = describe_triplet(scene, (o, p, s))
        ref = {"synthetic": {"seed": seed, "split": "test", "index": index}}
        items.append(
            {"id": f"rel-{index}", "subset": PREDICATES[p], "image": ref, "captions": [true, false], "answer": 0}
        )
    return items


def attribute_swap(count: int = 300, seed: int = 0, world: str = DEFAULT_WORLD, held_out: bool = False) -> list[dict]:
    """Two objects with their colours (or sizes) swapped (ARO VG-Attribution)."""
    check_world(world, held_out)
    items = []
    for index, scene in _scenes(seed, "test", world, held_out):
        if len(items) == count:
            break
        objects = scene.objects
        pairs = [
            (a, b)
            for a in range(len(objects))
            for b in range(a + 1, len(objects))
            if objects[a].shape != objects[b].shape
        ]
        rng = np.random.default_rng([seed, index])
        for k in rng.permutation(len(pairs)).tolist():
            first, second = objects[pairs[k][0]], objects[pairs[k][1]]
            attribute = "colour" if first.colour != second.colour else "size" if first.size != second.size else None
            if attribute is None:
                continue
            swapped = [(getattr(second, attribute), first), (getattr(first, attribute), second)]
            present = {(getattr(o, attribute), o.shape) for o in objects}
            if any((value, obj.shape) in present for value, obj in swapped):
                continue  # the swapped description would also be true
            if attribute == "colour":
                true = f"a {first.colour} {first.shape} and a {second.colour} {second.shape}"
                false = f"a {second.colour} {first.shape} and a {first.colour} {second.shape}"
            else:
                true = f"a {first.size} {first.shape} and a {second.size} {second.shape}"
                false = f"a {second.size} {first.shape} and a {first.size} {second.shape}"
            ref = _ref(seed, index, world, held_out)
            items.append(
                {"id": f"attr-{index}", "subset": attribute, "image": ref, "captions": [true, false], "answer": 0}
            )
            break
    return items


def word_order(count: int = 300, seed: int = 0, world: str = DEFAULT_WORLD, held_out: bool = False) -> list[dict]:
    """A true relation caption against four word-order perturbations of it (COCO-Order)."""
    check_world(world, held_out)
    items = []
    for index, scene in _scenes(seed, "test", world, held_out):
        if len(items) == count:
            break
        rng = np.random.default_rng([seed, index, 7])
        caption = describe_triplet(scene, scene.triplets[0])
        wrong = order_perturbations(caption, rng)
        if wrong is None:
            continue
        ref = _ref(seed, index, world, held_out)
        items.append(
            {"id": f"order-{index}", "subset": "order", "image": ref, "captions": [caption, *wrong], "answer": 0}
        )
    return items


def winoground_synthetic(
    count: int = 200, seed: int = 0, canvas: int = 96, world: str = DEFAULT_WORLD, held_out: bool = False
) -> list[dict]:
    """Pairs of images that differ only by who is where, or by which way the arrow between
    the same two objects points, with the two captions that say so. World v3: the two
    objects alone, on the axis, subsets by predicate; world v4:
    evaluate.suites_v4.crowded_winoground, 2 to 5 objects, subsets by object count."""
    check_world(world, held_out)
    if world != DEFAULT_WORLD:
        from evaluate.suites_v4 import crowded_winoground

        return crowded_winoground(count, seed, canvas, held_out)
    rng = np.random.default_rng([seed, 99])
    items = []
    while len(items) < count:
        first, second = (
            SceneObject(
                SHAPES[rng.integers(len(SHAPES))],
                list(COLOURS)[rng.integers(len(COLOURS))],
                "small" if rng.random() < 0.5 else "large",
                (0.0, 0.0),
            )
            for _ in range(2)
        )
        if first.phrase == second.phrase:
            continue
        predicate = WINOGROUND_PREDICATES[rng.integers(len(WINOGROUND_PREDICATES))]
        low, high, jitter = (23, 28, 5) if predicate == "points at" else (18, 26, 6)  # room for the arrow
        offset = rng.uniform(low, high) * canvas / 96
        along, across = canvas / 2 + rng.uniform(-jitter, jitter), canvas / 2 + rng.uniform(-10, 10)
        spots = [(along - offset, across), (along + offset, across)]
        if predicate == "above" or (predicate == "points at" and rng.random() < 0.5):
            spots = [(y, x) for x, y in spots]
        layouts = []
        for a, b in ((first, second), (second, first)):
            if predicate == "points at":  # the same picture, the arrow turned round
                placed, arrows = ((first, spots[0]), (second, spots[1])), [[0, 1] if a is first else [1, 0]]
            else:  # the same two objects, their places swapped
                placed, arrows = ((a, spots[0]), (b, spots[1])), []
            objects = [
                {"shape": o.shape, "colour": o.colour, "size": o.size, "centre": list(map(float, spot))}
                for o, spot in placed
            ]
            layout = {"seed": int(rng.integers(1 << 30)), "canvas": canvas, "objects": objects, "arrows": arrows}
            layouts.append({"layout": layout})
        captions = [f"a {a.phrase} {PHRASES[predicate]} a {b.phrase}" for a, b in ((first, second), (second, first))]
        items.append({"id": f"wino-{len(items)}", "subset": predicate, "images": layouts, "captions": captions})
    return items


def synthetic_suite(
    name: str, count: int | None = None, seed: int = 0, world: str = DEFAULT_WORLD, held_out: bool = False
) -> list[dict]:
    """A synthetic suite by name, drawn in a world version (the heldout-* suites in world v4 only)."""
    from evaluate.suites_v4 import heldout_relation_swap, heldout_winoground

    makers = {
        "relation-swap": relation_swap,
        "attribute-swap": attribute_swap,
        "word-order": word_order,
        "winoground-synthetic": winoground_synthetic,
        "heldout-relation-swap": heldout_relation_swap,
        "heldout-winoground": heldout_winoground,
    }
    if name not in makers:
        raise ValueError(f"unknown suite {name!r}; synthetic suites: {', '.join(SYNTHETIC_SUITES)}, or a .jsonl file")
    if name.startswith("heldout-"):
        if world == DEFAULT_WORLD:
            raise ValueError(f"suite {name} asks about world v4's held-out combinations: it needs world v4")
        return makers[name](count, seed) if count else makers[name](seed=seed)
    options = {"world": world, "held_out": held_out}
    return makers[name](count, seed, **options) if count else makers[name](seed=seed, **options)
