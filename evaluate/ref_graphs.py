"""The graph of a suite's image REF, built the way the checkpoint's run built its graphs.

An image named by file is tokenized by the run's token source and featurized
by the run's featurizer (pixels, a backbone with its weights, or a tokens
file's features), with the run's relation cap, graph type and dropped edge
types. A tokens file is looked up by the image's path relative to the suite's
root (a benchmark's folder, or the suite file's); a line named by a shorter
path (a basename) is used when no other image of the suite ends the same
way. A drawn synthetic image (`synthetic`, `layout`) keeps its exact
masks, shape labels and triplets, unless `synthetic_tokens` names a token
source (a segmenter, or Mask R-CNN): then its pixels are tokenized by it,
with geometric relations as for any image. A `box` crops the image the way
PIL's `Image.crop((x, y, x + w, y + h))` does, as ARO crops: corners
rounded, black outside the image; full-size masks from a tokens file are
cropped with the same box (False outside).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath

import numpy as np

from data.cache import BadItem
from data.coco import load_image
from data.datasets import graph_transform
from data.images import TokenSource, dense_masks, tokens_to_graph
from data.sources import DataOptions
from evaluate.benchmarks import crop_box
from evaluate.run_config import options_from_params
from evaluate.suites import render_layout, scene_of_ref
from graphs.build import build_graph, build_patch_graph
from graphs.features import square_pixels
from graphs.featurizers import Featurizer
from graphs.tokens import ImageTokens
from models import GraphCLIP


def crop_tokens(tokens: ImageTokens, box: Sequence[float]) -> ImageTokens:
    """Full-size tokens cropped with the image: masks cropped like `crop_box`; a mask left empty
    is dropped with its label, score, features and triplets."""
    masks = np.moveaxis(crop_box(np.moveaxis(dense_masks(tokens.masks), 0, -1), box), -1, 0)  # [n, h, w]
    keep = [k for k in range(len(masks)) if masks[k].any()]
    new_index = {old: new for new, old in enumerate(keep)}
    triplets = None
    if tokens.triplets is not None:
        triplets = [(new_index[s], p, new_index[o]) for s, p, o in tokens.triplets if s in new_index and o in new_index]
    return ImageTokens(
        masks=masks[keep],
        labels=None if tokens.labels is None else [tokens.labels[k] for k in keep],
        scores=None if tokens.scores is None else [tokens.scores[k] for k in keep],
        features=None if tokens.features is None else tokens.features[keep],
        triplets=triplets,
    )


def path_key(path: str) -> str:
    return "/".join(PurePosixPath(path.replace("\\", "/")).parts)


class TokensByPath:
    """The lines of a tokens file, found by an image's path relative to the suite's root.

    The whole relative path wins; else the longest ending of it that names a line (down to the
    basename), refused when another image of the suite ends the same way.
    """

    def __init__(self, tokens: Mapping[str, ImageTokens], source: str, root: Path, names: Iterable[str] = ()) -> None:
        self.tokens = tokens
        self.lines = {path_key(name): name for name in tokens}  # key -> the name the file gives
        self.source, self.root, self.names = source, root, set(names)

    def __call__(self, name: str) -> ImageTokens:
        return self.tokens[self.line_name(name)]

    def line_name(self, name: str) -> str:
        """The name of the file's line for the suite image `name` (a path relative to the root)."""
        parts = PurePosixPath(name).parts
        for start in range(len(parts)):
            key = "/".join(parts[start:])
            if key not in self.lines:
                continue
            sharing = sorted(n for n in self.names if n != name and (n == key or n.endswith("/" + key)))
            if start and sharing:
                raise BadItem(
                    f"{self.source}: the line for {key} fits {name} and {', '.join(sharing)}; name the images "
                    f"by their path relative to {self.root}"
                )
            return self.lines[key]
        raise BadItem(f"{self.source}: no line for image {name} (looked up by its path relative to {self.root})")


