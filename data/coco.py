"""COCO through pycocotools: instances as object tokens, captions, relations.

Layout: ``ROOT/annotations/instances_SPLIT.json``,
``ROOT/annotations/captions_SPLIT.json`` and the images in ``ROOT/SPLIT/``.

Choices (documented in the README):
- Crowd regions (``iscrowd=1``) cover many things at once, so they are not
  object tokens; they are counted in the log, not silently lost.
- Degenerate annotations (no polygon of 3 points and positive area, an empty
  mask) and polygons wholly outside their image are dropped, counted and named
  in the log, and so are captions naming an image the instances file does not
  have; a polygon thinner than a pixel keeps the pixel under its centre. An
  annotation naming an unknown image or category is an error naming the file
  and the annotation, or a counted skip with ``on_bad='skip'``.
- Objects are kept largest first, at most `max_objects`; relations come from
  geometry (nearest pairs first, at most `max_relations`) or from Visual
  Genome for the images the two datasets share.
- An image with no annotations becomes a graph with only its global node.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import unicodedata
import warnings
from collections import Counter, defaultdict
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from torch_geometric.data import HeteroData

from data.cache import BadItem, GraphBuilder, file_digest, folder_digest
from data.datasets import check_featurizer, featurized_graph, stored_graph_type
from graphs.build import build_patch_graph
from graphs.features import square_pixels
from graphs.featurizers import Featurizer
from graphs.masks import Masks
from graphs.relations import boxes_from_bounds, corners
from graphs.schema import normalise_predicate
from graphs.tokens import mask_to_rle

LOG = logging.getLogger("semgraph")
CAPTIONS_PER_IMAGE = 5
VG_MATCH_IOU = 0.5
EXAMPLES_NAMED = 3  # ids a log line names per kind of problem


def load_coco(path: Path) -> COCO:
    """pycocotools' COCO index, with a clear error for a missing or broken file."""
    if not path.is_file():
        raise FileNotFoundError(f"COCO annotation file {path} does not exist")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            return COCO(str(path))
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: not a COCO annotation file ({type(error).__name__}: {error})") from None


SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def to_rgb(image: Image.Image) -> np.ndarray:
    """Any Pillow image as RGB uint8 [H, W, 3], in its stored pixel orientation.

    Grey ("1", "L") is repeated on three channels; alpha ("LA", "RGBA", "P" with
    transparency) is dropped, keeping each pixel's stored colour, as
    ``Image.convert("RGB")`` and open_clip's preprocessing do; CMYK is converted
    by Pillow; 16-bit grey ("I;16", or "I" holding 16-bit values) keeps its top
    8 bits (Pillow's own conversion would clip everything above 255 to white).
    """
    if image.mode in SIXTEEN_BIT_MODES:
        grey = (np.clip(np.asarray(image, dtype=np.int64), 0, 65535) >> 8).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")  # Pillow warns when a palette's transparency is dropped directly
    return np.asarray(image.convert("RGB"))


def exif_orientation(path: Path) -> int:
    """The EXIF orientation tag of an image file (1, upright, when there is none)."""
    try:
        with Image.open(path) as image:
            return int(image.getexif().get(0x0112, 1))
    except (OSError, ValueError, TypeError):
        return 1


def orientation_hint(path: Path) -> str:
    """A note for a size mismatch when the file carries an EXIF rotation."""
    orientation = exif_orientation(path)
    if orientation in (1, 2, 3, 4):
        return ""
    return (
        f" (the file carries EXIF orientation {orientation}, a quarter turn: semgraph reads the stored pixels "
        "unrotated, as COCO's annotations are; masks and sizes must be given in that orientation)"
    )


def unicode_variant(path: Path) -> Path:
    """`path`, or the file whose name is its other Unicode normal form: an export
    made on macOS stores names decomposed (NFD), JSON files usually composed (NFC)."""
    if path.is_file():
        return path
    for form in ("NFC", "NFD"):
        variant = path.with_name(unicodedata.normalize(form, path.name))
        if variant.is_file():
            return variant
    return path


