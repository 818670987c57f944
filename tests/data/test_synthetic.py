import hashlib

import numpy as np
import pytest

from data import SyntheticGraphs, make_scene
from data.synthetic import COLOURS, SHAPES, SIZES, describe_triplet
from graphs import EDGE_TYPES, NODE_TYPES, PREDICATES
from graphs.relations import mask_intersections


def digest(scene) -> str:
    return hashlib.sha1(scene.image.tobytes()).hexdigest()


def test_scenes_are_deterministic_from_the_seed():
    a, b = make_scene(3, "val", 7), make_scene(3, "val", 7)
    assert np.array_equal(a.image, b.image) and a.captions == b.captions and a.triplets == b.triplets
    assert not np.array_equal(a.image, make_scene(4, "val", 7).image)


def test_splits_never_share_an_image():
    digests = {split: {digest(make_scene(0, split, i)) for i in range(150)} for split in ("train", "val", "test")}
    assert all(len(d) == 150 for d in digests.values())
    assert not digests["train"] & digests["val"]
    assert not digests["train"] & digests["test"]
    assert not digests["val"] & digests["test"]


def test_scene_contents():
    counts = set()
    for index in range(60):
        scene = make_scene(0, "train", index)
        n = len(scene.objects)
        counts.add(n)
        assert 2 <= n <= 5
        assert scene.image.shape == (96, 96, 3) and scene.image.dtype == np.uint8
        assert scene.masks.shape == (n, 96, 96) and scene.masks.any(axis=(1, 2)).all()
        overlap = mask_intersections(scene.masks)
        assert (overlap - np.diag(np.diag(overlap))).sum() == 0  # visible masks are disjoint
        for obj, mask in zip(scene.objects, scene.masks, strict=True):
            assert obj.shape in SHAPES and obj.colour in COLOURS and obj.size in SIZES
            colour = scene.image[mask].astype(float).mean(axis=0)
            assert np.abs(colour - COLOURS[obj.colour]).max() < 20  # noisy but the object's colour
        assert len(scene.triplets) == n * (n - 1) // 2
        assert len(scene.captions) == 5 and len(set(scene.captions)) >= 2
    assert counts == {2, 3, 4, 5}


def test_world_covers_the_required_relations():
    seen = {PREDICATES[p] for i in range(300) for _, p, _ in make_scene(0, "train", i).triplets}
    required = {"left of", "right of", "above", "below", "on top of", "next to"}
    assert required <= seen
    assert {"inside", "contains"} & seen


def test_captions_tell_true_relations():
    scene = make_scene(0, "train", 1)
    s, p, o = scene.triplets[0]
    sentence = describe_triplet(scene, (s, p, o))
    assert sentence.startswith(f"a {scene.objects[s].phrase} ") and sentence.endswith(f" a {scene.objects[o].phrase}")
    reverse = describe_triplet(scene, (s, p, o), reverse=True)
    assert reverse.startswith(f"a {scene.objects[o].phrase} ")
    assert scene.captions[0].startswith(f"{len(scene.objects)} shapes: ")


def test_unknown_split_is_an_error():
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        make_scene(0, "dev", 0)


@pytest.mark.parametrize("graph_type", ["hetero", "patch"])
def test_dataset_graphs_carry_captions_and_every_type(graph_type):
    dataset = SyntheticGraphs("val", 6, graph_type=graph_type, progress=False)
    assert len(dataset) == 6
    for graph in dataset:
        assert tuple(graph.node_types) == NODE_TYPES and tuple(graph.edge_types) == EDGE_TYPES
        assert len(graph.captions) == 5
