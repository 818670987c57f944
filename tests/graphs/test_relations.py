import numpy as np
import pytest
from helpers import square_masks

from graphs.relations import (
    box_inside,
    geometric_triplets,
    knn_pairs,
    mask_intersections,
    masks_to_boxes,
    pair_predicate,
)
from graphs.schema import INVERSE_PREDICATE, PREDICATES

CANVAS = 100


def predicate_of(squares, s=0, o=1):
    masks = square_masks(CANVAS, squares)
    boxes = masks_to_boxes(masks)
    touching = mask_intersections(masks) > 0
    return pair_predicate(boxes, box_inside(boxes), touching, s, o)


@pytest.mark.parametrize(
    "squares, expected",
    [
        ([(10, 40, 10), (60, 40, 10)], "left of"),
        ([(60, 40, 10), (10, 40, 10)], "right of"),
        ([(40, 10, 10), (40, 60, 10)], "above"),
        ([(40, 60, 10), (40, 10, 10)], "below"),
        ([(40, 30, 10), (38, 41, 14)], "on top of"),
        ([(38, 41, 14), (40, 30, 10)], "under"),
        ([(45, 45, 5), (30, 30, 40)], "inside"),
        ([(30, 30, 40), (45, 45, 5)], "contains"),
        ([(10, 40, 10), (21, 42, 10)], "next to"),
        ([(10, 40, 20), (20, 45, 20)], "overlapping"),
    ],
)
def test_pair_predicates(squares, expected):
    assert predicate_of(squares) == expected


@pytest.mark.parametrize(
    "squares", [[(10, 40, 10), (60, 40, 10)], [(40, 30, 10), (38, 41, 14)], [(45, 45, 5), (30, 30, 40)]]
)
def test_predicates_are_consistent_both_ways(squares):
    assert predicate_of(squares, 1, 0) == INVERSE_PREDICATE[predicate_of(squares, 0, 1)]


def test_masks_to_boxes():
    boxes = masks_to_boxes(square_masks(CANVAS, [(10, 20, 30)]))
    np.testing.assert_allclose(boxes[0], [0.25, 0.35, 0.3, 0.3])


def test_triplets_one_per_pair_nearest_first_and_capped():
    masks = square_masks(CANVAS, [(0, 0, 5), (90, 90, 5), (12, 0, 5)])
    boxes = masks_to_boxes(masks)
    triplets = geometric_triplets(boxes, mask_intersections(masks))
    # nearest pairs first; (1, 2) is "1 below 2", told the canonical way: (2, above, 1)
    assert [(s, o) for s, _, o in triplets] == [(0, 2), (2, 1), (0, 1)]
    assert [PREDICATES[p] for _, p, _ in triplets] == ["left of", "above", "left of"]
    assert len(geometric_triplets(boxes, mask_intersections(masks), max_relations=1)) == 1


def test_triplets_tell_an_arrangement_the_same_whatever_the_object_order():
    from graphs.relations import CANONICAL_PREDICATES

    squares = [(10, 40, 10), (60, 40, 10), (40, 5, 10), (38, 62, 14), (65, 60, 30), (72, 68, 5)]
    told = []
    for order in (range(6), [5, 3, 1, 4, 0, 2]):
        masks = square_masks(CANVAS, [squares[k] for k in order])
        triplets = geometric_triplets(masks_to_boxes(masks), mask_intersections(masks))
        told.append({(order[s], PREDICATES[p], order[o]) for s, p, o in triplets if PREDICATES[p] != "next to"})
        assert {PREDICATES[p] for _, p, _ in triplets} <= {*CANONICAL_PREDICATES, "next to", "overlapping", "near"}
    assert told[0] == told[1] and len(told[0]) >= 10


def test_knn_with_fewer_objects_than_k():
    boxes = masks_to_boxes(square_masks(CANVAS, [(0, 0, 5), (50, 50, 5)]))
    assert knn_pairs(boxes, 4).tolist() == [[0, 1], [1, 0]]
    assert knn_pairs(boxes[:1], 4).shape == (2, 0)
