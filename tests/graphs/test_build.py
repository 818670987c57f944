import numpy as np
import pytest
import torch
from helpers import square_masks

from graphs import EDGE_TYPES, NODE_TYPES, PREDICATES, build_graph, build_patch_graph, check_graph
from graphs.schema import (
    CONTEXT,
    FEATURE_DIMS,
    HAS_OBJECT,
    NEAR,
    OBJECT,
    OVERLAPS,
    RELATED,
    RELATION,
    SHARES,
    SUBJECT_OF,
)

CANVAS = 64


def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, size=(CANVAS, CANVAS, 3), dtype=np.uint8)


def edge_set(data, edge_type) -> set[tuple[int, int]]:
    return set(map(tuple, data[edge_type].edge_index.t().tolist()))


@pytest.mark.parametrize("count", [0, 1, 2, 6])
def test_every_type_present_in_schema_order(count):
    masks = square_masks(CANVAS, [(2 + 10 * k, 2 + 9 * k, 6) for k in range(count)])
    data = build_graph(image(), masks)
    check_graph(data)
    assert tuple(data.node_types) == NODE_TYPES
    assert tuple(data.edge_types) == EDGE_TYPES
    assert data[OBJECT].num_nodes == count
    assert data[RELATION].num_nodes == count * (count - 1) // 2
    assert data["image"].num_nodes == 1
    for node_type, dim in FEATURE_DIMS.items():
        assert data[node_type].x.shape == (data[node_type].num_nodes, dim)
        assert data[node_type].box.shape == (data[node_type].num_nodes, 4)
    for edge_type in EDGE_TYPES:
        assert data[edge_type].edge_index.dtype == torch.long
    assert data[CONTEXT].edge_index.size(1) == count


def test_edges_of_a_known_layout():
    # 0 left of 1 (apart), 2 inside... no: 2 sits below 0, 3 overlaps 1.
    masks = square_masks(CANVAS, [(2, 2, 10), (40, 2, 10), (2, 40, 10), (45, 6, 10)])
    triplets = [(0, "left of", 1), (2, "below", 0), (1, "overlapping", 3)]
    data = build_graph(image(), masks, labels=[3, 1, 4, 1], triplets=triplets)
    assert data[OBJECT].label.tolist() == [3, 1, 4, 1]
    assert [PREDICATES[p] for p in data[RELATION].predicate] == ["left of", "below", "overlapping"]
    assert edge_set(data, SUBJECT_OF) == {(0, 0), (2, 1), (1, 2)}
    assert edge_set(data, HAS_OBJECT) == {(0, 1), (1, 0), (2, 3)}
    assert edge_set(data, RELATED) == {(0, 1), (2, 0), (1, 3)}
    # relations 0 and 1 share object 0; relations 0 and 2 share object 1
    assert edge_set(data, SHARES) == {(0, 1), (1, 0), (0, 2), (2, 0)}
    assert edge_set(data, OVERLAPS) == {(1, 3), (3, 1)}
    assert edge_set(data, CONTEXT) == {(0, k) for k in range(4)}
    # with 4 objects every object links to the 3 others
    assert edge_set(data, NEAR) == {(i, j) for i in range(4) for j in range(4) if i != j}
    # one-hot predicate then geometry; subject 0 is left of object 1 -> |dx| > 0
    rel_x = data[RELATION].x
    assert rel_x[0, : len(PREDICATES)].argmax().item() == PREDICATES.index("left of")
    assert rel_x[0, len(PREDICATES)].item() > 0


def test_relation_geometry_does_not_tell_the_subject():
    masks = square_masks(CANVAS, [(2, 2, 6), (30, 10, 12)])
    forward = build_graph(image(), masks, triplets=[(0, "left of", 1)])
    backward = build_graph(image(), masks, triplets=[(1, "right of", 0)])
    geometry = slice(len(PREDICATES), None)
    assert torch.equal(forward[RELATION].x[:, geometry], backward[RELATION].x[:, geometry])
    assert (forward[RELATION].x[:, geometry] != 0).any()


