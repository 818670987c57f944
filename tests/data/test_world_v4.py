import hashlib
from dataclasses import replace

import numpy as np
import pytest

from data.datasets import SyntheticBuilder
from data.negatives import hard_negatives, held_out_in_text, statement_holds, twin_scene
from data.synthetic import COLOURS, SceneObject, Style, make_scene, render_scene
from data.world_v4 import (
    HELD_OUT_OBJECTS,
    HELD_OUT_RELATIONS,
    MAX_ANGLE,
    MAX_ANGLE_OF,
    MAX_SHADE,
    MAX_STRETCH,
    RADII,
    held_out_facts,
)
from graphs import build_graph
from graphs.relations import mask_intersections
from graphs.schema import PREDICATES


@pytest.fixture(scope="module")
def v4_scenes():
    return [make_scene(0, "train", index, world="v4") for index in range(120)]


def test_world_v3_is_still_the_default_and_unchanged():
    scene = make_scene(0, "train", 0)
    assert scene.style is None and all(not o.posed and o.radius is None for o in scene.objects)
    # the image world v3 drew for (0, train, 0) before world v4 existed
    assert hashlib.sha1(scene.image.tobytes()).hexdigest() == "fa902d738c369d15ef89627dc9e7cfbfd8c3ba71"
    assert np.array_equal(make_scene(0, "train", 0, world="v3").image, scene.image)


def test_v4_scenes_are_a_pure_function_of_seed_split_and_index():
    a, b = make_scene(3, "val", 7, world="v4"), make_scene(3, "val", 7, world="v4")
    assert np.array_equal(a.image, b.image) and np.array_equal(a.masks, b.masks)
    assert a.objects == b.objects and a.triplets == b.triplets and a.captions == b.captions and a.style == b.style
    assert not np.array_equal(a.image, make_scene(4, "val", 7, world="v4").image)
    assert not np.array_equal(a.image, make_scene(3, "test", 7, world="v4").image)
    assert not np.array_equal(a.image, make_scene(3, "val", 7).image)


def test_unknown_world_and_held_out_in_v3_are_errors():
    with pytest.raises(ValueError, match="unknown world 'v9'"):
        make_scene(0, "train", 0, world="v9")
    with pytest.raises(ValueError, match="held-out combinations are part of world v4"):
        make_scene(0, "train", 0, held_out=True)


def spread(values, low, high, margin):
    """All values within [low, high], the sample reaching within `margin` of both ends."""
    values = np.asarray(values, dtype=float)
    return (
        values.min() >= low and values.max() <= high and values.min() <= low + margin and values.max() >= high - margin
    )


def test_each_varied_property_covers_its_range(v4_scenes):
    objects = [o for scene in v4_scenes for o in scene.objects]
    assert {len(scene.objects) for scene in v4_scenes} == {2, 3, 4, 5, 6}
    for size, (low, high) in RADII.items():
        assert spread([o.radius for o in objects if o.size == size], low, high, 0.6), size
    for shapes, limit in (
        ({"square", "diamond"}, MAX_ANGLE_OF["square"]),
        ({"circle", "triangle", "cross"}, MAX_ANGLE),
    ):
        assert spread([o.angle for o in objects if o.shape in shapes], -limit, limit, 4), shapes
    assert spread(np.log([o.stretch for o in objects]), -np.log(MAX_STRETCH), np.log(MAX_STRETCH), 0.05)
    assert spread([v for o in objects for v in o.shade], -MAX_SHADE, MAX_SHADE, 1)
    styles = [scene.style for scene in v4_scenes]
    assert spread([np.mean(s.background) for s in styles], 0, 58, 12)
    assert spread([s.noise for s in styles], 3, 9, 1)
    arrowed = [scene.style for scene in v4_scenes if scene.arrows]
    assert len(arrowed) >= 20 and {s.head for s in arrowed} == {"filled", "open"}
    assert spread([s.shaft_width for s in arrowed], 0.5, 1.4, 0.25)
    lengths = [
        np.hypot(*np.subtract(sc.objects[a].centre, sc.objects[b].centre)) for sc in v4_scenes for a, b in sc.arrows
    ]
    assert min(lengths) < 40 and max(lengths) > 52  # arrows between near and far pairs


def test_v4_objects_are_drawn_in_their_own_shade_and_apart(v4_scenes):
    for scene in v4_scenes[:40]:
        overlap = mask_intersections(scene.masks)
        assert (overlap - np.diag(np.diag(overlap))).sum() == 0
        for obj, mask in zip(scene.objects, scene.masks, strict=True):
            assert obj.colour in COLOURS
            colour = scene.image[mask].astype(float).mean(axis=0)
            assert np.abs(colour - obj.rgb()).max() < 12
        assert len(scene.triplets) == len(scene.objects) * (len(scene.objects) - 1) // 2 + len(scene.arrows)


def test_triplets_agree_with_the_drawn_masks_and_the_captions_with_the_triplets(v4_scenes):
    """A second way of reading the geometry: mask centroids and full-mask containment."""
    seen = set()
    for scene in v4_scenes:
        centroids = [np.argwhere(mask).mean(axis=0)[::-1] for mask in scene.masks]  # (x, y)
        for s, p, o in scene.triplets:
            name = PREDICATES[p]
            seen.add(name)
            assert name not in {"right of", "below", "under", "contains"}
            if name == "left of":
                assert centroids[s][0] < centroids[o][0]
            if name in ("above", "on top of"):
                assert centroids[s][1] < centroids[o][1]
            if name == "inside":
                assert not (scene.masks[s] & ~scene.objects[o].mask(96)).any()
        for caption in scene.captions:
            assert statement_holds(scene, caption), caption
    assert {"left of", "above", "on top of", "inside", "points at"} <= seen


