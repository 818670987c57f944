"""Small builders shared by the tests."""

import numpy as np
import torch

from graphs.schema import OBJECT


def square_masks(canvas: int, squares: list[tuple[int, int, int]]) -> np.ndarray:
    """Boolean masks of axis-aligned squares given as (x0, y0, side) in pixels."""
    masks = np.zeros((len(squares), canvas, canvas), dtype=bool)
    for k, (x0, y0, side) in enumerate(squares):
        masks[k, y0 : y0 + side, x0 : x0 + side] = True
    return masks


def write_coco(root, split: str = "val2017", corrupt: tuple[int, ...] = (), extra_annotations=()):
    """A small COCO folder written the way COCO exports look, images included.

    Image 1: a polygon square (cat 1), a compressed-RLE rectangle (cat 2), a
    crowd region in uncompressed RLE, a degenerate 2-point polygon.
    Image 2: no annotations. Image 3: one polygon triangle.
    Returns {image_id: file name}.
    """
    import json
    from pathlib import Path

    from PIL import Image
    from pycocotools import mask as mask_utils

    root = Path(root)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / split).mkdir(parents=True, exist_ok=True)
    height, width = 48, 64
    images, names = [], {}
    for image_id in (1, 2, 3):
        name = f"{image_id:012d}.jpg"
        names[image_id] = name
        images.append({"id": image_id, "file_name": name, "height": height, "width": width})
        pixels = np.random.default_rng(image_id).integers(0, 255, size=(height, width, 3), dtype=np.uint8)
        if image_id in corrupt:
            (root / split / name).write_bytes(b"not a jpeg")
        else:
            Image.fromarray(pixels).save(root / split / name)
    rect = np.zeros((height, width), dtype=np.uint8, order="F")
    rect[20:40, 40:60] = 1
    rle = mask_utils.encode(rect)
    rle["counts"] = rle["counts"].decode()
    crowd = np.zeros((height, width), dtype=np.uint8)
    crowd[0:10, 0:64] = 1
    flat = crowd.flatten(order="F")
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [2]])))
    counts = np.diff(np.concatenate([[0], changes])).tolist()
    annotations = [
        {
            "id": 10,
            "image_id": 1,
            "category_id": 1,
            "iscrowd": 0,
            "area": 100.0,
            "bbox": [5, 15, 10, 10],
            "segmentation": [[5, 15, 15, 15, 15, 25, 5, 25]],
        },
        {
            "id": 11,
            "image_id": 1,
            "category_id": 2,
            "iscrowd": 0,
            "area": 400.0,
            "bbox": [40, 20, 20, 20],
            "segmentation": rle,
        },
        {
            "id": 12,
            "image_id": 1,
            "category_id": 1,
            "iscrowd": 1,
            "area": 640.0,
            "bbox": [0, 0, 64, 10],
            "segmentation": {"size": [height, width], "counts": counts},
        },
        {
            "id": 13,
            "image_id": 1,
            "category_id": 2,
            "iscrowd": 0,
            "area": 0.0,
            "bbox": [1, 1, 1, 1],
            "segmentation": [[1, 1, 2, 2]],
        },
        {
            "id": 30,
            "image_id": 3,
            "category_id": 2,
            "iscrowd": 0,
            "area": 200.0,
            "bbox": [10, 10, 20, 20],
            "segmentation": [[10, 30, 30, 30, 20, 10]],
        },
        *extra_annotations,
    ]
    categories = [
        {"id": 1, "name": "cat", "supercategory": "animal"},
        {"id": 2, "name": "box", "supercategory": "thing"},
    ]
    instances = {"images": images, "annotations": annotations, "categories": categories}
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(instances))
    captions = [
        {"id": 100 * image_id + k, "image_id": image_id, "caption": f"image {image_id} caption {k} "}
        for image_id in (1, 2, 3)
        for k in range(6)
    ]
    (root / "annotations" / f"captions_{split}.json").write_text(
        json.dumps({"images": images, "annotations": captions})
    )
    return names


TINY_TEXT = {"context_length": 32, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1}
TINY_MODEL = {"embed_dim": 16, "graph": {"width": 16, "depth": 1, "heads": 2}, "text": TINY_TEXT}


def write_tiny_config(folder, **overrides):
    """A model config small enough to train in a second; returns its path."""
    import json
    from pathlib import Path

    path = Path(folder) / "tiny.json"
    path.write_text(json.dumps({**TINY_MODEL, **overrides}))
    return path


def train_tiny(folder, out, *extra, size: int = 32):
    """One epoch of the tiny model on `size` synthetic scenes, written to `out`; returns the final metrics."""
    from train.run import main

    config = write_tiny_config(folder)
    return main(
        [
            "--train-size",
            str(size),
            "--val-size",
            "8",
            "--batch-size",
            "16",
            "--epochs",
            "1",
            "--model-config",
            str(config),
            "--out",
            str(out),
            "--no-progress",
            *extra,
        ]
    )


def permuted(graph, perm):
    """The same graph with its objects reordered: new object k is old object perm[k]."""
    out = graph.clone()
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(len(perm))
    for key in ("x", "box", "label", "area"):
        out[OBJECT][key] = graph[OBJECT][key][perm]
    for edge_type in graph.edge_types:
        edge_index = graph[edge_type].edge_index.clone()
        if edge_type[0] == OBJECT:
            edge_index[0] = inverse[edge_index[0]]
        if edge_type[2] == OBJECT:
            edge_index[1] = inverse[edge_index[1]]
        out[edge_type].edge_index = edge_index
    return out
