"""Object tokens are named in the picture of `python -m tools.inspect_graph` (their category, colour and shape)."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
from helpers import square_masks, write_coco

from data.coco import CocoBuilder
from data.synthetic import SHAPES, make_scene
from graphs import build_graph
from graphs.describe import object_names
from graphs.draw import draw_graph
from tools.inspect_graph import build_parser, synthetic_colours


def drawn_texts(image, graph, labels):
    fig, ax = plt.subplots()
    draw_graph(image, graph, ax=ax, object_labels=labels, show_legend=False)
    texts = [t.get_text() for t in ax.texts]
    plt.close(fig)
    return texts


def test_coco_objects_are_named_by_their_category_in_the_picture(tmp_path):
    write_coco(tmp_path)
    builder = CocoBuilder(tmp_path, "val2017")
    graph, _ = builder.build(0)
    names = object_names(graph, builder.category_names)
    assert names == ["box", "cat"]  # largest first: the RLE rectangle (category 2), then the square
    image, _ = builder.image_and_masks(0)
    texts = drawn_texts(image, graph, names)
    assert texts.count("box") == 1 and texts.count("cat") == 1 and "left of" in texts


def test_synthetic_objects_carry_colour_and_shape_and_segments_nothing():
    scene = make_scene(0, "train", 3)
    graph = build_graph(scene.image, scene.masks, scene.labels, scene.triplets)
    args = build_parser().parse_args(["--index", "3"])
    names = object_names(graph, SHAPES, synthetic_colours(args, len(scene.objects)))
    assert names == [f"{obj.colour} {obj.shape}" for obj in scene.objects]
    unlabeled = build_graph(np.zeros((32, 32, 3), np.uint8), square_masks(32, [(2, 2, 8), (20, 20, 8)]))
    assert object_names(unlabeled, SHAPES) == [None, None]
    assert [t for t in drawn_texts(np.zeros((32, 32, 3), np.uint8), unlabeled, [None, None]) if t] == [
        t for t in drawn_texts(np.zeros((32, 32, 3), np.uint8), unlabeled, None) if t
    ]


def test_ids_without_names_are_shown_bare_and_a_wrong_count_is_refused():
    graph = build_graph(np.zeros((32, 32, 3), np.uint8), square_masks(32, [(2, 2, 8), (20, 20, 8)]), [18, 3])
    assert object_names(graph, {3: "car"}) == ["18", "car"]
    with pytest.raises(ValueError, match="1 object labels for 2 object tokens"):
        drawn_texts(np.zeros((32, 32, 3), np.uint8), graph, ["car"])
