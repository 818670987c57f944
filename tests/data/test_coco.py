import json

import numpy as np
import pytest
from helpers import write_coco

from data.cache import BadItem
from data.coco import CocoBuilder
from graphs import EDGE_TYPES, NODE_TYPES, PREDICATES, check_graph
from graphs.schema import OBJECT, RELATION, relation_names


@pytest.fixture
def coco_root(tmp_path):
    write_coco(tmp_path)
    return tmp_path


def test_instances_become_objects_and_crowd_is_left_out(coco_root):
    builder = CocoBuilder(coco_root, "val2017")
    assert len(builder) == 3
    assert builder.problems == {"crowd": 1, "degenerate": 1}
    graph, name = builder.build(0)
    check_graph(graph)
    assert name == "000000000001.jpg"
    assert tuple(graph.node_types) == NODE_TYPES and tuple(graph.edge_types) == EDGE_TYPES
    # largest first: the RLE rectangle (cat 2) then the polygon square (cat 1)
    assert graph[OBJECT].label.tolist() == [2, 1]
    np.testing.assert_allclose(graph[OBJECT].area.numpy() * 48 * 64, [400, 121], atol=25)
    np.testing.assert_allclose(graph[OBJECT].box[0].numpy(), [50 / 64, 30 / 48, 20 / 64, 20 / 48], atol=1e-6)
    assert graph[RELATION].num_nodes == 1
    # the rectangle is right of the square, told the canonical way: square left of rectangle
    assert PREDICATES[int(graph[RELATION].predicate[0])] == "left of"
    assert graph["object", "subject_of", "relation"].edge_index.tolist() == [[1], [0]]
    assert graph.captions == [f"image 1 caption {k}" for k in range(5)]


def test_an_image_without_annotations_has_only_its_global_node(coco_root):
    graph, _ = CocoBuilder(coco_root, "val2017").build(1)
    assert graph[OBJECT].num_nodes == 0 and graph[RELATION].num_nodes == 0 and graph["image"].num_nodes == 1
    assert all(graph[et].edge_index.shape == (2, 0) for et in EDGE_TYPES)


def test_caps_on_objects_and_relations(coco_root):
    graph, _ = CocoBuilder(coco_root, "val2017", max_objects=1).build(0)
    assert graph[OBJECT].num_nodes == 1 and graph[RELATION].num_nodes == 0


@pytest.mark.parametrize(
    "annotation, message",
    [
        (
            {"id": 77, "image_id": 9, "category_id": 1, "segmentation": [[1, 1, 5, 1, 5, 5]]},
            "annotation 77 names unknown image 9",
        ),
        (
            {"id": 78, "image_id": 1, "category_id": 42, "segmentation": [[1, 1, 5, 1, 5, 5]]},
            "annotation 78 names unknown category 42",
        ),
    ],
)
def test_broken_references_are_errors_or_counted_skips(tmp_path, annotation, message):
    write_coco(tmp_path, extra_annotations=[annotation])
    with pytest.raises(ValueError, match=f"instances_val2017.json: {message}"):
        CocoBuilder(tmp_path, "val2017")
    builder = CocoBuilder(tmp_path, "val2017", on_bad="skip")
    assert builder.problems["bad reference"] == 1


def test_corrupt_and_missing_images_name_the_file(tmp_path):
    names = write_coco(tmp_path, corrupt=(3,))
    builder = CocoBuilder(tmp_path, "val2017")
    with pytest.raises(BadItem, match=f"{names[3]} cannot be decoded"):
        builder.build(2)
    (tmp_path / "val2017" / names[1]).unlink()
    with pytest.raises(BadItem, match=f"{names[1]} does not exist"):
        builder.build(0)


def test_missing_annotation_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="instances_train2017.json does not exist"):
        CocoBuilder(tmp_path, "train2017")


def test_karpathy_split_selects_images_and_sentences(coco_root):
    karpathy = {
        "images": [
            {"cocoid": 1, "split": "test", "sentences": [{"raw": f"k{k}"} for k in range(5)]},
            {"cocoid": 3, "split": "restval", "sentences": [{"raw": "r"}]},
            {"cocoid": 999, "split": "test", "sentences": [{"raw": "absent"}]},
        ]
    }
    path = coco_root / "dataset_coco.json"
    path.write_text(json.dumps(karpathy))
    test = CocoBuilder(coco_root, "val2017", karpathy=path, karpathy_split="test")
    assert test.image_ids == [1] and test.build(0)[0].captions == ["k0", "k1", "k2", "k3", "k4"]
    assert CocoBuilder(coco_root, "val2017", karpathy=path, karpathy_split="train").image_ids == [3]


