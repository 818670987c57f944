import hashlib

import numpy as np
import pytest

from data import SyntheticGraphs, make_scene
from data.synthetic import ARROW_COLOUR, COLOURS, SHAPES, SIZES, SceneObject, describe_triplet, render_scene
from graphs import EDGE_TYPES, NODE_TYPES, PREDICATES, build_graph
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
        assert len(scene.triplets) == n * (n - 1) // 2 + len(scene.arrows)
        assert len(scene.captions) == 5 and len(set(scene.captions)) >= 2
    assert counts == {2, 3, 4, 5}


def test_world_covers_the_required_relations():
    scenes = [make_scene(0, "train", i) for i in range(300)]
    seen = {PREDICATES[p] for scene in scenes for _, p, _ in scene.triplets}
    assert {"left of", "above", "on top of", "inside", "next to", "points at"} <= seen
    assert not {"right of", "below", "under", "contains"} & seen  # triplets tell each relation one way
    told = " ".join(caption for scene in scenes for caption in scene.captions)
    for phrase in ("to the right of", "below", "under", "containing", "pointed at by"):  # captions tell both
        assert f" {phrase} " in told


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


def arrow_scenes(count: int):
    scenes = (make_scene(0, "train", index) for index in range(400))
    return [scene for scene in scenes if scene.arrows][:count]


def test_about_half_the_scenes_have_an_arrow_and_say_so():
    with_arrow = len(arrow_scenes(400))
    assert 0.3 * 400 <= with_arrow <= 0.6 * 400
    for scene in arrow_scenes(20):
        ((tail, head),) = scene.arrows
        assert (tail, PREDICATES.index("points at"), head) in scene.triplets
        told = describe_triplet(scene, (tail, PREDICATES.index("points at"), head))
        assert told == f"a {scene.objects[tail].phrase} pointing at a {scene.objects[head].phrase}"
        assert any("pointing at" in c or "pointed at by" in c for c in scene.captions)


def test_arrows_lie_between_objects_and_point_at_their_target():
    for scene in arrow_scenes(20):
        ((tail, head),) = scene.arrows
        drawn = (np.abs(scene.image.astype(int) - ARROW_COLOUR).max(axis=2) < 25) & ~scene.masks.any(axis=0)
        ys, xs = np.nonzero(drawn)
        assert len(xs) >= 8
        points = np.stack([xs, ys], axis=1)
        to_head, to_tail = (
            np.linalg.norm(points[:, None] - np.stack(np.nonzero(scene.masks[k])[::-1], axis=1)[None], axis=2).min(1)
            for k in (head, tail)
        )
        nearer_head = to_head < to_tail
        assert nearer_head.sum() > (~nearer_head).sum()  # the head is the wide end


def test_an_arrow_changes_no_object_token_and_its_reverse_only_the_direction():
    objects = [SceneObject("circle", "red", "small", (20.0, 48.0)), SceneObject("square", "blue", "large", (70, 48))]
    plain, forward, backward = (
        render_scene(objects, np.random.default_rng(5), arrows=arrows) for arrows in ([], [(0, 1)], [(1, 0)])
    )
    assert not np.array_equal(plain.image, forward.image) and not np.array_equal(forward.image, backward.image)
    graphs = [build_graph(s.image, s.masks, s.labels, s.triplets) for s in (plain, forward, backward)]
    for graph in graphs[1:]:
        assert np.array_equal(graph["object"].x.numpy(), graphs[0]["object"].x.numpy())
    points_at = PREDICATES.index("points at")
    assert (0, points_at, 1) in forward.triplets and (1, points_at, 0) in backward.triplets
    rel_f, rel_b = graphs[1]["relation"], graphs[2]["relation"]
    assert np.array_equal(rel_f.x.numpy(), rel_b.x.numpy())  # the relation token itself has no direction
    arrow_f = int((rel_f.predicate == points_at).nonzero())
    arrow_b = int((rel_b.predicate == points_at).nonzero())
    subject_of = ("object", "subject_of", "relation")
    assert graphs[1][subject_of].edge_index[0, graphs[1][subject_of].edge_index[1] == arrow_f].tolist() == [0]
    assert graphs[2][subject_of].edge_index[0, graphs[2][subject_of].edge_index[1] == arrow_b].tolist() == [1]


def test_an_arrow_with_no_room_is_an_error():
    touching = [SceneObject("square", "red", "large", (30.0, 48.0)), SceneObject("square", "blue", "large", (56, 48))]
    with pytest.raises(ValueError, match="no room for an arrow from object 0 to object 1"):
        render_scene(touching, np.random.default_rng(0), arrows=[(0, 1)])
