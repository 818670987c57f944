"""Loaders of the real compositional benchmarks, from the files their authors ship.

Each loader reads a benchmark's own files, unchanged, in the layout its authors
use, and returns items of the suite format (evaluate.suites) in the originals'
option order, so that evaluate.report scores them with the originals' rules:

| benchmark | ROOT holds (as shipped) | images |
|---|---|---|
| aro-relation | visual_genome_relation.json | ROOT/images/<image_path>, cropped to the item's box |
| aro-attribution | visual_genome_attribution.json | the same |
| coco-order | coco_karpathy_test.json | ROOT/<image> (val2014/...) |
| flickr-order | flickr30k_test.json | ROOT/<image> (flickr30k-images/...) |
| sugarcrepe | add_obj.json ... swap_att.json (SugarCrepe's data/) | IMAGE_ROOT/<filename>, COCO val2017 |
| winoground | examples.jsonl | ROOT/images/<image_0>.png, ROOT/images/<image_1>.png |

A missing annotation file or image is an error naming it (FileNotFoundError),
checked when the benchmark is loaded.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from evaluate.order_perturbations import OrderPerturber, OrderText, detect_order_text

BENCHMARKS = ("aro-relation", "aro-attribution", "coco-order", "flickr-order", "sugarcrepe", "winoground")
# main_eval.py's order of the seven subsets
SUGARCREPE_SUBSETS = ("add_obj", "add_att", "replace_obj", "replace_att", "replace_rel", "swap_obj", "swap_att")
ARO_FILES = {"aro-relation": "visual_genome_relation.json", "aro-attribution": "visual_genome_attribution.json"}
ORDER_FILES = {"coco-order": "coco_karpathy_test.json", "flickr-order": "flickr30k_test.json"}
WINOGROUND_FILE = "examples.jsonl"
WINOGROUND_TAGS = ("tag", "secondary_tag", "num_main_preds", "collapsed_tag")


def pil_crop_corners(box) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of PIL's `Image.crop((x, y, x + w, y + h))` for box [x, y, w, h]:
    PIL rounds each corner to the nearest integer (Python's round)."""
    x, y, w, h = (float(v) for v in box)
    x0, y0, x1, y1 = (int(round(v)) for v in (x, y, x + w, y + h))
    return x0, y0, x1, y1


def crop_box(image: np.ndarray, box) -> np.ndarray:
    """The [H, W, ...] array cropped as ARO crops its images: PIL's crop of box [x, y, w, h],
    which fills the part of the box outside the image with zeros.

    Works on any array whose first two axes are rows and columns (an RGB image, a
    mask, a stack of masks laid out [H, W, N])."""
    x0, y0, x1, y1 = pil_crop_corners(box)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"box {list(box)} is empty once rounded to pixels")
    out = np.zeros((y1 - y0, x1 - x0, *image.shape[2:]), dtype=image.dtype)
    height, width = image.shape[:2]
    left, top, right, bottom = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if right > left and bottom > top:
        out[top - y0 : bottom - y0, left - x0 : right - x0] = image[top:bottom, left:right]
    return out


def _read_json(path: Path):
    if not path.is_file():
        raise FileNotFoundError(f"benchmark file {path} does not exist")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error.msg})") from None


def _image(path: Path, where: str) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{where}: image {path} does not exist")
    return {"file": str(path)}


def aro(root: Path, name: str) -> list[dict]:
    """VG-Relation / VG-Attribution: options [false caption, true caption] as ARO orders them."""
    path = root / ARO_FILES[name]
    items = []
    for k, entry in enumerate(_read_json(path)):
        where = f"{path}: entry {k}"
        try:
            image = _image(root / "images" / entry["image_path"], where)
            image["box"] = [entry["bbox_x"], entry["bbox_y"], entry["bbox_w"], entry["bbox_h"]]
            if name == "aro-relation":
                subset = entry["relation_name"]
            else:
                subset = f"{entry['attributes'][0]}_{entry['attributes'][1]}"
            captions = [entry["false_caption"], entry["true_caption"]]
        except (KeyError, TypeError, IndexError) as error:
            raise ValueError(f"{where} lacks {error}") from None
        items.append({"id": f"{name}-{k}", "subset": subset, "image": image, "captions": captions, "answer": 1})
    return items


def order(root: Path, name: str, seed: int = 1, text: OrderText | None = None) -> list[dict]:
    """COCO-Order / Flickr30k-Order: one test case per caption, [caption, 4 perturbations]."""
    path = root / ORDER_FILES[name]
    text = text or detect_order_text()
    perturber = OrderPerturber(text, seed)
    items = []
    for k, entry in enumerate(_read_json(path)):
        where = f"{path}: entry {k}"
        try:
            image, captions = entry["image"], entry["caption"]
        except (KeyError, TypeError) as error:
            raise ValueError(f"{where} lacks {error}") from None
        if not isinstance(captions, list):
            raise ValueError(f"{where}: 'caption' must be a list of captions, as in the {name} test file")
        ref = _image(root / image, where)
        for j, caption in enumerate(captions):
            items.append(
                {
                    "id": f"{name}-{k}-{j}",
                    "subset": name,
                    "image": ref,
                    "captions": perturber.options(caption),
                    "answer": 0,
                    "approximations": text.approximations,
                }
            )
    return items


