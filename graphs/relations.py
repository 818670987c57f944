"""Geometric relations between segmented objects.

Everything here works on normalised boxes (cx, cy, w, h in 0..1) and boolean
masks, so it serves any token source: synthetic scenes, COCO masks, or the
output of an off-the-shelf segmenter.
"""

from __future__ import annotations

import numpy as np

from graphs.masks import Masks
from graphs.schema import PREDICATE_ID

# Two boxes closer than this (in image fractions) touch: "on top of", "next to".
TOUCH_GAP = 0.03
# A box counts as inside another when it lies within it up to this margin.
INSIDE_MARGIN = 0.01


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """Normalised (cx, cy, w, h) boxes of boolean masks [n, H, W] -> [n, 4].

    An empty mask has no box; callers must reject empty masks before this.
    """
    return boxes_from_bounds(Masks.from_dense(masks).bounds, *masks.shape[1:])


def boxes_from_bounds(bounds: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pixel bounds (r0, r1, c0, c1) -> normalised (cx, cy, w, h), [n, 4]."""
    empty = np.flatnonzero(bounds[:, 1] == 0)
    if empty.size:
        raise ValueError(f"mask {int(empty[0])} is empty")
    r0, r1, c0, c1 = (bounds[:, k].astype(np.float32) for k in range(4))
    return np.stack([(c0 + c1) / 2 / width, (r0 + r1) / 2 / height, (c1 - c0) / width, (r1 - r0) / height], 1)


def corners(boxes: np.ndarray) -> np.ndarray:
    """(cx, cy, w, h) -> (x0, y0, x1, y1)."""
    half = boxes[:, 2:] / 2
    return np.concatenate([boxes[:, :2] - half, boxes[:, :2] + half], axis=1)


def union_boxes(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Smallest (cx, cy, w, h) boxes holding each pair of boxes."""
    ca, cb = corners(boxes_a), corners(boxes_b)
    lo = np.minimum(ca[:, :2], cb[:, :2])
    hi = np.maximum(ca[:, 2:], cb[:, 2:])
    return np.concatenate([(lo + hi) / 2, hi - lo], axis=1).astype(np.float32)


def mask_intersections(masks: np.ndarray) -> np.ndarray:
    """Pixel counts of pairwise intersections of dense masks [n, H, W] -> [n, n] (areas on the diagonal)."""
    return Masks.from_dense(masks).intersections()


def box_inside(boxes: np.ndarray) -> np.ndarray:
    """inside[i, j]: box i lies within box j and is smaller. [n, n] bool."""
    c = corners(boxes)
    within = (
        (c[:, None, 0] >= c[None, :, 0] - INSIDE_MARGIN)
        & (c[:, None, 1] >= c[None, :, 1] - INSIDE_MARGIN)
        & (c[:, None, 2] <= c[None, :, 2] + INSIDE_MARGIN)
        & (c[:, None, 3] <= c[None, :, 3] + INSIDE_MARGIN)
    )
    area = boxes[:, 2] * boxes[:, 3]
    return within & (area[:, None] < area[None, :])


# The one telling of each directional geometric relation that triplets use.
CANONICAL_PREDICATES = ("left of", "above", "on top of", "inside")
TOLD_THE_OTHER_WAY = {"right of": "left of", "below": "above", "under": "on top of", "contains": "inside"}


def pair_predicate(boxes: np.ndarray, inside: np.ndarray, touching: np.ndarray, s: int, o: int) -> str:
    """The geometric predicate of the ordered pair (subject s, object o)."""
    if inside[s, o]:
        return "inside"
    if inside[o, s]:
        return "contains"
    if touching[s, o]:
        return "overlapping"
    c = corners(boxes[[s, o]])
    dx = boxes[o, 0] - boxes[s, 0]
    dy = boxes[o, 1] - boxes[s, 1]  # image y grows downwards
    if abs(dy) > abs(dx):
        shared_x = min(c[0, 2], c[1, 2]) - max(c[0, 0], c[1, 0]) > 0
        gap = c[1, 1] - c[0, 3] if dy > 0 else c[0, 1] - c[1, 3]
        if shared_x and gap <= TOUCH_GAP:
            return "on top of" if dy > 0 else "under"
        return "above" if dy > 0 else "below"
    shared_y = min(c[0, 3], c[1, 3]) - max(c[0, 1], c[1, 1]) > 0
    gap = c[1, 0] - c[0, 2] if dx > 0 else c[0, 0] - c[1, 2]
    if shared_y and gap <= TOUCH_GAP:
        return "next to"
    return "left of" if dx > 0 else "right of"


def geometric_triplets(
    boxes: np.ndarray, intersections: np.ndarray, max_relations: int | None = None
) -> list[tuple[int, int, int]]:
    """One (subject, predicate id, object) triplet per pair of objects, nearest pairs first.

    `intersections` comes from `mask_intersections`; `max_relations` keeps the
    nearest pairs. Each pair is told one way only, from the participant that
    makes its predicate one of CANONICAL_PREDICATES ("A left of B", never "B
    right of A"), so the same arrangement always gives the same relation token
    whatever order the objects come in; symmetric predicates take the lower
    index as subject.
    """
    n = len(boxes)
    if n < 2:
        return []
    inside = box_inside(boxes)
    touching = intersections > 0
    distance = np.linalg.norm(boxes[:, None, :2] - boxes[None, :, :2], axis=-1)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    pairs.sort(key=lambda p: (distance[p], p))
    if max_relations is not None:
        pairs = pairs[:max_relations]
    triplets = []
    for s, o in pairs:
        name = pair_predicate(boxes, inside, touching, s, o)
        if name in TOLD_THE_OTHER_WAY:
            s, o, name = o, s, TOLD_THE_OTHER_WAY[name]
        triplets.append((s, PREDICATE_ID[name], o))
    return triplets


def overlap_pairs(boxes: np.ndarray, intersections: np.ndarray) -> np.ndarray:
    """Ordered pairs (i, j), i != j, whose masks intersect or whose boxes nest. [2, E]."""
    n = len(boxes)
    if n < 2:
        return np.zeros((2, 0), dtype=np.int64)
    linked = (intersections > 0) | box_inside(boxes)
    linked = linked | linked.T
    np.fill_diagonal(linked, False)
    return np.stack(np.nonzero(linked)).astype(np.int64)


def knn_pairs(boxes: np.ndarray, k: int = 4) -> np.ndarray:
    """Pairs (i, j) where j is one of the k nearest objects of i by centroid. [2, E]."""
    n = len(boxes)
    k = min(k, n - 1)
    if k <= 0:
        return np.zeros((2, 0), dtype=np.int64)
    distance = np.linalg.norm(boxes[:, None, :2] - boxes[None, :, :2], axis=-1)
    np.fill_diagonal(distance, np.inf)
    nearest = np.argsort(distance, axis=1, kind="stable")[:, :k]  # [n, k]
    return np.stack([np.repeat(np.arange(n), k), nearest.reshape(-1)]).astype(np.int64)


def relation_geometry(boxes: np.ndarray, intersections: np.ndarray, triplets: np.ndarray) -> np.ndarray:
    """Relative geometry of the two participants of each triplet, [m, 8], the same
    whichever of them is the subject.

    (|dx|, |dy|, distance, |log area ratio|, |log width ratio|, |log height ratio|,
    box IoU, mask intersection over the smaller mask). The features say how far
    apart and how different in size the two are, never which one is the subject:
    that is told by the directional `subject_of` / `has_object` edges alone, so
    ablating those edges removes it (a signed dx would let a model read the
    direction off the object tokens' boxes instead).
    """
    if len(triplets) == 0:
        return np.zeros((0, 8), dtype=np.float32)
    s, o = triplets[:, 0], triplets[:, 2]
    eps = 1e-4
    d = boxes[o, :2] - boxes[s, :2]
    log_size = np.log(boxes[:, 2:] + eps)
    ratio = log_size[s] - log_size[o]  # exactly the negative when told the other way round
    area_ratio = ratio[:, 0] + ratio[:, 1]
    cs, co = corners(boxes[s]), corners(boxes[o])
    inter_wh = np.clip(np.minimum(cs[:, 2:], co[:, 2:]) - np.maximum(cs[:, :2], co[:, :2]), 0, None)
    inter = inter_wh.prod(axis=1)
    union = boxes[s, 2] * boxes[s, 3] + boxes[o, 2] * boxes[o, 3] - inter
    smaller = np.maximum(np.minimum(intersections[s, s], intersections[o, o]), 1)
    features = np.column_stack(
        [
            np.abs(d[:, 0]),
            np.abs(d[:, 1]),
            np.linalg.norm(d, axis=1),
            np.abs(area_ratio),
            np.abs(ratio[:, 0]),
            np.abs(ratio[:, 1]),
            inter / (union + eps),
            intersections[s, o] / smaller,
        ]
    )
    return features.astype(np.float32)
