"""Token sources: where an image's object masks (and maybe triplets) come from.

- `segment_image`: unsupervised segmentation with scikit-image (Felzenszwalb
  or SLIC), small regions merged into their largest neighbour, then a minimum
  area and a maximum count.
- `read_tokens_file`: a JSON-lines file from any segmenter or scene-graph
  model (SEEM, SAM, RAM, ...), one image per line, validated line by line.
- `MaskRCNNSource`: torchvision's Mask R-CNN from a local weights file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from pycocotools import mask as mask_utils

from graphs.schema import predicate_id

SEGMENTERS = ("felzenszwalb", "slic")


@dataclass
class ImageTokens:
    """The tokens of one image: masks [n, H, W] and what else the source knows."""

    masks: np.ndarray
    labels: list[int] | None = None
    scores: list[float] | None = None
    features: np.ndarray | None = None  # [n, F], for the `precomputed` featurizer
    triplets: list[tuple[int, int, int]] | None = None  # None: geometric relations


def _merge_small_regions(labels: np.ndarray, min_pixels: int) -> np.ndarray:
    """Merge every region under `min_pixels` into the neighbour it shares most border with."""
    while True:
        ids, counts = np.unique(labels, return_counts=True)
        small = ids[counts < min_pixels]
        if len(small) == 0 or len(ids) == 1:
            return labels
        region = small[np.argmin(counts[counts < min_pixels])]
        inside = labels == region
        border = np.zeros_like(inside)
        border[1:] |= inside[:-1]
        border[:-1] |= inside[1:]
        border[:, 1:] |= inside[:, :-1]
        border[:, :-1] |= inside[:, 1:]
        neighbours = labels[border & ~inside]
        if neighbours.size == 0:
            return labels
        labels[inside] = np.bincount(neighbours).argmax()


def segment_image(
    image: np.ndarray,
    method: str = "felzenszwalb",
    min_area: float = 0.005,
    max_regions: int = 32,
    scale: float = 200.0,
    n_segments: int = 24,
) -> ImageTokens:
    """Unsupervised object masks of any RGB image.

    Args:
        method: ``felzenszwalb`` (graph-based) or ``slic`` (superpixels).
        min_area: regions smaller than this fraction of the image are merged
            into a neighbour.
        max_regions: keep the largest regions up to this many.
        scale: Felzenszwalb's scale (larger: fewer, larger regions).
        n_segments: SLIC's approximate number of segments.
    """
    from skimage.segmentation import felzenszwalb, slic

    if method not in SEGMENTERS:
        raise ValueError(f"unknown segmenter {method!r}; valid: {', '.join(SEGMENTERS)}")
    if method == "felzenszwalb":
        labels = felzenszwalb(image, scale=scale, sigma=0.8, min_size=20)
    else:
        labels = slic(image, n_segments=n_segments, compactness=10.0, start_label=0)
    labels = _merge_small_regions(labels.astype(np.int64), max(1, int(min_area * labels.size)))
    ids, counts = np.unique(labels, return_counts=True)
    keep = ids[np.argsort(-counts, kind="stable")][:max_regions]
    masks = labels[None] == keep[:, None, None]
    return ImageTokens(masks=masks)


class TokensFileError(ValueError):
    """A bad line of a tokens file; the message names the file and the line."""


def _parse_tokens_line(entry: dict, where: str) -> tuple[str, ImageTokens]:
    if not isinstance(entry, dict):
        raise TokensFileError(f"{where}: expected a JSON object")
    for key in ("file_name", "height", "width", "masks"):
        if key not in entry:
            raise TokensFileError(f"{where}: missing key {key!r}")
    height, width = int(entry["height"]), int(entry["width"])
    masks = []
    for k, rle in enumerate(entry["masks"]):
        try:
            if isinstance(rle.get("counts"), list):
                rle = mask_utils.frPyObjects(rle, height, width)
            elif isinstance(rle.get("counts"), str):
                rle = {"size": rle["size"], "counts": rle["counts"].encode()}
            mask = mask_utils.decode(rle).astype(bool)
        except Exception as error:  # pycocotools raises plain errors of several kinds
            raise TokensFileError(f"{where}: mask {k} is not a valid COCO RLE ({error})") from None
        if mask.shape != (height, width):
            raise TokensFileError(f"{where}: mask {k} is {mask.shape[1]}x{mask.shape[0]}, the image {width}x{height}")
        if not mask.any():
            raise TokensFileError(f"{where}: mask {k} is empty")
        masks.append(mask)
    n = len(masks)
    tokens = ImageTokens(masks=np.stack(masks) if masks else np.zeros((0, height, width), dtype=bool))
    for key in ("labels", "scores", "features"):
        if key in entry and len(entry[key]) != n:
            raise TokensFileError(f"{where}: {len(entry[key])} {key} for {n} masks")
    if "labels" in entry:
        tokens.labels = [int(v) for v in entry["labels"]]
    if "scores" in entry:
        tokens.scores = [float(v) for v in entry["scores"]]
    if "features" in entry:
        features = np.asarray(entry["features"], dtype=np.float32)
        if features.ndim != 2:
            raise TokensFileError(f"{where}: features must be a list of equal-length vectors")
        tokens.features = features
    if "triplets" in entry:
        tokens.triplets = []
        for k, triplet in enumerate(entry["triplets"]):
            if not (isinstance(triplet, list) and len(triplet) == 3):
                raise TokensFileError(f"{where}: triplet {k} must be [subject, predicate, object]")
            s, predicate, o = triplet
            for role, index in (("subject", s), ("object", o)):
                if not isinstance(index, int) or not 0 <= index < n:
                    raise TokensFileError(
                        f"{where}: triplet {k} {role} {index} points at a missing mask (there are {n})"
                    )
            if s == o:
                raise TokensFileError(f"{where}: triplet {k} relates mask {s} to itself")
            pid = predicate_id(predicate, strict=False) if isinstance(predicate, str) else int(predicate)
            tokens.triplets.append((s, pid, o))
    return str(entry["file_name"]), tokens


def read_tokens_file(path: str | Path) -> dict[str, ImageTokens]:
    """Read and validate a tokens file -> {file name: tokens}.

    Every problem is a `TokensFileError` naming the file and the line number.
    Unknown predicate names map to "other".
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"tokens file {path} does not exist")
    tokens: dict[str, ImageTokens] = {}
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as error:
                raise TokensFileError(f"{where}: not valid JSON ({error.msg})") from None
            name, image_tokens = _parse_tokens_line(entry, where)
            if name in tokens:
                raise TokensFileError(f"{where}: {name} already appeared on an earlier line")
            tokens[name] = image_tokens
    return tokens


