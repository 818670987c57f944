"""A synthetic suite as image files, for composition without the world's exact masks.

    python bench/export_suite_images.py --suite winoground-synthetic --world v4 --count 200 --out runs/wino-files

writes OUT/images/K.png (every distinct image of the suite, drawn as the world
draws it), OUT/suite.jsonl (the same items with ``{"file": "images/K.png"}``
images) and OUT/tokens.jsonl (each image's exact masks as COCO RLE, its shape
labels and its triplets: a tokens file). Then

    python -m evaluate.compositional --checkpoint RUN/checkpoints/latest.pt --suite OUT/suite.jsonl \\
        --token-source felzenszwalb                  # or slic, or tokens with --tokens-file OUT/tokens.jsonl

scores the same items with each token source: the exact masks through the
tokens file, or what a segmenter finds in the pixels.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.synthetic import WORLDS, Scene  # noqa: E402
from evaluate.suites import SYNTHETIC_SUITES, render_layout, scene_of_ref, synthetic_suite, write_suite  # noqa: E402
from graphs.schema import PREDICATES  # noqa: E402


def scene_of(ref: dict) -> Scene:
    return scene_of_ref(ref["synthetic"]) if "synthetic" in ref else render_layout(ref["layout"])


def tokens_line(name: str, scene: Scene) -> dict:
    """One line of a tokens file: the scene's exact masks (COCO RLE), shape labels and triplets."""
    from pycocotools import mask as mask_utils

    height, width = scene.masks.shape[1:]
    masks = []
    for mask in scene.masks:
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        masks.append({"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode()})
    triplets = [[int(s), PREDICATES[p], int(o)] for s, p, o in scene.triplets]
    return {
        "file_name": name,
        "height": height,
        "width": width,
        "masks": masks,
        "labels": scene.labels,
        "triplets": triplets,
    }


def export(items: list[dict], out: Path) -> dict[str, int]:
    """Write the images, the suite with file references and the tokens file; returns counts."""
    from PIL import Image

    (out / "images").mkdir(parents=True, exist_ok=True)
    names: dict[str, str] = {}
    lines = []

    def file_ref(ref: dict) -> dict:
        key = json.dumps(ref, sort_keys=True)
        if key not in names:
            names[key] = f"images/{len(names)}.png"
            scene = scene_of(ref)
            Image.fromarray(scene.image).save(out / names[key])
            lines.append(tokens_line(names[key], scene))
        return {"file": names[key]}

    exported = []
    for item in items:
        item = dict(item)
        if "images" in item:
            item["images"] = [file_ref(ref) for ref in item["images"]]
        else:
            item["image"] = file_ref(item["image"])
        exported.append(item)
    write_suite(exported, out / "suite.jsonl")
    (out / "tokens.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return {"items": len(exported), "images": len(names)}


def main(argv: list[str] | None = None) -> dict[str, int]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=SYNTHETIC_SUITES, required=True)
    parser.add_argument("--world", choices=tuple(WORLDS), default="v4")
    parser.add_argument("--count", type=int, help="items (default: the suite's own)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="folder for images/, suite.jsonl, tokens.jsonl")
    args = parser.parse_args(argv)
    try:
        items = synthetic_suite(args.suite, args.count, args.seed, world=args.world)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    counts = export(items, args.out)
    print(f"wrote {counts['items']} items, {counts['images']} images and their tokens to {args.out}")
    return counts


if __name__ == "__main__":
    main()
