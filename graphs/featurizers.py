"""Featurizers: what numbers an object token and the global token carry.

- ``pixels`` (default, no weights): graphs.features, masked crops and mask shapes.
- ``backbone``: any timm model (``timm:resnet18``) or open_clip visual tower
  (``open_clip:ViT-B-32``), mask-pooled over its feature map; weights come from
  a local file, and running without one warns loudly (random features).
- ``precomputed``: per-mask features given by the token source (tokens file).
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from graphs.features import image_to_tensor
from graphs.masks import Masks

FEATURIZERS = ("pixels", "backbone", "precomputed")
LOG = logging.getLogger("semgraph")
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


def mask_cell_weights(masks: Masks, h: int, w: int) -> Tensor:
    """[n, h, w]: the share of each cell of an h x w grid that each mask covers, the
    numbers ``F.interpolate(dense, (h, w), mode="area")`` (adaptive average pooling:
    cell i spans rows floor(i H / h) to ceil((i + 1) H / h)) gives, computed from
    the masks' boxes alone, so a large image never holds n full-frame masks."""
    rows, cols = np.arange(h), np.arange(w)
    row_start, row_stop = rows * masks.height // h, -(-(rows + 1) * masks.height // h)
    col_start, col_stop = cols * masks.width // w, -(-(cols + 1) * masks.width // w)
    cell_area = np.outer(row_stop - row_start, col_stop - col_start)
    weights = np.zeros((len(masks), h, w), dtype=np.float64)
    for k, (r0, r1, c0, c1) in enumerate(masks.bounds):
        if r1 <= r0 or c1 <= c0:
            continue
        summed = np.zeros((r1 - r0 + 1, c1 - c0 + 1), dtype=np.int64)
        summed[1:, 1:] = masks.crops[k].cumsum(0).cumsum(1)
        top, bottom = np.clip(row_start - r0, 0, r1 - r0), np.clip(row_stop - r0, 0, r1 - r0)
        left, right = np.clip(col_start - c0, 0, c1 - c0), np.clip(col_stop - c0, 0, c1 - c0)
        inside = (
            summed[np.ix_(bottom, right)]
            - summed[np.ix_(top, right)]
            - summed[np.ix_(bottom, left)]
            + summed[np.ix_(top, left)]
        )
        weights[k] = inside / cell_area
    return torch.from_numpy(weights).float()


def mask_pool(feature_map: Tensor, masks: np.ndarray | Masks) -> Tensor:
    """Average a [C, h, w] feature map over each mask resized to h x w -> [n, C].

    A mask too small to cover a cell still gets the cell under its centre
    (area interpolation keeps fractional coverage as weights). `masks` is
    [n, H, W] bool or `Masks` (the same weights, from the boxes only).
    """
    channels, h, w = feature_map.shape
    if len(masks) == 0:
        return feature_map.new_zeros(0, channels)
    if isinstance(masks, Masks):
        weights = mask_cell_weights(masks, h, w)
    else:
        weights = F.interpolate(torch.from_numpy(masks).float()[:, None], size=(h, w), mode="area")[:, 0]
    weights = weights.flatten(1)
    weights = weights / weights.sum(1, keepdim=True).clamp(min=1e-8)
    return weights @ feature_map.flatten(1).T


