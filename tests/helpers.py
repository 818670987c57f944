"""Small builders shared by the tests."""

import numpy as np


def square_masks(canvas: int, squares: list[tuple[int, int, int]]) -> np.ndarray:
    """Boolean masks of axis-aligned squares given as (x0, y0, side) in pixels."""
    masks = np.zeros((len(squares), canvas, canvas), dtype=bool)
    for k, (x0, y0, side) in enumerate(squares):
        masks[k, y0 : y0 + side, x0 : x0 + side] = True
    return masks