class RefGraphs:
    """Builds the graph of an image REF as the checkpoint's model expects it.

    Args:
        model: the checkpoint's model (a pixel model also gets the image's pixels).
        settings: the run's data settings (`DataOptions`, or the run's params).
        root: what a relative `file` is relative to.
        key_root: what tokens-file names are relative to (default: `root`).
        files: every `file` of the suite, to find names that a tokens-file line would fit twice.
        synthetic_tokens: ``exact`` (drawn images keep their exact masks and triplets), or the token
            source that tokenizes them (any but ``tokens``: a tokens file names image files).
    """

    def __init__(
        self,
        model: GraphCLIP,
        settings: DataOptions | dict,
        root: Path,
        key_root: Path | None = None,
        files: Iterable[str] = (),
        synthetic_tokens: str = "exact",
    ) -> None:
        if synthetic_tokens == "tokens":
            raise ValueError(
                "a tokens file names image files, and the synthetic suites' images are drawn: write them as "
                "files with bench/export_suite_images.py and score its suite.jsonl"
            )
        options = settings if isinstance(settings, DataOptions) else options_from_params(settings)
        self.synthetic_tokens = synthetic_tokens
        self._synthetic_source = None
        if synthetic_tokens != "exact":
            self._synthetic_source = TokenSource(synthetic_tokens, maskrcnn_weights=options.maskrcnn_weights)
        self.options, self.root, self.key_root = options, Path(root), Path(key_root or root)
        self.graph_type = options.graph_type
        self.transform = graph_transform(options.graph_type, options.drop_edge_types, options.edge_schema)
        self.pixels = model.config.vision_image_size if model.config.vision else 0
        if options.featurizer == "backbone" and not options.backbone_weights:
            raise ValueError(
                f"the run's backbone {options.backbone} had no --backbone-weights: the random features it trained "
                "on cannot be made again, so new images cannot be scored; train with a weights file"
            )
        self.featurizer = Featurizer(options.featurizer, options.backbone, options.backbone_weights)
        self.files = list(files)
        self._source: TokenSource | None = None
        self._tokens_by_path: TokensByPath | None = None
        if self.files and self.graph_type != "patch":
            self.source()  # a token source that cannot be made is the run's problem, not an item's

    def source(self) -> TokenSource:
        if self._source is None:
            options = self.options
            self._source = TokenSource(options.token_source, options.tokens_file, options.maskrcnn_weights)
            if self._source.tokens is not None:
                names = [self.key(self.path(name)) for name in self.files]
                self._tokens_by_path = TokensByPath(self._source.tokens, str(options.tokens_file), self.key_root, names)
        return self._source

    def path(self, file: str) -> Path:
        path = Path(file)
        return path if path.is_absolute() else self.root / path

    def key(self, path: Path) -> str:
        """The image's name in a tokens file: its path relative to the key root."""
        try:
            return path.resolve().relative_to(self.key_root.resolve()).as_posix()
        except ValueError:
            return path_key(str(path))

    def scene_graph(self, scene):
        if self._synthetic_source is not None:
            tokens = self._synthetic_source("drawn scene", scene.image)
            return tokens_to_graph(scene.image, tokens, self.featurizer, self.options.max_relations)
        object_x, image_x = self.featurizer(scene.image, scene.masks)
        return build_graph(scene.image, scene.masks, scene.labels, scene.triplets, object_x=object_x, image_x=image_x)

    def file_image(self, ref: dict):
        """(the image, cropped to its box, and a function making its tokens)."""
        path = self.path(ref["file"])
        full = load_image(path)
        image = crop_box(full, ref["box"]) if "box" in ref else full
        return image, lambda: self.file_tokens(path, full, image, ref.get("box"))

    def file_tokens(self, path: Path, full: np.ndarray, image: np.ndarray, box) -> ImageTokens:
        source = self.source()
        if self._tokens_by_path is None:  # a segmenter or Mask R-CNN sees the cropped image
            return source(path.name, image)
        # a tokens file's masks are full-size: the source checks them against the whole image (and
        # keeps the run's --max-objects largest), then they are cropped with the image
        tokens = source(self._tokens_by_path.line_name(self.key(path)), full, path)
        return crop_tokens(tokens, box) if box is not None else tokens

    def image_and_graph(self, ref: dict):
        if "synthetic" in ref:
            scene = scene_of_ref(ref["synthetic"])
            return scene.image, lambda: self.scene_graph(scene)
        if "layout" in ref:
            scene = render_layout(ref["layout"])
            return scene.image, lambda: self.scene_graph(scene)
        image, tokens = self.file_image(ref)
        return image, lambda: tokens_to_graph(image, tokens(), self.featurizer, self.options.max_relations)

    def __call__(self, ref: dict):
        image, make = self.image_and_graph(ref)
        graph = build_patch_graph(image) if self.graph_type == "patch" else make()
        if self.pixels:
            graph["image"].pixels = square_pixels(image, self.pixels)
        return self.transform(graph) if self.transform is not None else graph
