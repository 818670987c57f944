"""The default featurizer: pixels only, no weights.

An object token is its masked crop resized to CROP_SIZE x CROP_SIZE plus the
mask's own shape at that size; the global token is the image downsampled to
IMAGE_GRID x IMAGE_GRID. Relation features (predicate and relative geometry)
are made in graphs.build, since they need the triplets.
"""

from __future__ import annotations

import numpy as np
import torch

from graphs.masks import Masks
from graphs.schema import CROP_SIZE, IMAGE_GRID


def image_to_float(image: np.ndarray) -> np.ndarray:
    """HWC uint8 (or float in 0..1) RGB array -> HWC float32 in 0..1."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB image of shape [H, W, 3], got {image.shape}")
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    return image.astype(np.float32, copy=False)


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """HWC RGB array -> CHW float tensor in 0..1 (for models)."""
    return torch.from_numpy(np.ascontiguousarray(image_to_float(image).transpose(2, 0, 1)))


def area_pool(array: np.ndarray, size: int) -> np.ndarray:
    """Average an [H, W, C] array over a size x size grid of near-equal cells -> [size, size, C].

    Cell edges are floor(k * H / size); a side shorter than `size` repeats its
    pixels, so every cell is non-empty (the same as area interpolation then).
    """
    height, width = array.shape[:2]
    if height < size or width < size:
        rows = np.repeat(np.arange(height), -(-size // height))
        cols = np.repeat(np.arange(width), -(-size // width))
        array = array[rows][:, cols]
        height, width = array.shape[:2]
    row_edges = (np.arange(size) * height) // size
    col_edges = (np.arange(size) * width) // size
    rows_summed = np.add.reduceat(array, row_edges, axis=0, dtype=np.float32)
    sums = np.add.reduceat(rows_summed, col_edges, axis=1)
    rows = np.diff(np.append(row_edges, height))[:, None, None]
    cols = np.diff(np.append(col_edges, width))[None, :, None]
    return sums / (rows * cols)


def object_features(image: np.ndarray, masks: Masks) -> torch.Tensor:
    """Masked crops and mask shapes of n objects -> [n, 4 * CROP_SIZE**2].

    `image` is [H, W, 3] uint8 or float in 0..1; `masks` has no empty mask.
    Layout per object: the 3 colour planes of the masked crop, then the mask.
    Only the crops are converted to float, never the whole image.
    """
    scale = 1 / 255 if image.dtype == np.uint8 else 1.0
    features = np.zeros((len(masks), 4, CROP_SIZE, CROP_SIZE), dtype=np.float32)
    for k, (r0, r1, c0, c1) in enumerate(masks.bounds):
        mask = masks.crops[k][:, :, None].astype(np.float32)
        crop = np.concatenate([image[r0:r1, c0:c1] * (mask * scale), mask], axis=2)  # [h, w, 4]
        features[k] = area_pool(crop, CROP_SIZE).transpose(2, 0, 1)
    return torch.from_numpy(features.reshape(len(masks), -1))


def image_features(image: np.ndarray) -> torch.Tensor:
    """The whole image downsampled, [1, 3 * IMAGE_GRID**2] (colour planes first)."""
    pooled = area_pool(image, IMAGE_GRID).transpose(2, 0, 1) / (255 if image.dtype == np.uint8 else 1)
    return torch.from_numpy(np.ascontiguousarray(pooled, dtype=np.float32).reshape(1, -1))
