"""The default featurizer: pixels only, no weights.

An object token is its masked crop resized to CROP_SIZE x CROP_SIZE plus the
mask's own shape at that size; the global token is the image downsampled to
IMAGE_GRID x IMAGE_GRID. Relation features (predicate and relative geometry)
are made in graphs.build, since they need the triplets.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from graphs.masks import Masks
from graphs.schema import CROP_SIZE, IMAGE_GRID


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """HWC RGB array -> CHW float tensor in 0..1 (for models)."""
    return torch.from_numpy(np.ascontiguousarray(image_to_uint8(image).transpose(2, 0, 1))).float() / 255.0


def image_to_uint8(image: np.ndarray) -> np.ndarray:
    """HWC RGB uint8, converting a float image in 0..1."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB image of shape [H, W, 3], got {image.shape}")
    if image.dtype == np.uint8:
        return image
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


def box_resize(array: np.ndarray, size: int, reducing_gap: float | None = None) -> np.ndarray:
    """Area-average a uint8 [H, W] or [H, W, 3] array to size x size, as float32 in 0..1.

    Pillow's box filter weighs every source pixel by the area it covers in a
    target cell; it runs in C and is several times faster than numpy here.
    `reducing_gap` first shrinks by an integer factor (faster, nearly equal).
    """
    image = Image.fromarray(np.ascontiguousarray(array))
    resized = image.resize((size, size), Image.Resampling.BOX, reducing_gap=reducing_gap)
    return np.asarray(resized, dtype=np.float32) / 255.0


def crop_features(crop: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """[4, S, S]: the masked crop's colour planes, then the mask, S = CROP_SIZE.

    `crop` is uint8 [h, w, 3]; without a mask the whole crop counts (patches).
    """
    features = np.ones((4, CROP_SIZE, CROP_SIZE), dtype=np.float32)
    if mask is None:
        features[:3] = box_resize(crop, CROP_SIZE).transpose(2, 0, 1)
    else:
        as_bytes = mask.view(np.uint8)  # 0 or 1, no copy
        features[:3] = box_resize(crop * as_bytes[:, :, None], CROP_SIZE).transpose(2, 0, 1)
        features[3] = box_resize(as_bytes * np.uint8(255), CROP_SIZE)
    return features


def object_features(image: np.ndarray, masks: Masks) -> torch.Tensor:
    """Masked crops and mask shapes of n objects -> [n, 4 * CROP_SIZE**2].

    `image` is [H, W, 3] uint8; `masks` has no empty mask. Only the objects'
    boxes are read, never the whole image.
    """
    features = np.zeros((len(masks), 4, CROP_SIZE, CROP_SIZE), dtype=np.float32)
    for k, (r0, r1, c0, c1) in enumerate(masks.bounds):
        features[k] = crop_features(image[r0:r1, c0:c1], masks.crops[k])
    return torch.from_numpy(features.reshape(len(masks), -1))


def image_features(image: np.ndarray) -> torch.Tensor:
    """The whole uint8 image downsampled, [1, 3 * IMAGE_GRID**2] (colour planes first)."""
    pooled = box_resize(image, IMAGE_GRID, reducing_gap=2.0).transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(pooled).reshape(1, -1))


def square_pixels(image: np.ndarray, size: int) -> torch.Tensor:
    """The image for a pixel model: shorter side resized to `size`, centre-cropped, [1, 3, size, size] uint8."""
    pil = Image.fromarray(image_to_uint8(image))
    scale = size / min(pil.size)
    width, height = max(size, round(pil.size[0] * scale)), max(size, round(pil.size[1] * scale))
    pil = pil.resize((width, height), Image.Resampling.BICUBIC)
    left, top = (width - size) // 2, (height - size) // 2
    square = np.asarray(pil.crop((left, top, left + size, top + size)))
    return torch.from_numpy(np.ascontiguousarray(square.transpose(2, 0, 1)))[None]