def load_image(path: Path) -> np.ndarray:
    """RGB uint8 [H, W, 3] of any image mode (`to_rgb`); a missing, undecodable or
    too large file is a `BadItem` naming it.

    EXIF orientation is not applied: COCO's width, height and annotations are in
    the stored pixel orientation, so image and masks agree only unrotated.
    Pillow's decompression-bomb guard is kept deliberately, and strictly: an image
    of more than ``PIL.Image.MAX_IMAGE_PIXELS`` pixels (89 million by default;
    8000x6000 is 48 million) is refused with a clear error, not a warning.
    """
    path = unicode_variant(path)
    if not path.is_file():
        raise BadItem(f"image {path} does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return to_rgb(image)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
        raise BadItem(
            f"image {path} is too large to decode safely ({error}); downscale it, or raise "
            "PIL.Image.MAX_IMAGE_PIXELS in a wrapper script if you trust the file"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise BadItem(f"image {path} cannot be decoded ({error})") from None


def polygon_area(polygon: list[float]) -> float:
    """Area of a flat [x0, y0, x1, y1, ...] polygon (shoelace formula)."""
    xs, ys = np.asarray(polygon[0::2], dtype=np.float64), np.asarray(polygon[1::2], dtype=np.float64)
    return 0.5 * abs(float(np.dot(xs, np.roll(ys, -1)) - np.dot(ys, np.roll(xs, -1))))


def degenerate(annotation: dict, image: dict) -> bool:
    """No region to make a token of: no polygon of 3 points and positive area, or an empty RLE.

    A malformed RLE (runs that do not describe the image) is not degenerate but broken: it is
    left to `rasterise`, whose error names the annotation."""
    segmentation = annotation.get("segmentation")
    if isinstance(segmentation, list):
        return not any(len(polygon) >= 6 and polygon_area(polygon) > 0 for polygon in segmentation)
    if isinstance(segmentation, dict):
        if "counts" not in segmentation or "size" not in segmentation:
            return True
        try:
            _, area = mask_to_rle(segmentation, image.get("height", 0), image.get("width", 0))
        except ValueError:
            return False
        return area == 0
    return True


def left_out_line(path: Path, problems: Counter, examples: dict[str, list], what: str = "annotation") -> str:
    """'PATH: annotations left out: 2 degenerate (annotation 13, 14), 1 crowd (annotation 12)'."""
    parts = []
    for kind, count in problems.items():
        named = ", ".join(str(i) for i in examples.get(kind, [])[:EXAMPLES_NAMED])
        more = ", ..." if count > EXAMPLES_NAMED else ""
        parts.append(f"{count} {kind} ({what} {named}{more})" if named else f"{count} {kind}")
    return f"{path}: {what}s left out: " + ", ".join(parts)


def check_annotations(
    coco: COCO, path: Path, on_bad: str, examples: dict[str, list] | None = None
) -> tuple[dict[int, list[dict]], Counter]:
    """Per image, its usable instance annotations; problems raise or are counted (the first
    ids of each kind go into `examples`, so the log can name them)."""
    counts: Counter = Counter()
    examples = examples if examples is not None else {}
    usable: dict[int, list[dict]] = defaultdict(list)
    for annotation in coco.dataset.get("annotations", []):
        problem, kind = None, None
        if annotation.get("image_id") not in coco.imgs:
            problem = f"names unknown image {annotation.get('image_id')}"
        elif annotation.get("category_id") not in coco.cats:
            problem = f"names unknown category {annotation.get('category_id')}"
        if problem:
            if on_bad != "skip":
                raise ValueError(
                    f"{path}: annotation {annotation.get('id')} {problem} "
                    "(--on-bad-image skip leaves such annotations out, counted)"
                )
            kind = "bad reference"
        elif annotation.get("iscrowd", 0):
            kind = "crowd"
        elif degenerate(annotation, coco.imgs[annotation["image_id"]]):
            kind = "degenerate"
        elif outside(annotation, coco.imgs[annotation["image_id"]]):
            kind = "outside the image"
        else:
            usable[annotation["image_id"]].append(annotation)
        if kind:
            counts[kind] += 1
            examples.setdefault(kind, []).append(annotation.get("id"))
    return usable, counts


class PackedAnnotations(Mapping):
    """Each image's annotations as one compact JSON string, decoded when the image is built.

    A builder travels to every worker of a cache build and stays there: as Python
    dicts, lists and floats, train2017's 860k annotations take several times their
    JSON's 450 MB in each worker; packed, each worker holds about the JSON's size.
    """

    def __init__(self, per_image: dict[int, list[dict]]) -> None:
        self._packed = {k: json.dumps(v, separators=(",", ":")) for k, v in per_image.items()}
        self._counts = {k: len(v) for k, v in per_image.items()}

    def __getitem__(self, image_id: int) -> list[dict]:
        return json.loads(self._packed[image_id])

    def __iter__(self):
        return iter(self._packed)

    def __len__(self) -> int:
        return len(self._packed)

    def count(self, image_id: int) -> int:
        """How many annotations an image has, without decoding them."""
        return self._counts.get(image_id, 0)


def check_images(coco: COCO, path: Path, on_bad: str) -> tuple[set[int], Counter]:
    """Image entries that cannot be used: an id listed more than once (pycocotools
    would silently keep the last) or an entry without its file name or size. An
    error naming the id, or with ``on_bad='skip'`` the ids to leave out (counted)."""
    files: dict[int, list[str]] = defaultdict(list)
    incomplete: set = set()
    for image in coco.dataset.get("images", []):
        files[image.get("id")].append(str(image.get("file_name")))
        size = image.get("height"), image.get("width")
        if not isinstance(image.get("file_name"), str) or not all(isinstance(v, int) and v > 0 for v in size):
            incomplete.add(image.get("id"))
    duplicates = {image_id for image_id, names in files.items() if len(names) > 1}
    if duplicates and on_bad != "skip":
        image_id = min(duplicates, key=str)
        raise ValueError(
            f"{path}: image id {image_id} appears {len(files[image_id])} times ({', '.join(files[image_id])}); "
            f"{len(duplicates)} ids are duplicated in all (--on-bad-image skip leaves them out)"
        )
    if incomplete and on_bad != "skip":
        raise ValueError(
            f"{path}: image {min(incomplete, key=str)} lacks a file_name or a positive integer height and width "
            f"({len(incomplete)} such images; --on-bad-image skip leaves them out)"
        )
    counts = Counter({"duplicated image ids": len(duplicates), "incomplete image entries": len(incomplete)})
    return duplicates | incomplete, +counts


def drop_images(coco: COCO, image_ids: set) -> int:
    """Take images out of the index before anything reads them, with their
    annotations; returns how many annotations went with them."""
    if not image_ids:
        return 0
    annotations = coco.dataset.get("annotations", [])
    kept = [a for a in annotations if a.get("image_id") not in image_ids]
    coco.dataset["annotations"] = kept
    for image_id in image_ids:
        coco.imgs.pop(image_id, None)
    return len(annotations) - len(kept)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of (cx, cy, w, h) boxes, [len(a), len(b)]."""
    ca, cb = corners(a), corners(b)
    lo = np.maximum(ca[:, None, :2], cb[None, :, :2])
    hi = np.minimum(ca[:, None, 2:], cb[None, :, 2:])
    inter = np.clip(hi - lo, 0, None).prod(-1)
    area_a, area_b = a[:, 2] * a[:, 3], b[:, 2] * b[:, 3]
    return inter / (area_a[:, None] + area_b[None, :] - inter + 1e-9)


def load_vg_relations(vg_dir: Path, coco_ids: set[int]) -> dict[int, list[tuple[str, list, list]]]:
    """Visual Genome triplets of the images COCO shares: coco_id -> (predicate, subject box, object box).

    Boxes are normalised (cx, cy, w, h) in VG's image size (image_data.json).
    """
    image_data_path, relationships_path = vg_dir / "image_data.json", vg_dir / "relationships.json"
    for path in (image_data_path, relationships_path):
        if not path.is_file():
            raise FileNotFoundError(f"Visual Genome file {path} does not exist")
    vg_to_coco, sizes = {}, {}
    for entry in json.loads(image_data_path.read_text(encoding="utf-8")):
        if entry.get("coco_id") in coco_ids:
            vg_id = entry.get("image_id", entry.get("id"))
            vg_to_coco[vg_id] = entry["coco_id"]
            sizes[vg_id] = (entry["width"], entry["height"])
    triplets: dict[int, list] = defaultdict(list)
    for k, entry in enumerate(json.loads(relationships_path.read_text(encoding="utf-8"))):
        vg_id = entry.get("image_id", entry.get("id"))
        if vg_id not in vg_to_coco:
            continue
        width, height = sizes[vg_id]
        for relation in entry.get("relationships", []):
            try:
                boxes = [
                    [(o["x"] + o["w"] / 2) / width, (o["y"] + o["h"] / 2) / height, o["w"] / width, o["h"] / height]
                    for o in (relation["subject"], relation["object"])
                ]
                triplets[vg_to_coco[vg_id]].append((relation["predicate"], boxes[0], boxes[1]))
            except (KeyError, TypeError) as error:
                raise ValueError(f"{relationships_path}: entry {k} has a malformed relationship ({error})") from None
    return dict(triplets)


def match_vg_triplets(vg: list[tuple[str, list, list]], boxes: np.ndarray) -> list[tuple[int, str, int]]:
    """VG triplets whose subject and object each overlap a distinct COCO mask box (IoU >= 0.5)."""
    if not vg or len(boxes) < 2:
        return []
    subject_boxes = np.array([s for _, s, _ in vg], dtype=np.float32)
    object_boxes = np.array([o for _, _, o in vg], dtype=np.float32)
    iou_s, iou_o = box_iou(subject_boxes, boxes), box_iou(object_boxes, boxes)
    out = set()
    for k, (predicate, _, _) in enumerate(vg):
        s, o = int(iou_s[k].argmax()), int(iou_o[k].argmax())
        if iou_s[k, s] >= VG_MATCH_IOU and iou_o[k, o] >= VG_MATCH_IOU and s != o:
            name = normalise_predicate(predicate) if isinstance(predicate, str) else ""
            out.add((s, name or "other", o))  # open vocabulary: the name is kept (VG has some empty ones)
    return sorted(out)


class CocoBuilder(GraphBuilder):
    """COCO images -> schema graphs with their captions.

    Args:
        root: the COCO folder (annotations/, train2017/, val2017/).
        split: e.g. ``val2017``.
        relations: ``geometry`` or ``vg`` (needs `vg_dir`).
        vg_dir: folder with Visual Genome's image_data.json and relationships.json.
        karpathy: a Karpathy-style split file (dataset_coco.json); keeps the
            images of `karpathy_split` and uses its sentences as captions.
        karpathy_split: ``train`` (with restval), ``val`` or ``test``.
        max_objects: keep the largest objects up to this many.
        max_relations: geometric relations per image, nearest pairs first.
        graph_type: ``hetero`` or ``patch`` (``homo`` is stored as hetero).
        on_bad: ``error`` or ``skip`` for broken annotations and images.
        pixels: also store the image at this side (for a pixel model), 0: no.
        featurizer: what object tokens carry (default: pixels); ``precomputed``
            is refused (COCO gives masks, not features).
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "val2017",
        relations: str = "geometry",
        vg_dir: str | Path | None = None,
        karpathy: str | Path | None = None,
        karpathy_split: str = "test",
        max_objects: int = 30,
        max_relations: int = 20,
        graph_type: str = "hetero",
        on_bad: str = "error",
        pixels: int = 0,
        featurizer: Featurizer | None = None,
    ) -> None:
        self.root, self.split, self.pixels = Path(root), split, pixels
        self.featurizer = featurizer or Featurizer()
        check_featurizer(self.featurizer, graph_type, "COCO")
        if relations not in ("geometry", "vg"):
            raise ValueError(f"unknown relation source {relations!r}; valid: geometry, vg")
        if relations == "vg" and vg_dir is None:
            raise ValueError("relations='vg' needs the Visual Genome folder (--vg-dir)")
        self.relations, self.vg_dir = relations, Path(vg_dir) if vg_dir else None
        self.karpathy, self.karpathy_split = Path(karpathy) if karpathy else None, karpathy_split
        self.max_objects, self.max_relations = max_objects, max_relations
        self.graph_type, self.on_bad = stored_graph_type(graph_type), on_bad
        self.instances_path = self.root / "annotations" / f"instances_{split}.json"
        self.captions_path = self.root / "annotations" / f"captions_{split}.json"
        self.image_dir = self.root / split
        coco = load_coco(self.instances_path)
        left_out, image_problems = check_images(coco, self.instances_path, on_bad)
        orphans = drop_images(coco, left_out)
        self.problem_examples: dict[str, list] = {}
        usable, self.problems = check_annotations(coco, self.instances_path, on_bad, self.problem_examples)
        self.annotations = PackedAnnotations(usable)
        if orphans:
            self.problems["of a left-out image entry"] = orphans
        self.images = {image_id: coco.imgs[image_id] for image_id in sorted(coco.imgs)}
        self.category_names = {cat_id: cat.get("name", str(cat_id)) for cat_id, cat in coco.cats.items()}
        self.captions = self._load_captions()
        self.image_ids = [i for i in self.images if i in self.captions] if self.karpathy else list(self.images)
        self.vg = load_vg_relations(self.vg_dir, set(self.image_ids)) if relations == "vg" else {}
        if image_problems:
            left = ", ".join(f"{n} {kind}" for kind, n in image_problems.items())
            LOG.info("%s: images left out: %s", self.instances_path, left)
        # an upper bound: an annotation whose mask is empty once rasterised makes room for the next
        beyond = sum(max(0, self.annotations.count(i) - max_objects) for i in self.image_ids)
        if beyond:
            self.problems[f"beyond --max-objects {max_objects} (smallest first)"] = beyond
        if self.problems:
            LOG.info("%s", left_out_line(self.instances_path, self.problems, self.problem_examples))
        if self.unknown_captions:
            examples = self.unknown_caption_examples
            LOG.info("%s", left_out_line(self.captions_path, self.unknown_captions, examples, "caption"))

    def _load_captions(self) -> dict[int, list[str]]:
        """Captions per image; those naming an image not in the instances file are counted and
        named in the log (`unknown_captions`), not used."""
        captions: dict[int, list[str]] = defaultdict(list)
        self.unknown_captions: Counter = Counter()
        self.unknown_caption_examples: dict[str, list] = {}
        kind = f"naming an image not in {self.instances_path.name}"

        def unknown(item) -> None:
            self.unknown_captions[kind] += 1
            self.unknown_caption_examples.setdefault(kind, []).append(item)

        if self.karpathy:
            if not self.karpathy.is_file():
                raise FileNotFoundError(f"Karpathy split file {self.karpathy} does not exist")
            wanted = {"train": {"train", "restval"}}.get(self.karpathy_split, {self.karpathy_split})
            for entry in json.loads(self.karpathy.read_text(encoding="utf-8"))["images"]:
                # the file lists every COCO image; those of another split are not ours, nor an error
                if entry["split"] not in wanted or entry["cocoid"] not in self.images:
                    continue
                captions[entry["cocoid"]] = [s["raw"].strip() for s in entry["sentences"]][:CAPTIONS_PER_IMAGE]
            return dict(captions)
        for annotation in sorted(load_coco(self.captions_path).dataset.get("annotations", []), key=lambda a: a["id"]):
            if annotation.get("image_id") not in self.images:
                unknown(f"{annotation.get('id')} (image {annotation.get('image_id')})")
                continue
            captions[annotation["image_id"]].append(annotation["caption"].strip())
        return {k: v[:CAPTIONS_PER_IMAGE] for k, v in captions.items()}

    def __len__(self) -> int:
        return len(self.image_ids)

    def fingerprint(self) -> dict:
        return {
            "source": "coco",
            "instances": file_digest(self.instances_path),
            "captions": None if self.karpathy else file_digest(self.captions_path),
            "karpathy": [file_digest(self.karpathy), self.karpathy_split] if self.karpathy else None,
            "images": folder_digest(self.image_dir) if self.image_dir.is_dir() else None,
            "relations": self.relations,
            "vg": [file_digest(self.vg_dir / "relationships.json"), file_digest(self.vg_dir / "image_data.json")]
            if self.vg_dir
            else None,
            "max_objects": self.max_objects,
            "max_relations": self.max_relations,
            "on_bad": self.on_bad,
            "graph_type": self.graph_type,
            "featurizer": self.featurizer.fingerprint(),
            "pixels": self.pixels,
        }

    def masks_of(self, image_id: int, height: int, width: int) -> tuple[Masks, list[int]]:
        """Masks and category ids of an image's usable annotations, largest first."""
        annotations = sorted(self.annotations.get(image_id, []), key=lambda a: -a.get("area", 0))
        placed, labels = [], []
        for annotation in annotations:
            try:
                row, col, crop = rasterise(annotation, height, width)
            except ValueError as error:
                raise BadItem(f"{self.instances_path}: annotation {annotation.get('id')}: mask {error}") from None
            if not crop.any():  # thinner than a pixel: the pixel under its centre, as mask_pool does for cells
                row, col, crop = *centre_pixel(annotation, height, width), np.ones((1, 1), dtype=bool)
            placed.append((row, col, crop))
            labels.append(annotation["category_id"])
            if len(placed) == self.max_objects:
                break
        return Masks.from_crops(height, width, placed), labels

    def image_and_masks(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        image_id = self.image_ids[index]
        image = load_image(self.image_dir / self.images[image_id]["file_name"])
        return image, self.masks_of(image_id, *image.shape[:2])[0].dense() if self.graph_type == "hetero" else None

    def image_of(self, index: int) -> np.ndarray | None:
        if self.graph_type == "patch":
            return None
        return load_image(self.image_dir / self.images[self.image_ids[index]]["file_name"])

    def build(self, index: int) -> tuple[HeteroData, str]:
        image_id = self.image_ids[index]
        info = self.images[image_id]
        captions = self.captions.get(image_id)
        if not captions:
            raise BadItem(f"{self.captions_path}: image {image_id} ({info['file_name']}) has no captions")
        path = self.image_dir / info["file_name"]
        image = load_image(path)
        if image.shape[:2] != (info["height"], info["width"]):
            raise BadItem(
                f"image {path} is {image.shape[1]}x{image.shape[0]}, "
                f"annotations say {info['width']}x{info['height']}" + orientation_hint(path)
            )
        if self.graph_type == "patch":
            graph = build_patch_graph(image)
        else:
            masks, labels = self.masks_of(image_id, *image.shape[:2])
            triplets = None
            if self.relations == "vg":
                boxes = boxes_from_bounds(masks.bounds, masks.height, masks.width)
                triplets = match_vg_triplets(self.vg.get(image_id, []), boxes)
            graph = featurized_graph(image, masks, labels, triplets, self.featurizer, self.max_relations)
        if self.pixels:
            graph["image"].pixels = square_pixels(image, self.pixels)
        graph.captions = captions
        return graph, info["file_name"]


def centre_pixel(annotation: dict, height: int, width: int) -> tuple[int, int]:
    """(row, column) of the pixel under the centre of an annotation's points, inside the image."""
    points = np.concatenate([np.asarray(p, dtype=np.float64) for p in annotation["segmentation"] if len(p) >= 6])
    x, y = points[0::2].mean(), points[1::2].mean()
    return int(np.clip(np.floor(y), 0, height - 1)), int(np.clip(np.floor(x), 0, width - 1))


def outside(annotation: dict, image: dict) -> bool:
    """A polygon annotation none of whose points lies within its image (COCO's image entry)."""
    height, width = image.get("height", 0), image.get("width", 0)
    segmentation = annotation.get("segmentation")
    if not isinstance(segmentation, list):
        return False
    points = np.concatenate([np.asarray(p, dtype=np.float64) for p in segmentation if len(p) >= 6])
    xs, ys = points[0::2], points[1::2]
    return bool(xs.max() < 0 or ys.max() < 0 or xs.min() > width or ys.min() > height)


def rasterise(annotation: dict, height: int, width: int) -> tuple[int, int, np.ndarray]:
    """An annotation's mask as (row, column, crop): polygons are rasterised only
    inside their box (the same pixels as the whole-image mask, at a fraction of
    the cost); RLE, which spans the image, is checked (size, run lengths: pycocotools
    would decode a malformed one into garbage), decoded whole and cut to its box,
    so no full-frame array outlives the call."""
    segmentation = annotation["segmentation"]
    if isinstance(segmentation, list):
        polygons = [np.asarray(p, dtype=np.float64) for p in segmentation if len(p) >= 6]
        xs = np.concatenate([p[0::2] for p in polygons])
        ys = np.concatenate([p[1::2] for p in polygons])
        col, row = max(int(np.floor(xs.min())) - 1, 0), max(int(np.floor(ys.min())) - 1, 0)
        crop_width = min(int(np.ceil(xs.max())) + 2, width) - col
        crop_height = min(int(np.ceil(ys.max())) + 2, height) - row
        if crop_width <= 0 or crop_height <= 0:
            return 0, 0, np.zeros((0, 0), dtype=bool)
        shifted = [(p.reshape(-1, 2) - (col, row)).ravel().tolist() for p in polygons]
        rle = mask_utils.merge(mask_utils.frPyObjects(shifted, crop_height, crop_width))
        return row, col, mask_utils.decode(rle).astype(bool)
    rle, _ = mask_to_rle(segmentation, height, width)
    x, y, w, h = (int(round(v)) for v in mask_utils.toBbox(rle))
    return y, x, mask_utils.decode(rle)[y : y + h, x : x + w].astype(bool)
