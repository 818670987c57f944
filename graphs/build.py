"""Image + tokens -> one HeteroData graph in the schema of graphs.schema."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch_geometric.data import HeteroData

from graphs.features import crop_features, image_features, image_to_uint8, object_features
from graphs.masks import Masks
from graphs.relations import (
    boxes_from_bounds,
    geometric_triplets,
    knn_pairs,
    overlap_pairs,
    relation_geometry,
    union_boxes,
)
from graphs.schema import (
    CONTEXT,
    HAS_OBJECT,
    IMAGE,
    NEAR,
    OBJECT,
    OVERLAPS,
    PREDICATE_ID,
    PREDICATES,
    RELATED,
    RELATION,
    SHARES,
    SUBJECT_OF,
    empty_graph,
    normalise_predicate,
    predicate_id,
    predicate_key,
)

Triplet = tuple[int, int | str, int]


def _long(array: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(array, dtype=np.int64).reshape(2, -1))


def normalise_triplets(triplets: Sequence[Triplet], num_objects: int) -> tuple[np.ndarray, list[str]]:
    """Validate triplets -> ([m, 3] int64 with predicate ids, the m predicate names).

    A name outside the vocabulary (open vocabulary: RAM, a tokens file, Visual
    Genome) gets the id of "other" and keeps its normalised name.
    """
    rows, names = [], []
    for k, (s, predicate, o) in enumerate(triplets):
        if isinstance(predicate, str):
            name = normalise_predicate(predicate)
            if not name:
                raise ValueError(f"triplet {k}: empty predicate name")
            predicate = predicate_id(name, strict=False)
        elif not 0 <= int(predicate) < len(PREDICATES):
            raise ValueError(f"triplet {k}: predicate id {predicate} outside 0..{len(PREDICATES) - 1}")
        else:
            name = PREDICATES[int(predicate)]
        for role, index in (("subject", s), ("object", o)):
            if not 0 <= int(index) < num_objects:
                raise ValueError(f"triplet {k}: {role} {index} points at a missing mask (there are {num_objects})")
        if int(s) == int(o):
            raise ValueError(f"triplet {k}: subject and object are the same mask {s}")
        rows.append((int(s), int(predicate), int(o)))
        names.append(name)
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3), names


def as_masks(masks: np.ndarray | Masks, size: tuple[int, int]) -> Masks:
    """Dense [n, H, W] masks (or `Masks`) checked against the image size."""
    if isinstance(masks, Masks):
        if (masks.height, masks.width) != tuple(size):
            raise ValueError(f"masks of an image of {masks.height}x{masks.width} do not match the image {size}")
        return masks
    masks = np.asarray(masks, dtype=bool)
    if masks.size == 0:
        masks = masks.reshape(0, *size)
    if masks.ndim != 3 or masks.shape[1:] != tuple(size):
        raise ValueError(f"masks of shape {masks.shape} do not match the image of shape {tuple(size)}")
    return Masks.from_dense(masks)


def shared_participant_pairs(triplets: np.ndarray) -> np.ndarray:
    """Ordered pairs of distinct relations that share a participant. [2, E]."""
    if len(triplets) < 2:
        return np.zeros((2, 0), dtype=np.int64)
    ends = triplets[:, [0, 2]]
    shares = (ends[:, None, :, None] == ends[None, :, None, :]).any(axis=(2, 3))
    np.fill_diagonal(shares, False)
    return np.stack(np.nonzero(shares)).astype(np.int64)


def build_graph(
    image: np.ndarray,
    masks: np.ndarray | Masks,
    labels: Sequence[int] | None = None,
    triplets: Sequence[Triplet] | None = None,
    knn: int = 4,
    max_relations: int | None = None,
    object_x: torch.Tensor | np.ndarray | None = None,
    image_x: torch.Tensor | np.ndarray | None = None,
) -> HeteroData:
    """Turn an RGB image and its object masks into a schema graph.

    Args:
        image: [H, W, 3] uint8 or float RGB.
        masks: [n, H, W] bool (or `graphs.masks.Masks`), one per object; none may be empty.
        labels: n category ids (-1 for unknown); default all -1.
        triplets: (subject, predicate, object) with mask indices and a
            predicate name or id; default: one geometric triplet per pair. A
            name outside the vocabulary is kept (`name_key`, `open_predicates`)
            and its one-hot is "other".
        knn: the number of nearest objects each object links to (`near`).
        max_relations: keep at most this many geometric triplets, nearest first.
        object_x: [n, F] object features from another featurizer (default: pixels).
        image_x: [1, F] global features from another featurizer (default: pixels).
    """
    masks = as_masks(masks, image.shape[:2])
    n = len(masks)
    empty = masks.empty()
    if empty.size:
        raise ValueError(f"mask {int(empty[0])} is empty; drop it before building the graph")
    if labels is not None and len(labels) != n:
        raise ValueError(f"{len(labels)} labels for {n} masks")
    pixels = image_to_uint8(image)
    boxes = boxes_from_bounds(masks.bounds, masks.height, masks.width)
    intersections = masks.intersections()
    if triplets is None:
        triplet_array = np.asarray(geometric_triplets(boxes, intersections, max_relations), dtype=np.int64).reshape(
            -1, 3
        )
        names = [PREDICATES[p] for p in triplet_array[:, 1]]
    else:
        triplet_array, names = normalise_triplets(triplets, n)
    m = len(triplet_array)

    data = empty_graph()
    if object_x is not None:
        object_x = torch.as_tensor(object_x, dtype=torch.float)
        if object_x.dim() != 2 or object_x.size(0) != n:
            raise ValueError(f"object features of shape {tuple(object_x.shape)} for {n} masks")
        data[OBJECT].x = object_x
    if n:
        if object_x is None:
            data[OBJECT].x = object_features(pixels, masks)
        data[OBJECT].box = torch.from_numpy(boxes)
        data[OBJECT].label = torch.as_tensor(list(labels) if labels is not None else [-1] * n, dtype=torch.long)
        data[OBJECT].area = torch.from_numpy(np.diag(intersections) / (masks.height * masks.width)).float()
    if m:
        s, o = triplet_array[:, 0], triplet_array[:, 2]
        one_hot = np.eye(len(PREDICATES), dtype=np.float32)[triplet_array[:, 1]]
        geometry = relation_geometry(boxes, intersections, triplet_array)
        data[RELATION].x = torch.from_numpy(np.concatenate([one_hot, geometry], axis=1))
        data[RELATION].predicate = torch.from_numpy(triplet_array[:, 1].copy())
        data[RELATION].name_key = torch.tensor([predicate_key(name) for name in names], dtype=torch.long)
        data.open_predicates = sorted({name for name in names if name not in PREDICATE_ID})
        data[RELATION].box = torch.from_numpy(union_boxes(boxes[s], boxes[o]))
        rel_ids = np.arange(m)
        data[SUBJECT_OF].edge_index = _long(np.stack([s, rel_ids]))
        data[HAS_OBJECT].edge_index = _long(np.stack([rel_ids, o]))
        data[RELATED].edge_index = _long(np.unique(np.stack([s, o]), axis=1))
        data[SHARES].edge_index = _long(shared_participant_pairs(triplet_array))
    data[OVERLAPS].edge_index = _long(overlap_pairs(boxes, intersections))
    data[NEAR].edge_index = _long(knn_pairs(boxes, knn))
    data[CONTEXT].edge_index = _long(np.stack([np.zeros(n, np.int64), np.arange(n)]))
    data[IMAGE].x = (
        image_features(pixels) if image_x is None else torch.as_tensor(image_x, dtype=torch.float).view(1, -1)
    )
    data[IMAGE].box = torch.tensor([[0.5, 0.5, 1.0, 1.0]])
    return data


def build_patch_graph(image: np.ndarray, grid: int = 8) -> HeteroData:
    """The ViT baseline as a graph: grid x grid patch tokens as `object` nodes,
    `near` edges between 4-connected grid neighbours, and the global node.

    Patch features follow the object featurizer (crop resized to CROP_SIZE,
    then a mask channel, here all ones), so both graph types share an encoder.
    """
    height, width = image.shape[:2]
    rows = np.linspace(0, height, grid + 1).round().astype(int)
    cols = np.linspace(0, width, grid + 1).round().astype(int)
    pixels = image_to_uint8(image)
    cells = [pixels[rows[r] : rows[r + 1], cols[c] : cols[c + 1]] for r in range(grid) for c in range(grid)]
    patches = torch.from_numpy(np.stack([crop_features(cell) for cell in cells]))  # [P, 4, S, S]
    centres_y = (rows[:-1] + rows[1:]) / 2 / height
    centres_x = (cols[:-1] + cols[1:]) / 2 / width
    sizes_y, sizes_x = np.diff(rows) / height, np.diff(cols) / width
    boxes = [(centres_x[c], centres_y[r], sizes_x[c], sizes_y[r]) for r in range(grid) for c in range(grid)]
    cell = np.arange(grid * grid).reshape(grid, grid)
    right = np.stack([cell[:, :-1].ravel(), cell[:, 1:].ravel()])
    down = np.stack([cell[:-1, :].ravel(), cell[1:, :].ravel()])

    data = empty_graph()
    data[OBJECT].x = patches.flatten(1)
    data[OBJECT].box = torch.tensor(boxes, dtype=torch.float)
    data[OBJECT].label = torch.full((grid * grid,), -1, dtype=torch.long)
    data[OBJECT].area = data[OBJECT].box[:, 2] * data[OBJECT].box[:, 3]
    data[NEAR].edge_index = _long(np.concatenate([right, down, right[::-1], down[::-1]], axis=1))
    data[CONTEXT].edge_index = _long(np.stack([np.zeros(grid * grid, np.int64), np.arange(grid * grid)]))
    data[IMAGE].x = image_features(pixels)
    data[IMAGE].box = torch.tensor([[0.5, 0.5, 1.0, 1.0]])
    return data
