"""Any folder of images with a captions file, tokenized by the source you name.

The captions file is JSON lines: ``{"file_name": "dog.jpg", "captions": ["a dog", ...]}``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from torch_geometric.data import HeteroData

from data.cache import BadItem, GraphBuilder, file_digest, folder_digest
from data.coco import load_image, orientation_hint
from data.datasets import check_featurizer, stored_graph_type
from graphs.build import build_graph, build_patch_graph
from graphs.features import square_pixels
from graphs.featurizers import Featurizer
from graphs.masks import Masks
from graphs.tokens import (
    MAX_REGIONS,
    MIN_AREA,
    SEGMENTER_SETTINGS,
    SEGMENTERS,
    ImageTokens,
    MaskRCNNSource,
    read_tokens_file,
    segment_image,
)

TOKEN_SOURCES = (*SEGMENTERS, "tokens", "maskrcnn")
LOG = logging.getLogger("semgraph")


def dense_masks(masks: np.ndarray | Masks) -> np.ndarray:
    """[n, H, W] bool, from either form (for drawing and for backbone pooling)."""
    return masks.dense() if isinstance(masks, Masks) else masks


def read_captions_file(path: str | Path) -> dict[str, list[str]]:
    """{file name: captions}; a bad line is a ValueError naming the file and line number.

    A name on several lines (an export writing one caption per line) gets the
    captions of all its lines, in file order; how many names did is logged.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"captions file {path} does not exist")
    captions: dict[str, list[str]] = {}
    repeated: set[str] = set()
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                name, texts = entry["file_name"], entry["captions"]
            except (json.JSONDecodeError, KeyError, TypeError) as error:
                raise ValueError(
                    f'{path}:{number}: expected {{"file_name": ..., "captions": [...]}} ({error})'
                ) from None
            if isinstance(texts, str):
                texts = [texts]
            if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
                raise ValueError(f"{path}:{number}: {name} needs at least one non-empty caption")
            if name in captions:
                repeated.add(name)
            captions.setdefault(name, []).extend(t.strip() for t in texts)
    if repeated:
        LOG.info("%s: %d file names appear on more than one line; their captions are combined", path, len(repeated))
    return captions


def segmenter_fingerprint(kind: str) -> dict:
    """A segmenter token source's settings, as its cache key holds them."""
    return {**SEGMENTER_SETTINGS[kind], "min_area": MIN_AREA, "max_regions": MAX_REGIONS}


class TokenSource:
    """Masks for an image from a segmenter, a tokens file or Mask R-CNN (created lazily).

    A tokens file's images keep their `max_objects` largest masks (in file order;
    triplets touching a left-out mask go with it); what the cap leaves out is
    counted in `beyond` and logged.
    """

    def __init__(
        self,
        kind: str = "felzenszwalb",
        tokens_file: str | Path | None = None,
        maskrcnn_weights: str | Path | None = None,
        max_objects: int | None = None,
    ) -> None:
        if kind not in TOKEN_SOURCES:
            raise ValueError(f"unknown token source {kind!r}; valid: {', '.join(TOKEN_SOURCES)}")
        if kind == "tokens" and tokens_file is None:
            raise ValueError("token source 'tokens' needs --tokens-file FILE")
        self.kind, self.tokens_file, self.maskrcnn_weights = kind, tokens_file, maskrcnn_weights
        self.tokens = read_tokens_file(tokens_file) if kind == "tokens" else None
        self.max_objects = max_objects
        self.beyond = self.tokens.beyond(max_objects) if self.tokens is not None else (0, 0, 0)
        if self.beyond[0]:
            images, masks, triplets = self.beyond
            LOG.info(
                "%s: %d images have more than --max-objects %d masks; left out: %d masks (smallest first), "
                "%d triplets with them",
                tokens_file,
                images,
                max_objects,
                masks,
                triplets,
            )
        self._maskrcnn = MaskRCNNSource(maskrcnn_weights) if kind == "maskrcnn" else None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_maskrcnn": None}

    def fingerprint(self) -> dict:
        return {
            "kind": self.kind,
            "tokens_file": file_digest(self.tokens_file) if self.tokens_file else None,
            "maskrcnn_weights": file_digest(self.maskrcnn_weights) if self.maskrcnn_weights else None,
            "max_objects": self.max_objects if self.kind == "tokens" else None,
            "segmenter": segmenter_fingerprint(self.kind) if self.kind in SEGMENTERS else None,
        }

    def __call__(self, name: str, image: np.ndarray, path: Path | None = None) -> ImageTokens:
        if self.kind in SEGMENTERS:
            return segment_image(image, self.kind)
        if self.kind == "tokens":
            if name not in self.tokens:
                raise BadItem(f"{self.tokens_file}: no line for image {name}")
            line = self.tokens.line(name)
            if (line.height, line.width) != image.shape[:2]:
                raise BadItem(
                    f"{line.where}: masks of {name} are {line.width}x{line.height}, "
                    f"the image {image.shape[1]}x{image.shape[0]}" + (orientation_hint(path) if path else "")
                )
            return line.tokens(self.max_objects)
        if self._maskrcnn is None:
            self._maskrcnn = MaskRCNNSource(self.maskrcnn_weights)
        return self._maskrcnn(image)