class MaskRCNNSource:
    """torchvision's Mask R-CNN (ResNet-50 FPN) from a local weights file; no downloads.

    Args:
        weights: path to a state dict (e.g. torchvision's
            maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth, fetched by you beforehand).
        score_threshold: keep detections at least this confident.
        max_objects: keep at most this many, most confident first.
    """

    def __init__(
        self, weights: str | Path | None, score_threshold: float = 0.5, max_objects: int = 30, device: str = "cpu"
    ) -> None:
        from torchvision.models.detection import maskrcnn_resnet50_fpn

        if weights is None:
            raise ValueError(
                "Mask R-CNN needs a local weights file (--maskrcnn-weights PATH); semgraph never downloads weights"
            )
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"Mask R-CNN weights {path} do not exist")
        self.model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.model.load_state_dict(state.get("model", state) if isinstance(state, dict) else state)
        self.model.eval().to(device)
        self.score_threshold, self.max_objects, self.device = score_threshold, max_objects, device

    @torch.no_grad()
    def __call__(self, image: np.ndarray) -> ImageTokens:
        tensor = torch.from_numpy(np.array(image)).permute(2, 0, 1).float().div(255).to(self.device)
        out = self.model([tensor])[0]
        keep = (out["scores"] >= self.score_threshold).nonzero().flatten()[: self.max_objects]
        masks = (out["masks"][keep, 0] > 0.5).cpu().numpy()
        nonempty = masks.any(axis=(1, 2))
        return ImageTokens(
            masks=masks[nonempty],
            labels=out["labels"][keep][nonempty].tolist(),
            scores=out["scores"][keep][nonempty].tolist(),
        )
