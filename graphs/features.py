"""The default featurizer: pixels only, no weights.

An object token is its masked crop resized to CROP_SIZE x CROP_SIZE plus the
mask's own shape at that size; the global token is the image downsampled to
IMAGE_GRID x IMAGE_GRID. Relation features (predicate and relative geometry)
are made in graphs.build, since they need the triplets.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from graphs.schema import CROP_SIZE, IMAGE_GRID


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """HWC uint8 (or float in 0..1) RGB array -> CHW float tensor in 0..1."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB image of shape [H, W, 3], got {image.shape}")
    image = np.ascontiguousarray(image) if image.flags.writeable else np.array(image)
    tensor = torch.from_numpy(image).permute(2, 0, 1)
    if tensor.dtype == torch.uint8:
        return tensor.float() / 255.0
    return tensor.float()


def object_features(image: torch.Tensor, masks: np.ndarray) -> torch.Tensor:
    """Masked crops and mask shapes of n objects -> [n, 4 * CROP_SIZE**2].

    `image` is CHW in 0..1; `masks` is [n, H, W] bool with no empty mask.
    """
    features = torch.zeros(len(masks), 4, CROP_SIZE, CROP_SIZE)
    mask_tensor = torch.from_numpy(masks)
    for k in range(len(masks)):
        rows = np.flatnonzero(masks[k].any(axis=1))
        cols = np.flatnonzero(masks[k].any(axis=0))
        r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        mask = mask_tensor[k, r0:r1, c0:c1].float()[None]  # [1, h, w]
        crop = torch.cat([image[:, r0:r1, c0:c1] * mask, mask])  # [4, h, w]
        features[k] = F.adaptive_avg_pool2d(crop, CROP_SIZE)
    return features.flatten(1)


def image_features(image: torch.Tensor) -> torch.Tensor:
    """The whole image downsampled, [1, 3 * IMAGE_GRID**2]."""
    return F.adaptive_avg_pool2d(image, IMAGE_GRID).reshape(1, -1)
