"""How well a tokenizer's discrete tokens align with true classes: `python -m evaluate.tcas`.

TCAS comes from "On the Role of Discrete Tokenization in Visual Representation
Learning" (Du, Wang, Wang, ICLR 2024), whose exact formula is not public. This
is our formulation of its cross-class token overlap, documented as ours:

1. Tokenize images (object masks, a patch grid, or a random partition), give
   every token the pixel featurizer's features and a true class (the label
   covering most of its pixels; background is a class of its own).
2. Discretise tokens with K-means (K clusters): each token gets an id.
3. Build the class-by-token matrix M [C, K] (how often class c gets id k) and
   normalise each row into a distribution over ids.
4. TCAS = the mean cosine similarity between the distributions of two
   different classes. Lower is better: classes that share no tokens score 0.

Beside it, purity (the share of tokens whose id's majority class is theirs)
and the normalised mutual information between ids and classes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import normalized_mutual_info_score

from data.clusters import assign, fit_kmeans
from data.synthetic import SHAPES, make_scene
from graphs.features import crop_features, object_features
from graphs.masks import Masks

TOKENIZERS = ("objects", "patches", "random")
BACKGROUND = len(SHAPES)
CLASS_NAMES = (*SHAPES, "background")


def tcas_score(classes: np.ndarray, ids: np.ndarray, num_classes: int, num_ids: int) -> dict[str, float]:
    """TCAS, purity and NMI of discrete token ids against true classes."""
    matrix = np.zeros((num_classes, num_ids))
    np.add.at(matrix, (classes, ids), 1)
    matrix = matrix[matrix.sum(1) > 0]  # classes that occur
    rows = matrix / matrix.sum(1, keepdims=True)
    unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    cosine = unit @ unit.T
    pairs = len(rows) * (len(rows) - 1)
    tcas = float((cosine.sum() - np.trace(cosine)) / pairs) if pairs else 0.0
    purity = float(matrix.max(0).sum() / matrix.sum())
    return {"tcas": tcas, "purity": purity, "nmi": float(normalized_mutual_info_score(classes, ids))}


def label_map(scene) -> np.ndarray:
    """Per pixel: the shape class of the object there, or BACKGROUND."""
    labels = np.full(scene.image.shape[:2], BACKGROUND, dtype=np.int64)
    for label, mask in zip(scene.labels, scene.masks, strict=True):
        labels[mask] = label
    return labels


def region_masks(kind: str, scene, rng: np.random.Generator, grid: int = 8) -> np.ndarray:
    """[n, H, W] masks of one tokenizer on one scene."""
    height, width = scene.image.shape[:2]
    if kind == "objects":
        return scene.masks
    if kind == "patches":
        rows = np.arange(height) * grid // height
        cols = np.arange(width) * grid // width
        cell = rows[:, None] * grid + cols[None, :]
    else:  # a random partition: Voronoi cells of grid*grid random seeds
        seeds = rng.uniform(0, [height, width], size=(grid * grid, 2))
        ys, xs = np.mgrid[0:height, 0:width]
        distance = (ys[..., None] - seeds[:, 0]) ** 2 + (xs[..., None] - seeds[:, 1]) ** 2
        cell = distance.argmin(-1)
    masks = cell[None] == np.arange(grid * grid)[:, None, None]
    return masks[masks.any(axis=(1, 2))]


def tokens_of(kind: str, count: int, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """Features [T, F] and classes [T] of every token of `count` synthetic test scenes."""
    rng = np.random.default_rng(seed)
    features, classes = [], []
    for index in range(count):
        scene = make_scene(seed, "test", index)
        masks = region_masks(kind, scene, rng)
        labels = label_map(scene)
        if kind == "patches":  # the patch featurizer: whole crops, mask all ones
            packed = Masks.from_dense(masks)
            feats = torch.from_numpy(
                np.stack([crop_features(scene.image[r0:r1, c0:c1]) for r0, r1, c0, c1 in packed.bounds]).reshape(
                    len(masks), -1
                )
            )
        else:
            feats = object_features(scene.image, Masks.from_dense(masks))
        features.append(feats)
        classes.extend(np.bincount(labels[mask], minlength=BACKGROUND + 1).argmax() for mask in masks)
    return torch.cat(features), np.asarray(classes)


def compare(count: int, ks: list[int], seed: int = 0) -> list[dict]:
    rows = []
    for kind in TOKENIZERS:
        features, classes = tokens_of(kind, count, seed)
        for k in ks:
            centroids = fit_kmeans(features, k, seed)
            ids = assign(features, centroids).numpy()
            rows.append(
                {"tokenizer": kind, "k": k, "tokens": len(classes), **tcas_score(classes, ids, BACKGROUND + 1, k)}
            )
    return rows


def format_rows(rows: list[dict]) -> str:
    lines = [f"{'tokenizer':<10}{'K':>5}{'tokens':>8}{'TCAS (lower better)':>21}{'purity':>9}{'NMI':>8}"]
    lines += [
        f"{r['tokenizer']:<10}{r['k']:>5}{r['tokens']:>8}{r['tcas']:>21.3f}{r['purity']:>9.3f}{r['nmi']:>8.3f}"
        for r in rows
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(
        prog="python -m evaluate.tcas", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=300, help="synthetic test scenes to tokenize")
    parser.add_argument("--ks", default="8,16,32,64", help="comma-separated numbers of K-means clusters")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=Path("tcas.json"))
    args = parser.parse_args(argv)
    rows = compare(args.images, [int(k) for k in args.ks.split(",")], args.seed)
    print(format_rows(rows))
    args.output.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {args.output}")
    return rows


if __name__ == "__main__":
    main()
