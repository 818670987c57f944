"""Token sources: where an image's object masks (and maybe triplets) come from.

- `segment_image`: unsupervised segmentation with scikit-image (Felzenszwalb,
  SLIC or quickshift), small regions merged into their largest neighbour, then
  a minimum area and a maximum count.
- `read_tokens_file`: a JSON-lines file from any segmenter or scene-graph
  model (SEEM, SAM, RAM, ...), one image per line, validated line by line.
- `MaskRCNNSource`: torchvision's Mask R-CNN from a local weights file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from pycocotools import mask as mask_utils

from graphs.masks import Masks
from graphs.schema import PREDICATES, normalise_predicate

# Each segmenter's settings (a token source's cache key holds them). Quickshift's were chosen by mask
# IoU against the synthetic world's exact masks (bench/segmenter_iou.py): kernel 5, max_dist 10,
# ratio 0.5 find world v4's objects at a mean best IoU of 0.99, felzenszwalb's default 0.72.
SEGMENTER_SETTINGS: dict[str, dict[str, float]] = {
    "felzenszwalb": {"scale": 200.0, "sigma": 0.8, "min_size": 20},
    "slic": {"n_segments": 24, "compactness": 10.0},
    "quickshift": {"kernel_size": 5, "max_dist": 10.0, "ratio": 0.5},
}
SEGMENTERS = tuple(SEGMENTER_SETTINGS)
MIN_AREA, MAX_REGIONS = 0.005, 32  # what every segmenter token source keeps


@dataclass
class ImageTokens:
    """The tokens of one image: masks ([n, H, W] bool, or `Masks` from a tokens file) and
    what else the source knows."""

    masks: np.ndarray | Masks
    labels: list[int] | None = None
    scores: list[float] | None = None
    features: np.ndarray | None = None  # [n, F], for the `precomputed` featurizer
    triplets: list[tuple[int, int | str, int]] | None = None  # None: geometric relations


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
    min_area: float = MIN_AREA,
    max_regions: int = MAX_REGIONS,
    **settings: float,
) -> ImageTokens:
    """Unsupervised object masks of any RGB image.

    Args:
        method: ``felzenszwalb`` (graph-based), ``slic`` (superpixels) or
            ``quickshift`` (mode seeking in colour and position).
        min_area: regions smaller than this fraction of the image are merged
            into a neighbour.
        max_regions: keep the largest regions up to this many.
        settings: the segmenter's own, each defaulting to `SEGMENTER_SETTINGS`
            (felzenszwalb: scale, sigma, min_size; slic: n_segments,
            compactness; quickshift: kernel_size, max_dist, ratio).
    """
    from skimage.segmentation import felzenszwalb, quickshift, slic

    if method not in SEGMENTERS:
        raise ValueError(f"unknown segmenter {method!r}; valid: {', '.join(SEGMENTERS)}")
    unknown = set(settings) - set(SEGMENTER_SETTINGS[method])
    if unknown:
        valid = ", ".join(SEGMENTER_SETTINGS[method])
        raise ValueError(f"{method} has no setting {', '.join(sorted(unknown))}; its settings: {valid}")
    s = {**SEGMENTER_SETTINGS[method], **settings}
    if method == "felzenszwalb":
        labels = felzenszwalb(image, scale=s["scale"], sigma=s["sigma"], min_size=int(s["min_size"]))
    elif method == "slic":
        labels = slic(image, n_segments=int(s["n_segments"]), compactness=s["compactness"], start_label=0)
    else:
        pixels = image.astype(np.float64) / 255
        labels = quickshift(pixels, kernel_size=s["kernel_size"], max_dist=s["max_dist"], ratio=s["ratio"])
    labels = _merge_small_regions(labels.astype(np.int64), max(1, int(min_area * labels.size)))
    ids, counts = np.unique(labels, return_counts=True)
    keep = ids[np.argsort(-counts, kind="stable")][:max_regions]
    masks = labels[None] == keep[:, None, None]
    return ImageTokens(masks=masks)


class TokensFileError(ValueError):
    """A bad line of a tokens file; the message names the file and the line."""


def rle_runs(counts: bytes) -> np.ndarray | None:
    """The run lengths of a compressed COCO RLE string (pycocotools' own format), or
    None when the string cannot be one. Parsed here, vectorised, because pycocotools
    decodes a malformed string into garbage instead of refusing it."""
    chars = np.frombuffer(counts, dtype=np.uint8).astype(np.int64) - 48
    if chars.size == 0 or (chars < 0).any() or (chars > 63).any() or chars[-1] & 0x20:
        return None
    last = (chars & 0x20) == 0  # the last character of each number
    number = np.concatenate([[0], np.cumsum(last)[:-1]])
    first = np.flatnonzero(np.concatenate([[True], last[:-1]]))
    place = np.arange(chars.size) - first[number]
    runs = np.zeros(int(last.sum()), dtype=np.int64)
    np.add.at(runs, number, (chars & 0x1F) << (5 * place))
    negative = (chars[last] & 0x10) != 0
    runs[negative] |= -1 << (5 * (place[last][negative] + 1))
    runs[1::2], runs[2::2] = np.cumsum(runs[1::2]), np.cumsum(runs[2::2])  # stored as differences
    return runs


def mask_to_rle(mask: object, height: int, width: int) -> tuple[dict, int]:
    """A mask of a tokens file or a COCO annotation as (compressed RLE, area).

    Accepts the three forms COCO uses: a list of polygons ``[[x0, y0, x1, y1, ...], ...]``,
    compressed RLE (``counts`` a string) and uncompressed RLE (``counts`` a list of
    run lengths). A malformed mask or one of another size is a ValueError.
    """
    if isinstance(mask, list):
        polygons = [p for p in mask if isinstance(p, list)]
        if not polygons or len(polygons) != len(mask):
            raise ValueError("a polygon mask must be a list of [x0, y0, x1, y1, ...] lists")
        for polygon in polygons:
            if len(polygon) < 6 or len(polygon) % 2 or not all(isinstance(v, int | float) for v in polygon):
                raise ValueError("every polygon needs at least 3 points given as numbers x0, y0, x1, y1, ...")
        rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
        return rle, int(mask_utils.area(rle))
    if not isinstance(mask, dict) or "counts" not in mask or "size" not in mask:
        raise ValueError("expected COCO RLE {'size': [h, w], 'counts': ...} or a list of polygons")
    size = mask["size"]
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size)):
        raise ValueError(f"size {size!r} is not [height, width]")
    if tuple(size) != (height, width):
        raise ValueError(f"is {size[1]}x{size[0]}, the image {width}x{height}")
    counts = mask["counts"]
    if isinstance(counts, list):
        if not all(isinstance(v, int) and v >= 0 for v in counts) or sum(counts) != height * width:
            raise ValueError(f"uncompressed RLE counts must be non-negative and add up to {height}x{width} pixels")
        rle = mask_utils.frPyObjects({"size": size, "counts": counts}, height, width)
        return rle, int(mask_utils.area(rle))
    if isinstance(counts, str):
        counts = counts.encode()
    runs = rle_runs(counts) if isinstance(counts, bytes) else None
    if runs is None or (runs < 0).any() or runs.sum() != height * width:
        raise ValueError(f"compressed RLE counts do not describe {height}x{width} pixels")
    return {"size": [height, width], "counts": counts}, int(runs[1::2].sum())


def decode_to_masks(rles: list[dict], height: int, width: int) -> Masks:
    """Compressed RLEs -> `Masks`: each is decoded whole once, then only its box is kept."""
    placed = []
    for rle in rles:
        x, y, w, h = (int(round(v)) for v in mask_utils.toBbox(rle))
        placed.append((y, x, mask_utils.decode(rle)[y : y + h, x : x + w].astype(bool)))
    return Masks.from_crops(height, width, placed)


def keep_largest(areas: list[int] | np.ndarray, max_objects: int | None) -> list[int]:
    """Indices of the `max_objects` largest areas (ties: earlier first), in their original order."""
    if max_objects is None or len(areas) <= max_objects:
        return list(range(len(areas)))
    return sorted(int(k) for k in np.argsort(-np.asarray(areas), kind="stable")[:max_objects])


@dataclass
class TokensLine:
    """One image of a tokens file, its masks still compressed (decoded when it is built)."""

    where: str
    height: int
    width: int
    rles: list[dict]
    areas: list[int]
    labels: list[int] | None = None
    scores: list[float] | None = None
    features: np.ndarray | None = None
    triplets: list[tuple[int, int | str, int]] | None = None

    def largest(self, max_objects: int | None) -> list[int]:
        """Indices of the masks kept under the cap: the largest, in file order."""
        return keep_largest(self.areas, max_objects)

    def tokens(self, max_objects: int | None = None) -> ImageTokens:
        """The image's tokens with at most `max_objects` masks; triplets follow the kept masks."""
        keep = self.largest(max_objects)
        new_index = {old: new for new, old in enumerate(keep)}
        return ImageTokens(
            masks=decode_to_masks([self.rles[k] for k in keep], self.height, self.width),
            labels=None if self.labels is None else [self.labels[k] for k in keep],
            scores=None if self.scores is None else [self.scores[k] for k in keep],
            features=None if self.features is None else self.features[keep],
            triplets=None
            if self.triplets is None
            else [(new_index[s], p, new_index[o]) for s, p, o in self.triplets if s in new_index and o in new_index],
        )


def _parse_tokens_line(entry: dict, where: str) -> tuple[str, TokensLine]:
    if not isinstance(entry, dict):
        raise TokensFileError(f"{where}: expected a JSON object")
    for key in ("file_name", "height", "width", "masks"):
        if key not in entry:
            raise TokensFileError(f"{where}: missing key {key!r}")
    height, width = entry["height"], entry["width"]
    if not (isinstance(height, int) and isinstance(width, int) and height > 0 and width > 0):
        raise TokensFileError(f"{where}: height {height!r} and width {width!r} must be positive integers")
    if not isinstance(entry["masks"], list):
        raise TokensFileError(f"{where}: masks must be a list (one COCO RLE or polygon list per mask)")
    rles, areas = [], []
    for k, mask in enumerate(entry["masks"]):
        try:
            rle, area = mask_to_rle(mask, height, width)
        except ValueError as error:
            raise TokensFileError(f"{where}: mask {k} {error}") from None
        except Exception as error:  # pycocotools raises plain errors of several kinds
            raise TokensFileError(f"{where}: mask {k} is not a valid COCO RLE or polygon ({error})") from None
        if area == 0:
            raise TokensFileError(f"{where}: mask {k} is empty")
        rles.append(rle)
        areas.append(area)
    n = len(rles)
    line = TokensLine(where, height, width, rles, areas)
    for key in ("labels", "scores", "features", "triplets"):
        if key in entry and not isinstance(entry[key], list):
            raise TokensFileError(f"{where}: {key} must be a list")
    for key in ("labels", "scores", "features"):
        if key in entry and len(entry[key]) != n:
            raise TokensFileError(f"{where}: {len(entry[key])} {key} for {n} masks")
    if "labels" in entry:
        if not all(isinstance(v, int) for v in entry["labels"]):
            raise TokensFileError(f"{where}: labels must be integer category ids")
        line.labels = list(entry["labels"])
    try:
        if "scores" in entry:
            line.scores = [float(v) for v in entry["scores"]]
        if "features" in entry:
            line.features = np.asarray(entry["features"], dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise TokensFileError(f"{where}: scores and features must be numbers ({error})") from None
    if line.features is not None and (line.features.ndim != 2 or not np.isfinite(line.features).all()):
        raise TokensFileError(f"{where}: features must be a list of equal-length vectors of finite numbers")
    if "triplets" in entry:
        line.triplets = []
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
            if isinstance(predicate, str) and normalise_predicate(predicate):
                pid = normalise_predicate(predicate)  # kept by name: outside the vocabulary it is an open predicate
            elif isinstance(predicate, int) and not isinstance(predicate, bool) and 0 <= predicate < len(PREDICATES):
                pid = predicate
            else:
                raise TokensFileError(f"{where}: triplet {k} predicate {predicate!r} is neither a name nor an id")
            line.triplets.append((s, pid, o))
    return str(entry["file_name"]), line


@dataclass
class TokensIndexEntry:
    """What stays in memory of one line after it was validated: where it is, its
    image size, its mask areas and triplet ends (for the --max-objects counts)."""

    offset: int
    number: int
    height: int
    width: int
    areas: np.ndarray
    pairs: np.ndarray  # [m, 2] subject and object mask of each triplet


class TokensFile(Mapping):
    """A read, validated tokens file: {file name: tokens}.

    Every line is validated once when the file is read; what stays in memory is
    an index (each line's byte offset, image size, mask areas and triplet ends),
    so a file of a whole dataset, features included, costs little memory and
    little to send to each worker of a cache build. ``tokens.line(name)`` reads
    that line again and decodes it; ``tokens[name]`` gives all its tokens.
    """

    def __init__(self, path: Path, entries: dict[str, TokensIndexEntry]) -> None:
        self.path, self.entries = path, entries

    def __getitem__(self, name: str) -> ImageTokens:
        return self.line(name).tokens()

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def line(self, name: str) -> TokensLine:
        """The line of `name`, read again and parsed (a file changed since it was read is an error)."""
        entry = self.entries[name]
        where = f"{self.path}:{entry.number}"
        with open(self.path, "rb") as f:
            f.seek(entry.offset)
            raw = f.readline()
        try:
            read_name, line = _parse_tokens_line(json.loads(raw), where)
        except (json.JSONDecodeError, UnicodeDecodeError, TokensFileError):
            read_name, line = None, None
        if read_name != name:
            raise TokensFileError(f"{where}: the file changed since it was read (the line of {name} is not there)")
        return line

    def beyond(self, max_objects: int | None) -> tuple[int, int, int]:
        """(images over the cap, masks left out, triplets left out with them) under `max_objects`."""
        images = masks = triplets = 0
        for entry in self.entries.values():
            if max_objects is not None and len(entry.areas) > max_objects:
                kept = np.zeros(len(entry.areas), dtype=bool)
                kept[keep_largest(entry.areas, max_objects)] = True
                images += 1
                masks += int((~kept).sum())
                triplets += int((~kept[entry.pairs]).any(axis=1).sum()) if len(entry.pairs) else 0
        return images, masks, triplets


def read_tokens_file(path: str | Path) -> TokensFile:
    """Read and validate a tokens file -> {file name: tokens}.

    Every problem is a `TokensFileError` naming the file and the line number.
    Predicate names outside the vocabulary are kept (open vocabulary: their one-hot is
    "other", their name travels with the graph).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"tokens file {path} does not exist")
    entries: dict[str, TokensIndexEntry] = {}
    offset = 0
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            start, offset = offset, offset + len(raw)
            if not raw.strip():
                continue
            where = f"{path}:{number}"
            try:
                entry = json.loads(raw)
            except json.JSONDecodeError as error:
                raise TokensFileError(f"{where}: not valid JSON ({error.msg})") from None
            except UnicodeDecodeError:
                raise TokensFileError(f"{where}: not UTF-8 text") from None
            name, line = _parse_tokens_line(entry, where)
            if name in entries:
                raise TokensFileError(f"{where}: {name} already appeared on line {entries[name].number}")
            pairs = np.array([(s, o) for s, _, o in line.triplets or ()], dtype=np.int64).reshape(-1, 2)
            areas = np.asarray(line.areas, dtype=np.int64)
            entries[name] = TokensIndexEntry(start, number, line.height, line.width, areas, pairs)
    return TokensFile(path, entries)


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
