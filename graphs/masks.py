"""Object masks stored as their pixel boxes and the mask inside each box.

A 640x480 image with ten objects holds 3 million mask pixels when stored
densely, of which the objects cover a small part; every computation of the
graph builder (areas, intersections, crops) only needs what lies inside the
boxes, so `Masks` keeps just that.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Masks:
    """n masks of an image of `height` x `width`.

    Attributes:
        bounds: [n, 4] int64 (r0, r1, c0, c1), rows r0..r1-1, columns c0..c1-1;
            the tight box of each mask (zeros for an empty mask).
        crops: n bool arrays, crop k of shape (r1 - r0, c1 - c0).
    """

    height: int
    width: int
    bounds: np.ndarray
    crops: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.crops)

    @classmethod
    def from_dense(cls, masks: np.ndarray) -> Masks:
        """From [n, H, W] bool masks."""
        n, height, width = masks.shape
        bounds = np.zeros((n, 4), dtype=np.int64)
        rows_any, cols_any = masks.any(axis=2), masks.any(axis=1)  # [n, H], [n, W]
        crops = []
        for k in range(n):
            rows, cols = np.flatnonzero(rows_any[k]), np.flatnonzero(cols_any[k])
            if rows.size:
                bounds[k] = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
            r0, r1, c0, c1 = bounds[k]
            crops.append(masks[k, r0:r1, c0:c1])
        return cls(height, width, bounds, crops)

    @classmethod
    def from_crops(cls, height: int, width: int, placed: list[tuple[int, int, np.ndarray]]) -> Masks:
        """From (row, column, crop) triples: each crop placed with its top-left corner there.

        Crops are clipped to the image and trimmed to their tight box.
        """
        bounds = np.zeros((len(placed), 4), dtype=np.int64)
        crops = []
        for k, (row, col, crop) in enumerate(placed):
            top, left = max(row, 0), max(col, 0)
            crop = crop[top - row : height - row, left - col : width - col].astype(bool, copy=False)
            rows, cols = np.flatnonzero(crop.any(axis=1)), np.flatnonzero(crop.any(axis=0))
            if rows.size:
                crop = crop[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
                bounds[k] = top + rows[0], top + rows[-1] + 1, left + cols[0], left + cols[-1] + 1
            else:
                crop = np.zeros((0, 0), dtype=bool)
            crops.append(crop)
        return cls(height, width, bounds, crops)

    def dense(self) -> np.ndarray:
        """[n, H, W] bool."""
        out = np.zeros((len(self), self.height, self.width), dtype=bool)
        for k, (r0, r1, c0, c1) in enumerate(self.bounds):
            out[k, r0:r1, c0:c1] = self.crops[k]
        return out

    def areas(self) -> np.ndarray:
        """Pixels of each mask, [n]."""
        return np.array([np.count_nonzero(crop) for crop in self.crops], dtype=np.float32)

    def empty(self) -> np.ndarray:
        """Indices of the empty masks."""
        return np.flatnonzero(self.areas() == 0)

    def select(self, keep: list[int] | np.ndarray) -> Masks:
        return Masks(self.height, self.width, self.bounds[keep], [self.crops[k] for k in keep])

    def intersections(self) -> np.ndarray:
        """Pixel counts of pairwise intersections, [n, n] (areas on the diagonal).

        Only pairs whose boxes overlap are counted, inside the overlap window.
        """
        n = len(self)
        counts = np.zeros((n, n), dtype=np.float32)
        counts[np.arange(n), np.arange(n)] = self.areas()
        for i in range(n):
            r0, r1, c0, c1 = self.bounds[i]
            for j in range(i + 1, n):
                q0, q1, d0, d1 = self.bounds[j]
                top, bottom, left, right = max(r0, q0), min(r1, q1), max(c0, d0), min(c1, d1)
                if top < bottom and left < right:
                    a = self.crops[i][top - r0 : bottom - r0, left - c0 : right - c0]
                    b = self.crops[j][top - q0 : bottom - q0, left - d0 : right - d0]
                    counts[i, j] = counts[j, i] = np.count_nonzero(a & b)
        return counts