def test_near_is_k_nearest_by_centroid():
    masks = square_masks(CANVAS, [(0, 0, 4), (6, 0, 4), (12, 0, 4), (18, 0, 4), (24, 0, 4), (54, 54, 4)])
    data = build_graph(image(), masks, triplets=[])
    near = edge_set(data, NEAR)
    assert len(near) == 6 * 4
    assert {j for i, j in near if i == 0} == {1, 2, 3, 4}
    assert {j for i, j in near if i == 5} == {1, 2, 3, 4}


def test_geometric_triplets_by_default():
    masks = square_masks(CANVAS, [(2, 20, 10), (40, 20, 10)])
    data = build_graph(image(), masks)
    assert PREDICATES[data[RELATION].predicate.item()] == "left of"
    assert edge_set(data, SUBJECT_OF) == {(0, 0)}


def test_object_features_see_only_the_mask():
    pixels = np.zeros((CANVAS, CANVAS, 3), dtype=np.uint8)
    pixels[:, :, 0] = 255  # red everywhere
    masks = square_masks(CANVAS, [(8, 8, 16)])
    x = build_graph(pixels, masks).x_dict[OBJECT][0].view(4, -1)
    assert torch.allclose(x[0], torch.ones(64))  # red channel of the masked crop
    assert torch.allclose(x[1:3], torch.zeros(2, 64))
    assert torch.allclose(x[3], torch.ones(64))  # the mask fills its box


@pytest.mark.parametrize(
    "masks, triplets, message",
    [
        (square_masks(CANVAS, [(0, 0, 4), (10, 10, 4)]), [(0, "left of", 2)], "points at a missing mask"),
        (square_masks(CANVAS, [(0, 0, 4), (10, 10, 4)]), [(0, "  ", 1)], "empty predicate name"),
        (square_masks(CANVAS, [(0, 0, 4), (10, 10, 4)]), [(0, 999, 1)], "predicate id 999 outside"),
        (square_masks(CANVAS, [(0, 0, 4), (10, 10, 0)]), None, "mask 1 is empty"),
        (np.zeros((1, CANVAS, CANVAS + 1), bool), None, "do not match the image"),
    ],
)
def test_bad_tokens_are_clear_errors(masks, triplets, message):
    with pytest.raises(ValueError, match=message):
        build_graph(image(), masks, triplets=triplets)


def test_patch_graph_is_a_grid():
    data = build_patch_graph(image(), grid=4)
    check_graph(data)
    assert data[OBJECT].num_nodes == 16
    assert data[RELATION].num_nodes == 0
    near = edge_set(data, NEAR)
    assert len(near) == 2 * 2 * 4 * 3  # right/down neighbours, both directions
    assert (0, 1) in near and (1, 0) in near and (0, 4) in near and (0, 5) not in near
    assert data[OVERLAPS].edge_index.size(1) == 0
    assert torch.allclose(data[OBJECT].box[0], torch.tensor([0.125, 0.125, 0.25, 0.25]))


def test_synthetic_scenes_build_valid_graphs(scenes):
    for scene in scenes:
        data = build_graph(scene.image, scene.masks, scene.labels, scene.triplets)
        check_graph(data)
        n = len(scene.objects)
        assert data[OBJECT].num_nodes == n and data[RELATION].num_nodes == n * (n - 1) // 2 + len(scene.arrows)


@pytest.mark.parametrize("canvas, grid", [(64, 4), (60, 7)])
def test_patch_features_equal_the_object_featurizer_on_square_masks(canvas, grid):
    pixels = np.random.default_rng(2).integers(0, 255, size=(canvas, canvas, 3), dtype=np.uint8)
    patch = build_patch_graph(pixels, grid)
    edges = np.linspace(0, canvas, grid + 1).round().astype(int)
    squares = np.zeros((grid * grid, canvas, canvas), dtype=bool)
    for r in range(grid):
        for c in range(grid):
            squares[r * grid + c, edges[r] : edges[r + 1], edges[c] : edges[c + 1]] = True
    general = build_graph(pixels, squares, triplets=[])
    assert torch.allclose(patch[OBJECT].x, general[OBJECT].x, atol=1e-5)
    assert torch.allclose(patch[OBJECT].box, general[OBJECT].box, atol=1e-6)
    assert torch.allclose(patch[OBJECT].area, general[OBJECT].area, atol=1e-6)