def sugarcrepe(root: Path, image_root: Path | None = None, skip_missing: bool = False) -> list[dict]:
    """SugarCrepe's seven subsets: options [caption, negative_caption]; images from COCO val2017."""
    image_root = image_root or root / "val2017"
    if not image_root.is_dir():
        raise FileNotFoundError(
            f"SugarCrepe's images (COCO val2017) are not in {image_root}: give --image-root, main_eval.py's "
            "--coco_image_root"
        )
    items = []
    for subset in SUGARCREPE_SUBSETS:
        path = root / f"{subset}.json"
        if skip_missing and not path.is_file():
            continue
        for key, entry in _read_json(path).items():
            where = f"{path}: entry {key}"
            try:
                image = _image(image_root / entry["filename"], where)
                captions = [entry["caption"], entry["negative_caption"]]
            except (KeyError, TypeError) as error:
                raise ValueError(f"{where} lacks {error}") from None
            items.append({"id": f"{subset}-{key}", "subset": subset, "image": image, "captions": captions, "answer": 0})
    if not items:
        raise FileNotFoundError(f"no SugarCrepe subset ({', '.join(SUGARCREPE_SUBSETS)}.json) in {root}")
    return items


def winoground(root: Path) -> list[dict]:
    """Winoground's examples: two images and two captions, with the example's tags."""
    path = root / WINOGROUND_FILE
    if not path.is_file():
        raise FileNotFoundError(f"benchmark file {path} does not exist")
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            entry = json.loads(line)
            images = [_image(root / "images" / f"{entry[f'image_{k}']}.png", where) for k in (0, 1)]
            captions = [entry["caption_0"], entry["caption_1"]]
            example_id = entry["id"]
        except json.JSONDecodeError as error:
            raise ValueError(f"{where}: not valid JSON ({error.msg})") from None
        except (KeyError, TypeError) as error:
            raise ValueError(f"{where}: not a Winoground example (lacks {error})") from None
        tags = {name: entry.get(name) for name in WINOGROUND_TAGS}
        subset = tags["collapsed_tag"] or "all"
        items.append(
            {"id": f"winoground-{example_id}", "subset": subset, "images": images, "captions": captions, "tags": tags}
        )
    return items


def load_benchmark(
    name: str,
    root: str | Path,
    seed: int = 1,
    image_root: str | Path | None = None,
    skip_missing_subsets: bool = False,
    order_text: OrderText | None = None,
) -> list[dict]:
    """The items of benchmark `name` from its files under `root`.

    seed: the order perturbations' generators (ARO's main_aro.py defaults to 1).
    image_root: SugarCrepe's COCO val2017 folder (default ROOT/val2017).
    skip_missing_subsets: SugarCrepe only: leave out absent subset files instead of stopping.
    order_text: the tagger and tokenizer of the order perturbations (default: detected).
    """
    root = Path(root)
    if name in ARO_FILES:
        return aro(root, name)
    if name in ORDER_FILES:
        return order(root, name, seed, order_text)
    if name == "sugarcrepe":
        return sugarcrepe(root, Path(image_root) if image_root else None, skip_missing_subsets)
    if name == "winoground":
        return winoground(root)
    raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")


def annotation_files(name: str, root: str | Path) -> list[Path]:
    """The annotation files of benchmark `name` that exist under `root`."""
    root = Path(root)
    names = {
        **ARO_FILES,
        **ORDER_FILES,
        "winoground": WINOGROUND_FILE,
    }
    if name == "sugarcrepe":
        candidates = [root / f"{subset}.json" for subset in SUGARCREPE_SUBSETS]
    else:
        candidates = [root / names[name]]
    return [path for path in candidates if path.is_file()]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_benchmark(name: str, root: str | Path, items: list[dict]) -> dict:
    """What a results file records about the benchmark's data: the annotation files' sha256,
    the approximations the items were made with, the SugarCrepe subsets left out."""
    root = Path(root)
    files = annotation_files(name, root)
    used = {tuple(item.get("approximations", ())) for item in items}
    if len(used) > 1:
        raise ValueError(f"{name}: items made with different approximations {sorted(used)}; load them in one go")
    description = {
        "root": str(root),
        "files": {path.name: sha256_of(path) for path in files},
        "approximations": list(used.pop()) if used else [],
    }
    if name == "sugarcrepe":
        present = {path.stem for path in files}
        description["missing_subsets"] = [s for s in SUGARCREPE_SUBSETS if s not in present]
    return description