def tokens_to_graph(
    image: np.ndarray, tokens: ImageTokens, featurizer: Featurizer, max_relations: int | None
) -> HeteroData:
    """One image and its tokens -> a schema graph with the chosen featurizer."""
    object_x, image_x = featurizer(image, tokens.masks, tokens.features)
    return build_graph(
        image,
        tokens.masks,
        tokens.labels,
        tokens.triplets,
        max_relations=max_relations,
        object_x=object_x,
        image_x=image_x,
    )


class ImageFolderBuilder(GraphBuilder):
    """Graphs of the images a captions file lists, in its order."""

    def __init__(
        self,
        images: str | Path,
        captions: str | Path,
        source: TokenSource | None = None,
        featurizer: Featurizer | None = None,
        max_relations: int | None = 20,
        graph_type: str = "hetero",
        pixels: int = 0,
    ) -> None:
        self.pixels = pixels
        self.image_dir = Path(images)
        if not self.image_dir.is_dir():
            raise FileNotFoundError(f"image folder {self.image_dir} does not exist")
        self.captions_path = Path(captions)
        self.captions = read_captions_file(captions)
        self.names = list(self.captions)
        self.source = source or TokenSource()
        self.featurizer = featurizer or Featurizer()
        self.max_relations, self.graph_type = max_relations, stored_graph_type(graph_type)
        check_featurizer(self.featurizer, graph_type, f"token source {self.source.kind}", self.source.kind == "tokens")

    def __len__(self) -> int:
        return len(self.names)

    def fingerprint(self) -> dict:
        return {
            "source": "images",
            "images": folder_digest(self.image_dir),
            "captions": file_digest(self.captions_path),
            "token_source": self.source.fingerprint(),
            "featurizer": self.featurizer.fingerprint(),
            "max_relations": self.max_relations,
            "graph_type": self.graph_type,
            "pixels": self.pixels,
        }

    def image_and_masks(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        name = self.names[index]
        image = load_image(self.image_dir / name)
        return image, dense_masks(self.source(name, image).masks) if self.graph_type == "hetero" else None

    def image_of(self, index: int) -> np.ndarray | None:
        return None if self.graph_type == "patch" else load_image(self.image_dir / self.names[index])

    def build(self, index: int) -> tuple[HeteroData, str]:
        name = self.names[index]
        image = load_image(self.image_dir / name)
        if self.graph_type == "patch":
            graph = build_patch_graph(image)
        else:
            tokens = self.source(name, image, self.image_dir / name)
            if self.featurizer.kind == "precomputed" and tokens.features is None:
                where = self.source.tokens_file
                raise BadItem(f"{where}: the line of {name} has no features (--featurizer precomputed)")
            graph = tokens_to_graph(image, tokens, self.featurizer, self.max_relations)
        if self.pixels:
            graph["image"].pixels = square_pixels(image, self.pixels)
        graph.captions = self.captions[name]
        return graph, name