def test_visual_genome_relations_are_matched_by_box(coco_root):
    vg = coco_root / "vg"
    vg.mkdir()
    (vg / "image_data.json").write_text(json.dumps([{"image_id": 501, "coco_id": 1, "width": 128, "height": 96}]))
    square = {"x": 10, "y": 30, "w": 20, "h": 20}  # the polygon square at twice the size
    rect = {"x": 80, "y": 40, "w": 40, "h": 40}
    far = {"x": 0, "y": 0, "w": 4, "h": 4}
    relationships = [
        {
            "image_id": 501,
            "relationships": [
                {"predicate": "Holding", "subject": rect, "object": square},
                {"predicate": "zorbing", "subject": square, "object": rect},
                {"predicate": "on", "subject": far, "object": rect},
            ],
        }
    ]
    (vg / "relationships.json").write_text(json.dumps(relationships))
    graph, _ = CocoBuilder(coco_root, "val2017", relations="vg", vg_dir=vg).build(0)
    triplets = {
        (s, PREDICATES[p], o)
        for s, p, o in zip(
            graph["object", "subject_of", "relation"].edge_index[0].tolist(),
            graph[RELATION].predicate.tolist(),
            graph["relation", "has_object", "object"].edge_index[1].tolist(),
            strict=True,
        )
    }
    assert triplets == {(0, "holding", 1), (1, "other", 0)}
    # open vocabulary: the name outside the vocabulary is kept beside its "other" one-hot
    assert graph.open_predicates == ["zorbing"]
    names = dict(
        zip(graph["relation", "has_object", "object"].edge_index[1].tolist(), relation_names(graph), strict=True)
    )
    assert names == {1: "holding", 0: "zorbing"}


def test_windowed_polygon_rasterisation_equals_the_whole_image_mask():
    from pycocotools import mask as mask_utils

    from data.coco import rasterise

    rng = np.random.default_rng(0)
    height, width = 60, 80
    for _ in range(50):
        polygons = [
            rng.uniform([-5, -5], [width + 5, height + 5], size=(int(rng.integers(3, 9)), 2)).ravel().tolist()
            for _ in range(int(rng.integers(1, 3)))
        ]
        whole = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))).astype(bool)
        row, col, crop = rasterise({"segmentation": polygons}, height, width)
        placed = np.zeros((height, width), dtype=bool)
        placed[row : row + crop.shape[0], col : col + crop.shape[1]] = crop
        assert np.array_equal(placed, whole)


def test_zero_area_polygons_are_counted_and_named(tmp_path, caplog):
    """A polygon of 3+ points on one line has no area: left out, counted and named like any degenerate one."""
    import logging

    flat = {
        "id": 55,
        "image_id": 3,
        "category_id": 1,
        "iscrowd": 0,
        "area": 0.0,
        "bbox": [2, 2, 8, 0],
        "segmentation": [[2, 2, 6, 2, 10, 2]],
    }
    write_coco(tmp_path, extra_annotations=[flat])
    with caplog.at_level(logging.INFO, logger="semgraph"):
        builder = CocoBuilder(tmp_path, "val2017")
    assert builder.problems == {"crowd": 1, "degenerate": 2}
    assert "2 degenerate (annotation 13, 55)" in caplog.text and "1 crowd (annotation 12)" in caplog.text
    graph, _ = builder.build(2)
    assert graph[OBJECT].num_nodes == 1  # image 3 keeps its triangle only


def test_captions_naming_unknown_images_are_counted_and_named(tmp_path, caplog):
    import logging

    write_coco(tmp_path)
    path = tmp_path / "annotations" / "captions_val2017.json"
    captions = json.loads(path.read_text())
    captions["annotations"] += [
        {"id": 901, "image_id": 42, "caption": "a lost caption"},
        {"id": 902, "image_id": 43, "caption": "another"},
    ]
    path.write_text(json.dumps(captions))
    with caplog.at_level(logging.INFO, logger="semgraph"):
        builder = CocoBuilder(tmp_path, "val2017")
    assert sum(builder.unknown_captions.values()) == 2
    assert "captions_val2017.json: captions left out: 2 naming an image not in instances_val2017.json" in caplog.text
    assert "901 (image 42), 902 (image 43)" in caplog.text
    assert 42 not in builder.captions and len(builder) == 3


def test_a_polygon_thinner_than_a_pixel_keeps_one_and_one_outside_the_image_is_counted(tmp_path, caplog):
    import logging

    def annotation(id_, polygon, area):
        return {"id": id_, "image_id": 3, "category_id": 1, "iscrowd": 0, "area": area, "segmentation": [polygon]}

    sliver = annotation(60, [40.2, 5.2, 40.8, 5.2, 40.2, 5.8], 0.18)  # covers no pixel centre
    away = annotation(61, [100, 100, 120, 100, 110, 120], 200.0)  # the image is 64 x 48
    write_coco(tmp_path, extra_annotations=[sliver, away])
    with caplog.at_level(logging.INFO, logger="semgraph"):
        builder = CocoBuilder(tmp_path, "val2017")
    assert builder.problems["outside the image"] == 1 and "1 outside the image (annotation 61)" in caplog.text
    graph, _ = builder.build(2)
    assert graph[OBJECT].num_nodes == 2  # the triangle and the sliver
    np.testing.assert_allclose(graph[OBJECT].area[1].item() * 48 * 64, 1.0)
    np.testing.assert_allclose(graph[OBJECT].box[1].numpy(), [40.5 / 64, 5.5 / 48, 1 / 64, 1 / 48], atol=1e-6)