def test_v4_twins_reverse_one_relation_and_keep_each_object_and_the_look(v4_scenes):
    kinds = {"arrow": 0, "spatial": 0}
    for scene in v4_scenes[:60]:
        made = twin_scene(scene)
        if made is None:
            continue
        twin, true, swapped = made
        assert statement_holds(scene, true) and not statement_holds(twin, true)
        assert statement_holds(twin, swapped) and not statement_holds(scene, swapped)
        assert twin.style == scene.style
        if " pointing at " in true:  # the same objects, the arrow turned round
            kinds["arrow"] += 1
            assert twin.objects == scene.objects and twin.arrows == [scene.arrows[0][::-1]]
        else:  # two objects in each other's places, each keeping its own pose, size and shade
            kinds["spatial"] += 1
            moved = [k for k, (a, b) in enumerate(zip(scene.objects, twin.objects, strict=True)) if a != b]
            assert len(moved) == 2
            a, b = moved
            assert twin.objects[a] == replace(scene.objects[a], centre=scene.objects[b].centre)
            assert twin.objects[b] == replace(scene.objects[b], centre=scene.objects[a].centre)
    assert kinds["arrow"] >= 10 and kinds["spatial"] >= 20, kinds


@pytest.mark.parametrize("head", ["filled", "open"])
def test_a_v4_arrow_changes_no_object_token_and_its_reverse_only_the_direction(head):
    objects = [
        SceneObject("triangle", "red", "small", (20.0, 50.0), radius=7.5, angle=17.0, stretch=1.2, shade=(10, -5, 3)),
        SceneObject("square", "blue", "large", (70.0, 44.0), radius=13.0, angle=-25.0, stretch=0.85),
    ]
    style = Style(background=(30.0, 25.0, 40.0), noise=4.0, arrow_grey=170.0, shaft_width=1.2, head=head, margin=2.0)
    plain, forward, backward = (
        render_scene(objects, np.random.default_rng(5), arrows=arrows, style=style)
        for arrows in ([], [(0, 1)], [(1, 0)])
    )
    assert not np.array_equal(forward.image, backward.image)
    graphs = [build_graph(s.image, s.masks, s.labels, s.triplets) for s in (plain, forward, backward)]
    for graph in graphs[1:]:
        assert np.array_equal(graph["object"].x.numpy(), graphs[0]["object"].x.numpy())
    points_at = PREDICATES.index("points at")
    assert (0, points_at, 1) in forward.triplets and (1, points_at, 0) in backward.triplets
    assert np.array_equal(graphs[1]["relation"].x.numpy(), graphs[2]["relation"].x.numpy())


@pytest.mark.slow
def test_no_held_out_training_scene_shows_a_held_out_combination():
    builder = SyntheticBuilder("train", 300, world="v4", held_out=True)
    full = [make_scene(0, "train", index, world="v4") for index in range(300)]
    assert sum(bool(held_out_facts(s.objects, s.triplets)) for s in full) > 50  # the check can fail
    for index in range(300):
        scene = builder.scene(index)
        assert not held_out_facts(scene.objects, scene.triplets), index
        assert not any(held_out_in_text(caption) for caption in scene.captions)


def test_held_out_twins_and_negatives_never_show_a_held_out_combination():
    builder = SyntheticBuilder("train", 30, world="v4", held_out=True, negatives=("relation", "attribute"))
    open_negatives = SyntheticBuilder("train", 30, world="v4", negatives=("relation", "attribute"))
    leaked = 0
    for index in range(30):
        graph, _ = builder.build(index)
        assert not any(held_out_in_text(n) for negatives in graph.negatives for n in negatives)
        scene = builder.scene(index)
        leaked += sum(
            held_out_in_text(n)
            for c in scene.captions
            for n in hard_negatives(scene, c, ("relation", "attribute"), index)
        )
        made = twin_scene(scene, 0, 96, held_out=True)
        if made is not None:
            assert not held_out_facts(made[0].objects, made[0].triplets)
            assert not held_out_in_text(made[2])
    assert leaked > 0  # without the filter some negatives would name one
    assert open_negatives.fingerprint() != builder.fingerprint()


def test_held_out_combinations_are_read_from_captions_told_either_way():
    (shape, colour), (predicate, subject) = sorted(HELD_OUT_OBJECTS)[0], ("left of", "triangle")
    assert (predicate, subject) in HELD_OUT_RELATIONS
    assert held_out_in_text(f"3 shapes: a small {colour} {shape}, a large red cross and a small red cross")
    assert held_out_in_text("a small red triangle to the left of a large white cross")
    assert held_out_in_text("there is a large white cross to the right of a small red triangle")
    assert not held_out_in_text("a small red triangle to the right of a large white cross")
    assert not held_out_in_text("a large white cross to the left of a small red triangle")


def test_the_world_keys_the_cache():
    prints = [
        SyntheticBuilder("train", 10).fingerprint(),
        SyntheticBuilder("train", 10, world="v4").fingerprint(),
        SyntheticBuilder("train", 10, world="v4", held_out=True).fingerprint(),
    ]
    assert prints[0]["world_version"] == 3 and "held_out_combinations" not in prints[0]
    assert prints[1]["world_version"] == 4 and prints[2]["held_out_combinations"] is True
    assert len({str(sorted(p.items())) for p in prints}) == 3


def test_world_options_outside_the_synthetic_world_are_an_error():
    from data.sources import DataOptions, make_builder

    with pytest.raises(ValueError, match="options of the synthetic world"):
        make_builder(DataOptions(dataset="coco", coco_root="x", world="v4"), "train")
    assert make_builder(DataOptions(world="v4", held_out_combinations=True), "val").held_out