class BackboneFeaturizer:
    """Mask-pooled features of a pretrained image model.

    Args:
        spec: ``timm:NAME`` or ``open_clip:NAME``.
        weights: local weights file (a state dict, or an open_clip checkpoint).
        image_size: the side the image is resized to before the model.
    """

    def __init__(self, spec: str, weights: str | Path | None = None, image_size: int = 224, device: str = "cpu"):
        library, _, name = spec.partition(":")
        if library not in ("timm", "open_clip") or not name:
            raise ValueError(f"backbone {spec!r} must be timm:NAME or open_clip:NAME")
        if weights is not None and not Path(weights).is_file():
            raise FileNotFoundError(f"backbone weights {weights} do not exist")
        if weights is None:
            warnings.warn(
                f"backbone {spec} has no --backbone-weights: its features are RANDOM; pass a local weights file",
                stacklevel=2,
            )
        self.library, self.name, self.image_size, self.device = library, name, image_size, device
        if library == "timm":
            import timm

            self.model = timm.create_model(name, pretrained=False, num_classes=0)
            if weights is not None:
                state = torch.load(weights, map_location="cpu", weights_only=True)
                self.model.load_state_dict(state.get("state_dict", state), strict=False)
        else:
            import open_clip

            clip = open_clip.create_model(name, pretrained=str(weights) if weights else None)
            self.model = clip.visual
            self.model.output_tokens = True
        self.model.eval().to(device)
        self.spec = spec

    @torch.no_grad()
    def feature_maps(self, images: list[np.ndarray]) -> list[Tensor]:
        """[C, h, w] features of each whole image, all of them in one forward pass (on `device`)."""
        if not images:
            return []
        pixels = torch.cat(
            [
                F.interpolate(image_to_tensor(image)[None], size=(self.image_size,) * 2, mode="bilinear")
                for image in images
            ]
        )
        pixels = ((pixels - MEAN) / STD).to(self.device)
        if self.library == "timm":
            out = self.model.forward_features(pixels)
            if out.dim() == 3:  # ViT-style tokens [B, prefix + h*w, C]
                out = out[:, getattr(self.model, "num_prefix_tokens", 1) :]
                side = int(out.size(1) ** 0.5)
                out = out.transpose(1, 2).reshape(len(images), -1, side, side)
        else:
            _, tokens = self.model(pixels)  # [B, h*w, C]
            side = int(tokens.size(1) ** 0.5)
            out = tokens.transpose(1, 2).reshape(len(images), -1, side, side)
        return list(out.float().cpu().unbind(0))

    def feature_map(self, image: np.ndarray) -> Tensor:
        """[C, h, w] features of the whole image."""
        return self.feature_maps([image])[0]

    def __call__(
        self, image: np.ndarray, masks: np.ndarray | Masks, feature_map: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """(object features [n, C], global feature [1, C]); `feature_map` when computed already."""
        feature_map = self.feature_map(image) if feature_map is None else feature_map
        return mask_pool(feature_map, masks), feature_map.mean(dim=(1, 2))[None]


def featurizer_device() -> str:
    """Where a backbone featurizer runs: $SEMGRAPH_FEATURIZER_DEVICE, else the GPU when there is one."""
    return os.environ.get("SEMGRAPH_FEATURIZER_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")


def image_digest(image: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(image).data, digest_size=16).hexdigest() + str(image.shape)


class Featurizer:
    """The featurizer a builder uses, created lazily so builders stay cheap to pickle.

    Args:
        kind: ``pixels``, ``backbone`` or ``precomputed``.
        backbone: ``timm:NAME`` or ``open_clip:NAME`` for ``backbone``.
        weights: local weights file for ``backbone``.
        batch_size: images per forward pass of the backbone when a builder hands it several at once
            (`prepare`); the model is made once per process, on `featurizer_device()`.
    """

    def __init__(
        self,
        kind: str = "pixels",
        backbone: str | None = None,
        weights: str | Path | None = None,
        batch_size: int = 16,
    ) -> None:
        if kind not in FEATURIZERS:
            raise ValueError(f"unknown featurizer {kind!r}; valid: {', '.join(FEATURIZERS)}")
        if kind == "backbone" and not backbone:
            raise ValueError("the backbone featurizer needs --backbone timm:NAME or open_clip:NAME")
        self.kind, self.backbone, self.weights, self.batch_size = kind, backbone, weights, batch_size
        self._model: BackboneFeaturizer | None = None
        self._prepared: dict[str, Tensor] = {}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_model": None, "_prepared": {}}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update({"batch_size": 16, "_prepared": {}, **state})

    @property
    def batches(self) -> bool:
        """Whether handing this featurizer several images at once (`prepare`) saves forward passes."""
        return self.kind == "backbone" and self.batch_size > 1

    def model(self) -> BackboneFeaturizer:
        if self._model is None:
            self._model = BackboneFeaturizer(self.backbone, self.weights, device=featurizer_device())
        return self._model

    def prepare(self, images: list[np.ndarray]) -> None:
        """Compute the feature maps of images about to be featurized, `batch_size` per forward pass;
        each is used (and dropped) by the call that featurizes that image."""
        for k in range(0, len(images), self.batch_size):
            group = images[k : k + self.batch_size]
            for image, feature_map in zip(group, self.model().feature_maps(group), strict=True):
                self._prepared[image_digest(image)] = feature_map

    def release(self) -> None:
        """Drop prepared feature maps no call used (items that turned out bad)."""
        self._prepared.clear()

    def fingerprint(self) -> dict:
        weights = Path(self.weights) if self.weights else None
        stamp = (
            [weights.name, weights.stat().st_size, weights.stat().st_mtime_ns]
            if weights and weights.is_file()
            else None
        )
        return {"kind": self.kind, "backbone": self.backbone, "weights": stamp}

    def __call__(self, image: np.ndarray, masks: np.ndarray | Masks, precomputed: np.ndarray | None = None):
        """(object features or None for pixels, image features or None for pixels)."""
        if self.kind == "pixels":
            return None, None
        if self.kind == "precomputed":
            if precomputed is None:
                raise ValueError("the precomputed featurizer needs per-mask features from the token source")
            return precomputed, None
        prepared = self._prepared.pop(image_digest(image), None) if self._prepared else None
        return self.model()(image, masks, prepared)
