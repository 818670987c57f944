"""How well each scikit-image segmenter finds the world's objects: mask IoU against the exact masks.

    python bench/segmenter_iou.py --world v4 --scenes 40 --out bench/results/segmenter_iou_v4.json

For every scene of the world's test split (a pure function of seed and
index), every segmenter setting in SETTINGS cuts the image into regions (small
regions merged into a neighbour and at most 32 kept, as graphs.tokens does for
the `--token-source` segmenters); each object of the scene is matched with the
region of highest IoU. Per setting: the mean of those best IoUs over all
objects, the share of objects found (best IoU >= 0.5), regions per image, and
the share of arrows found (a region with IoU >= 0.5 against the arrow's
pixels). Background regions (under half their pixels inside any object) are
counted per image, and how many of them touch the image border or cover at
least a tenth of it, next to how many object regions do: what a rule dropping
border regions would remove. The first setting of felzenszwalb and of slic,
and the second of quickshift, are the project's `--token-source` settings.
It measures token masks only; composition on those tokens needs a
trained checkpoint and evaluate.compositional with --token-source.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.synthetic import WORLDS, Scene, arrow_mask, make_scene  # noqa: E402
from graphs.tokens import _merge_small_regions  # noqa: E402

SETTINGS = {
    "felzenszwalb": [{"scale": 200.0}, {"scale": 100.0}, {"scale": 400.0}, {"scale": 800.0}],
    "slic": [{"n_segments": 24}, {"n_segments": 16}, {"n_segments": 48}, {"n_segments": 24, "compactness": 30.0}],
    "quickshift": [{"kernel_size": 3, "max_dist": 6}, {"kernel_size": 5, "max_dist": 10}],
    "watershed": [{"markers": 16}, {"markers": 32}, {"markers": 64}],
}
MIN_AREA, MAX_REGIONS, FOUND, BORDER_SHARE = 0.005, 32, 0.5, 0.1


def segment(image: np.ndarray, method: str, setting: dict) -> np.ndarray:
    """Region masks [n, H, W] of one image by one segmenter setting."""
    from skimage import segmentation
    from skimage.color import rgb2gray
    from skimage.filters import sobel

    if method == "felzenszwalb":
        labels = segmentation.felzenszwalb(image, scale=setting["scale"], sigma=0.8, min_size=20)
    elif method == "slic":
        compactness = setting.get("compactness", 10.0)
        labels = segmentation.slic(image, n_segments=setting["n_segments"], compactness=compactness, start_label=0)
    elif method == "quickshift":
        labels = segmentation.quickshift(
            image.astype(float) / 255, kernel_size=setting["kernel_size"], max_dist=setting["max_dist"], ratio=0.5
        )
    elif method == "watershed":
        labels = segmentation.watershed(sobel(rgb2gray(image)), markers=setting["markers"], compactness=0.001)
    else:
        raise ValueError(f"unknown segmenter {method!r}; valid: {', '.join(SETTINGS)}")
    labels = _merge_small_regions(labels.astype(np.int64), max(1, int(MIN_AREA * labels.size)))
    ids, counts = np.unique(labels, return_counts=True)
    keep = ids[np.argsort(-counts, kind="stable")][:MAX_REGIONS]
    return labels[None] == keep[:, None, None]


def best_iou(targets: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """For each target mask [k, H, W], the highest IoU with any region [n, H, W]."""
    t, r = targets.reshape(len(targets), -1).astype(np.int64), regions.reshape(len(regions), -1).astype(np.int64)
    inter = t @ r.T
    union = t.sum(1)[:, None] + r.sum(1)[None, :] - inter
    return (inter / np.maximum(union, 1)).max(axis=1)


def border_share(masks: np.ndarray) -> np.ndarray:
    """For each mask [n, H, W], the share of the image's border pixels it covers."""
    border = np.zeros(masks.shape[1:], bool)
    border[[0, -1], :] = border[:, [0, -1]] = True
    return masks[:, border].sum(axis=1) / border.sum()


