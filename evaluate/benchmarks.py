"""Loaders of the real compositional benchmarks, from local files, into suite items.

Each loader reads the benchmark's own files under a folder you downloaded
and returns items of the suite format (evaluate.suites), so they are scored
like any suite, with the original metric definitions:

- aro-relation: visual_genome_relation.json and images/; accuracy per relation,
  their mean; the image cropped to the item's box; a tie counts as wrong.
- aro-attribution: visual_genome_attribution.json and images/; the same per
  attribute pair.
- coco-order, flickr-order: karpathy_test.json ({"image", "caption": [...]})
  and images/; the true caption against 4 word-order perturbations.
- sugarcrepe: add_att.json ... swap_obj.json (7 subsets) and images/;
  accuracy per subset, strict inequality.
- winoground: examples.jsonl and images/; text, image and group scores.

The order perturbations need nouns and adjectives; without a tagger, words
outside a stop-word list stand in for them (an approximation of ARO's spaCy
tagging, documented in the README).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

BENCHMARKS = ("aro-relation", "aro-attribution", "coco-order", "flickr-order", "sugarcrepe", "winoground")
SUGARCREPE_SUBSETS = ("add_att", "add_obj", "replace_att", "replace_obj", "replace_rel", "swap_att", "swap_obj")
STOP_WORDS = set(
    "a an the of on in at to with and or is are was were be been being it its this that these those there here "
    "by for from as into onto over under near next while his her their our your my some two three one".split()
)


def _read_json(path: Path):
    if not path.is_file():
        raise FileNotFoundError(f"benchmark file {path} does not exist")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error.msg})") from None


def _image(root: Path, name: str) -> dict:
    path = Path(name)
    return {"file": str(path if path.is_absolute() else root / "images" / path)}


def aro(root: Path, kind: str) -> list[dict]:
    name = "visual_genome_relation.json" if kind == "relation" else "visual_genome_attribution.json"
    items = []
    for k, entry in enumerate(_read_json(root / name)):
        try:
            image = _image(root, entry.get("image_path") or f"{entry['image_id']}.jpg")
            image["box"] = [entry["bbox_x"], entry["bbox_y"], entry["bbox_w"], entry["bbox_h"]]
            subset = entry["relation_name"] if kind == "relation" else "_".join(entry["attributes"])
            items.append(
                {
                    "id": f"aro-{kind}-{k}",
                    "subset": subset,
                    "image": image,
                    "captions": [entry["true_caption"], entry["false_caption"]],
                    "answer": 0,
                }
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"{root / name}: entry {k} lacks {error}") from None
    return items


def order_perturbations(caption: str, rng: np.random.Generator) -> list[str] | None:
    """ARO's four order perturbations with content words = words outside STOP_WORDS."""
    from data.negatives import order_perturbations as perturb

    words = caption.lower().rstrip(".").split()
    content = {w for w in words if w not in STOP_WORDS}
    return perturb(" ".join(words), rng, content_words=content)


def order(root: Path, name: str, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    items = []
    for k, entry in enumerate(_read_json(root / "karpathy_test.json")):
        captions = entry["caption"] if isinstance(entry["caption"], list) else [entry["caption"]]
        for j, caption in enumerate(captions):
            wrong = order_perturbations(caption, rng)
            if wrong is None:
                continue
            true = " ".join(caption.lower().rstrip(".").split())
            items.append(
                {
                    "id": f"{name}-{k}-{j}",
                    "subset": name,
                    "image": _image(root, entry["image"]),
                    "captions": [true, *wrong],
                    "answer": 0,
                }
            )
    return items


def sugarcrepe(root: Path) -> list[dict]:
    items, found = [], 0
    for subset in SUGARCREPE_SUBSETS:
        path = root / f"{subset}.json"
        if not path.is_file():
            continue
        found += 1
        for key, entry in _read_json(path).items():
            items.append(
                {
                    "id": f"{subset}-{key}",
                    "subset": subset,
                    "image": _image(root, entry["filename"]),
                    "captions": [entry["caption"], entry["negative_caption"]],
                    "answer": 0,
                }
            )
    if not found:
        raise FileNotFoundError(f"no SugarCrepe subset ({', '.join(SUGARCREPE_SUBSETS)}.json) in {root}")
    return items


def winoground(root: Path) -> list[dict]:
    path = root / "examples.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"benchmark file {path} does not exist")
    items = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            images = [_image(root, f"{entry[f'image_{k}']}.png") for k in (0, 1)]
            items.append(
                {
                    "id": f"winoground-{entry['id']}",
                    "subset": entry.get("collapsed_tag", "all"),
                    "images": images,
                    "captions": [entry["caption_0"], entry["caption_1"]],
                }
            )
        except (json.JSONDecodeError, KeyError) as error:
            raise ValueError(f"{path}:{number}: not a Winoground example ({error})") from None
    return items


def load_benchmark(name: str, root: str | Path, seed: int = 0) -> list[dict]:
    root = Path(root)
    if name == "aro-relation":
        return aro(root, "relation")
    if name == "aro-attribution":
        return aro(root, "attribution")
    if name in ("coco-order", "flickr-order"):
        return order(root, name, seed)
    if name == "sugarcrepe":
        return sugarcrepe(root)
    if name == "winoground":
        return winoground(root)
    raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
