"""COCO-like annotations for benchmarks: 640x480 images, ~7 polygon instances each."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image


def polygon(rng: np.random.Generator, width: int, height: int) -> list[float]:
    cx, cy = rng.uniform(40, width - 40), rng.uniform(40, height - 40)
    radius = rng.uniform(10, 120)
    angles = np.sort(rng.uniform(0, 2 * np.pi, size=int(rng.integers(8, 30))))
    r = radius * rng.uniform(0.6, 1.0, size=len(angles))
    xs = np.clip(cx + r * np.cos(angles), 0, width - 1)
    ys = np.clip(cy + r * np.sin(angles), 0, height - 1)
    return np.stack([xs, ys], 1).ravel().round(2).tolist()


def write_coco_like(root: Path, count: int, split: str = "val2017", seed: int = 0, images: bool = True) -> None:
    """A COCO folder with `count` images of random texture and 1-15 polygon instances each."""
    rng = np.random.default_rng(seed)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / split).mkdir(parents=True, exist_ok=True)
    width, height = 640, 480
    image_entries, annotations, captions = [], [], []
    for image_id in range(1, count + 1):
        name = f"{image_id:012d}.jpg"
        image_entries.append({"id": image_id, "file_name": name, "width": width, "height": height})
        if images:
            pixels = rng.integers(0, 255, size=(height // 8, width // 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).resize((width, height)).save(root / split / name, quality=90)
        for _ in range(int(rng.integers(1, 15))):
            poly = polygon(rng, width, height)
            xs, ys = poly[0::2], poly[1::2]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(rng.integers(1, 81)),
                    "iscrowd": 0,
                    "segmentation": [poly],
                    "area": 1000.0,
                    "bbox": [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)],
                }
            )
        captions += [
            {"id": len(captions) + 1, "image_id": image_id, "caption": f"image {image_id} {k}"} for k in range(5)
        ]
    categories = [{"id": k, "name": f"c{k}", "supercategory": "x"} for k in range(1, 81)]
    instances = {"images": image_entries, "annotations": annotations, "categories": categories}
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(instances))
    (root / "annotations" / f"captions_{split}.json").write_text(
        json.dumps({"images": image_entries, "annotations": captions})
    )
