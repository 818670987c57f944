"""Files shaped like real exports (COCO folders, masks in every COCO form), made by the tests."""

import json

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils


def rectangle(height, width, top, left, h, w):
    mask = np.zeros((height, width), dtype=bool)
    mask[top : top + h, left : left + w] = True
    return mask


def compressed(mask):
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": rle["size"], "counts": rle["counts"].decode()}


def rectangle_rle(height, width, top, left, h, w):
    """Uncompressed RLE of a rectangle, written without the full frame (column-major runs)."""
    counts = [left * height + top]
    for _ in range(w - 1):
        counts += [h, height - h]
    counts += [h, height * width - sum(counts) - h]
    return {"size": [height, width], "counts": counts}


def uncompressed(mask):
    flat = mask.flatten(order="F").astype(int)
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [2]])))
    return {"size": list(mask.shape), "counts": np.diff(np.concatenate([[0], changes])).tolist()}


def polygon(top, left, h, w):
    return [[left, top, left + w, top, left + w, top + h, left, top + h]]


def write_coco_folder(root, images, annotations, split="val2017"):
    """images: [(id, file name, PIL image or None, width, height)]; annotations get ids and defaults."""
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / split).mkdir(parents=True, exist_ok=True)
    entries = []
    for image_id, name, picture, width, height in images:
        entries.append({"id": image_id, "file_name": name, "width": width, "height": height})
        if picture is not None:
            picture.save(root / split / name)
    full = [
        {"id": k + 1, "iscrowd": 0, "category_id": 1, "area": 1.0, **annotation}
        for k, annotation in enumerate(annotations)
    ]
    categories = [{"id": 1, "name": "dog"}, {"id": 2, "name": "frisbee"}]
    instances = {"images": entries, "annotations": full, "categories": categories}
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(instances, ensure_ascii=False))
    captions = [
        {"id": 100 * e["id"] + k, "image_id": e["id"], "caption": f"picture {e['id']}"}
        for e in entries
        for k in range(5)
    ]
    (root / "annotations" / f"captions_{split}.json").write_text(
        json.dumps({"images": entries, "annotations": captions}, ensure_ascii=False)
    )
    return root


def noise(width, height, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8))
