import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from segmenter_iou import arrow_pixels, background_counts, best_iou, format_rows, measure, segment  # noqa: E402

from data.synthetic import SceneObject, render_scene  # noqa: E402


def test_best_iou_matches_a_hand_count():
    target = np.zeros((1, 4, 4), bool)
    target[0, :2, :2] = True  # 4 pixels
    regions = np.zeros((2, 4, 4), bool)
    regions[0, :2, :3] = True  # 6 pixels, 4 shared: IoU 4 / 6
    regions[1, 3, :] = True  # none shared
    assert best_iou(target, regions) == pytest.approx([4 / 6])


def test_background_regions_and_the_border_are_counted_by_hand():
    target = np.zeros((1, 10, 10), bool)
    target[0, 4:7, 4:7] = True  # an object in the middle
    regions = np.zeros((4, 10, 10), bool)
    regions[0, 3:8, 3:8] = True  # 9 of 25 pixels in the object: background, off the border
    regions[1, 4:7, 4:7] = True  # the object itself
    regions[2, 0, :] = True  # the top row: 10 of the 36 border pixels
    regions[3, 9, 9] = True  # one corner: 1 of 36
    assert background_counts(target, regions) == {
        "background_regions": 3,
        "background_on_border": 2,
        "background_border_share": 1,
        "object_regions": 1,
        "object_on_border": 0,
        "object_border_share": 0,
    }


def test_a_clean_scene_is_cut_into_its_objects_and_its_arrow_is_where_it_was_drawn():
    objects = [
        SceneObject("square", "red", "large", (24.0, 48.0)),
        SceneObject("circle", "blue", "large", (72.0, 48.0)),
    ]
    scene = render_scene(objects, np.random.default_rng(0), noise=0.0, arrows=[(0, 1)])
    quickshift = segment(scene.image, "quickshift", {"kernel_size": 5, "max_dist": 10})
    assert (best_iou(scene.masks, quickshift) > 0.9).all()
    felzenszwalb = segment(scene.image, "felzenszwalb", {"scale": 200.0})
    assert (best_iou(scene.masks, felzenszwalb) > 0.5).all()  # found, though not whole
    arrow = arrow_pixels(scene, 96)
    grey = (scene.image == 150).all(axis=2)
    assert arrow.shape == (1, 96, 96) and np.array_equal(arrow[0], grey)


def test_the_table_has_a_row_per_setting():
    rows = measure("v4", 2)
    assert len(rows) == 13 and all(0 <= row["mean_best_iou"] <= 1 for row in rows)
    assert format_rows(rows).count("\n") == 14
    for row in rows:
        assert row["background_regions_per_image"] + row["object_regions_per_image"] == row["regions_per_image"]
        assert row["background_border_share_per_image"] <= row["background_on_border_per_image"]
