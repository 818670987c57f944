import numpy as np

from graphs.masks import Masks


def random_masks(seed=0, n=6, height=30, width=40):
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, height, width), dtype=bool)
    for k in range(n - 1):
        r, c = rng.integers(0, height - 5), rng.integers(0, width - 5)
        masks[k, r : r + rng.integers(2, 15), c : c + rng.integers(2, 15)] = True
        masks[k] &= rng.random((height, width)) < 0.8
    return masks  # the last one is empty


def test_dense_round_trip_and_tight_boxes():
    masks = random_masks()
    packed = Masks.from_dense(masks)
    assert np.array_equal(packed.dense(), masks)
    assert packed.empty().tolist() == [5]
    for k in range(5):
        rows, cols = np.nonzero(masks[k])
        assert packed.bounds[k].tolist() == [rows.min(), rows.max() + 1, cols.min(), cols.max() + 1]


def test_intersections_equal_a_dense_matrix_product():
    for seed in range(5):
        masks = random_masks(seed)
        flat = masks.reshape(len(masks), -1).astype(np.float32)
        assert np.array_equal(Masks.from_dense(masks).intersections(), flat @ flat.T)


def test_from_crops_clips_and_trims():
    crop = np.zeros((6, 6), dtype=bool)
    crop[2:4, 1:5] = True
    packed = Masks.from_crops(10, 10, [(-3, 7, crop), (0, 0, np.zeros((3, 3), bool))])
    dense = np.zeros((10, 10), dtype=bool)
    dense[0:1, 8:10] = True  # rows -1..0 and columns 8..11 of the placed crop, clipped
    assert np.array_equal(packed.dense()[0], dense)
    assert packed.bounds[0].tolist() == [0, 1, 8, 10] and packed.empty().tolist() == [1]