def background_counts(targets: np.ndarray, regions: np.ndarray) -> dict[str, int]:
    """Regions under half inside any target mask (background) and object regions, each also
    counted when touching the border and when covering at least BORDER_SHARE of it."""
    inside = (targets[:, None] & regions[None]).sum(axis=(2, 3)).max(axis=0) / regions.sum(axis=(1, 2))
    background, share = inside < 0.5, border_share(regions)
    counts = {}
    for name, kind in (("background", background), ("object", ~background)):
        counts[f"{name}_regions"] = int(kind.sum())
        counts[f"{name}_on_border"] = int((kind & (share > 0)).sum())
        counts[f"{name}_border_share"] = int((kind & (share >= BORDER_SHARE)).sum())
    return counts


def arrow_pixels(scene: Scene, canvas: int) -> np.ndarray:
    """The drawn arrows' masks [a, H, W], visible parts (objects are drawn over them)."""
    full = np.stack([o.mask(canvas) for o in scene.objects])
    masks = [
        arrow_mask(scene.objects[a].centre, scene.objects[b].centre, full, canvas, scene.style) for a, b in scene.arrows
    ]
    return np.stack([m & ~full.any(axis=0) for m in masks]) if masks else np.zeros((0, canvas, canvas), bool)


def measure(world: str, scenes: int, seed: int = 0, canvas: int = 96) -> list[dict]:
    drawn = [make_scene(seed, "test", index, canvas, world) for index in range(scenes)]
    rows = []
    for method, settings in SETTINGS.items():
        for setting in settings:
            ious, regions, arrows, kinds = [], [], [], []
            for scene in drawn:
                found = segment(scene.image, method, setting)
                ious.extend(best_iou(scene.masks, found).tolist())
                regions.append(len(found))
                kinds.append(background_counts(scene.masks, found))
                if scene.arrows:
                    arrows.extend((best_iou(arrow_pixels(scene, canvas), found) >= FOUND).tolist())
            rows.append(
                {
                    "segmenter": method,
                    "setting": setting,
                    "objects": len(ious),
                    "mean_best_iou": float(np.mean(ious)),
                    "objects_found": float(np.mean(np.asarray(ious) >= FOUND)),
                    "regions_per_image": float(np.mean(regions)),
                    "arrows": len(arrows),
                    "arrows_found": float(np.mean(arrows)) if arrows else None,
                }
                | {f"{key}_per_image": float(np.mean([k[key] for k in kinds])) for key in kinds[0]}
            )
    return rows


def format_rows(rows: list[dict]) -> str:
    lines = [
        "| segmenter | setting | mean best IoU | objects found (IoU >= 0.5) | regions / image | arrows found "
        f"| background regions / image: all, on the border, >= {BORDER_SHARE:.0%} of it | object regions, same |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        setting = ", ".join(f"{k}={v}" for k, v in row["setting"].items())
        arrows = "–" if row["arrows_found"] is None else f"{100 * row['arrows_found']:.0f} % of {row['arrows']}"
        lines.append(
            f"| {row['segmenter']} | {setting} | {row['mean_best_iou']:.3f} | {100 * row['objects_found']:.1f} % "
            f"of {row['objects']} | {row['regions_per_image']:.1f} | {arrows} | "
            + " | ".join(
                ", ".join(f"{row[f'{kind}_{key}_per_image']:.1f}" for key in ("regions", "on_border", "border_share"))
                for kind in ("background", "object")
            )
            + " |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world", choices=tuple(WORLDS), default="v4")
    parser.add_argument("--scenes", type=int, default=40, help="test scenes of the world, from index 0")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="JSON file for the rows")
    args = parser.parse_args(argv)
    rows = measure(args.world, args.scenes, args.seed)
    print(f"world {args.world}, {args.scenes} test scenes (seed {args.seed})")
    print(format_rows(rows))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps({"world": args.world, "scenes": args.scenes, "seed": args.seed, "rows": rows}, indent=2) + "\n"
        )
        print(f"wrote {args.out}")
    return rows


if __name__ == "__main__":
    main()
