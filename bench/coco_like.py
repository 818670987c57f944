"""COCO-like annotations for benchmarks: 640x480 images, ~7 polygon instances each."""

from __future__ import annotations

import json
import os
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


# --- resumable, train2017-sized splits (bench/rehearse_coco.py) ------------------------------------

SIZES = ((640, 480), (640, 427), (480, 640), (640, 360), (500, 375))  # COCO's commonest shapes
CATEGORY_NAMES = (
    "person bicycle car motorcycle airplane bus train truck boat light hydrant sign meter bench bird cat dog "
    "horse sheep cow elephant bear zebra giraffe backpack umbrella handbag tie suitcase frisbee skis snowboard "
    "ball kite bat glove skateboard surfboard racket bottle glass cup fork knife spoon bowl banana apple "
    "sandwich orange broccoli carrot hotdog pizza donut cake chair couch plant bed table toilet tv laptop mouse "
    "remote keyboard phone microwave oven toaster sink refrigerator book clock vase scissors teddy drier toothbrush"
).split()
CATEGORIES = [{"id": k + 1, "name": name, "supercategory": "thing"} for k, name in enumerate(CATEGORY_NAMES[:80])]
TEMPLATES = ("a photo of {}", "{} in a picture", "a picture with {}", "an image showing {}", "there is {}")
SPLIT_CODES = {"train2017": 1, "val2017": 2}
JPEG_END = b"\xff\xd9"


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE of a [H, W] mask: run lengths in column-major order, zeros first."""
    flat = np.asfortranarray(mask).ravel(order="F").astype(np.uint8)
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [len(flat)]])
    counts = np.diff(bounds).tolist()
    if flat[0] == 1:
        counts = [0] + counts
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


def image_record(seed: int, split: str, index: int) -> tuple[dict, list[dict], list[str], np.random.Generator]:
    """Image `index` of a split: its entry, its annotations (ids filled later), its captions, and the
    generator that then draws its pixels. Everything follows from (seed, split, index) alone."""
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng([seed, SPLIT_CODES.get(split, 9), index])
    image_id = SPLIT_CODES.get(split, 9) * 10_000_000 + index + 1
    width, height = SIZES[int(rng.integers(len(SIZES)))]
    entry = {"id": image_id, "file_name": f"{image_id:012d}.jpg", "width": width, "height": height}
    annotations, names = [], []
    for _ in range(int(rng.integers(1, 15))):  # 7.5 instances on average (train2017: 7.3)
        poly = polygon(rng, width, height)
        xs, ys = poly[0::2], poly[1::2]
        category = int(rng.integers(1, 81))
        names.append(CATEGORY_NAMES[category - 1])
        kind = rng.random()
        segmentation: list | dict = [poly]
        if kind >= 0.8:  # a fifth as RLE: compressed (a segmenter's export), or uncompressed
            rle = mask_utils.merge(mask_utils.frPyObjects([poly], height, width))
            if kind < 0.95:
                segmentation = {"size": rle["size"], "counts": rle["counts"].decode()}
            else:
                segmentation = uncompressed_rle(mask_utils.decode(rle))
        annotations.append(
            {
                "image_id": image_id,
                "category_id": category,
                "iscrowd": 0,
                "segmentation": segmentation,
                "area": round(polygon_area_of(xs, ys), 2),
                "bbox": [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)],
            }
        )
    unique = list(dict.fromkeys(names))
    captions = []
    for k, template in enumerate(TEMPLATES):
        chosen = [unique[(k + j) % len(unique)] for j in range(min(3, len(unique)))]
        captions.append(template.format(" and ".join(f"a {name}" for name in chosen)))
    return entry, annotations, captions, rng


def polygon_area_of(xs: list[float], ys: list[float]) -> float:
    x, y = np.asarray(xs), np.asarray(ys)
    return float(abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))) / 2)


def draw_image(entry: dict, annotations: list[dict], rng: np.random.Generator) -> Image.Image:
    """Noise at 1/8 resolution, upsampled, with each instance's polygon filled in its category's colour."""
    from PIL import ImageDraw

    width, height = entry["width"], entry["height"]
    pixels = rng.integers(0, 255, size=(height // 8, width // 8, 3), dtype=np.uint8)
    image = Image.fromarray(pixels).resize((width, height))
    draw = ImageDraw.Draw(image)
    for annotation in annotations:
        colour = tuple(int(c) for c in np.random.default_rng(annotation["category_id"]).integers(0, 255, 3))
        x, y, w, h = annotation["bbox"]
        segmentation = annotation["segmentation"]
        if isinstance(segmentation, list):
            draw.polygon(segmentation[0], fill=colour)
        else:
            draw.ellipse([x, y, x + w, y + h], fill=colour)  # an RLE's pixels need not match: a texture only
    return image


def intact_jpeg(path: Path) -> bool:
    """A JPEG written whole: it exists and ends with the end-of-image marker (a torn write does not)."""
    try:
        size = path.stat().st_size
        if size < 4:
            return False
        with open(path, "rb") as f:
            f.seek(size - 2)
            return f.read(2) == JPEG_END
    except OSError:
        return False


def write_coco_split(root: Path, split: str, count: int, seed: int = 0, progress: bool = True) -> dict:
    """A COCO split of `count` images under `root`, resumable: an intact image already there is kept,
    a torn one rewritten; the annotation files are written (atomically) once every image is there,
    and a split whose `.complete` stamp matches (count, seed) is not touched. Returns counts."""
    from tqdm.auto import tqdm

    from data.atomic import write_text_atomic

    stamp = root / "annotations" / f".complete_{split}.json"
    wanted = {"split": split, "count": count, "seed": seed}
    if stamp.is_file() and json.loads(stamp.read_text()) == wanted:
        return {"written": 0, "kept": count, "torn": 0}
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    folder = root / split
    folder.mkdir(parents=True, exist_ok=True)
    for leftover in folder.glob(".*.tmp"):
        leftover.unlink()
    entries, annotations, captions = [], [], []
    written = kept = torn = 0
    for index in tqdm(range(count), desc=f"writing {split}", disable=not progress, unit="image"):
        entry, image_annotations, image_captions, rng = image_record(seed, split, index)
        for annotation in image_annotations:
            annotation["id"] = len(annotations) + 1
            annotations.append(annotation)
        captions += [
            {"id": len(captions) + k + 1, "image_id": entry["id"], "caption": c} for k, c in enumerate(image_captions)
        ]
        entries.append(entry)
        path = folder / entry["file_name"]
        if path.exists() and intact_jpeg(path):
            kept += 1
            continue
        torn += path.exists()
        tmp = folder / f".{entry['file_name']}.tmp"
        draw_image(entry, image_annotations, rng).save(tmp, format="JPEG", quality=90)
        os.replace(tmp, path)
        written += 1
    instances = {"images": entries, "annotations": annotations, "categories": CATEGORIES}
    write_text_atomic(root / "annotations" / f"instances_{split}.json", json.dumps(instances))
    write_text_atomic(
        root / "annotations" / f"captions_{split}.json", json.dumps({"images": entries, "annotations": captions})
    )
    write_text_atomic(stamp, json.dumps(wanted))
    return {"written": written, "kept": kept, "torn": torn}
