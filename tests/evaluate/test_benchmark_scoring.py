"""The benchmarks' scores on similarity scores the test chooses, against the originals' definitions
worked out by hand (ties included)."""

import json

import numpy as np
import pytest
import torch

from evaluate.report import ARO_RELATIONS_LEFT_OUT, format_benchmark, item_scores, score_benchmark


def choice(subset: str, answer: int, n_options: int = 2) -> dict:
    return {"subset": subset, "captions": [f"c{k}" for k in range(n_options)], "answer": answer}


def scored(name: str, items: list[dict], scores: list[list[float]]) -> dict:
    return score_benchmark(name, items, [np.array(s, dtype=np.float32) for s in scores])


def test_aro_ties_are_wrong_and_the_headline_leaves_the_notebooks_relations_out():
    assert {
        "near",
        "with",
        "next to",
        "on the side of",
    } <= ARO_RELATIONS_LEFT_OUT and "on" not in ARO_RELATIONS_LEFT_OUT
    # options [false, true], answer 1, as VG_Relation orders them
    items = [choice("on", 1), choice("on", 1), choice("eating", 1), choice("near", 1), choice("with", 1)]
    scores = [[0.2, 0.7], [0.5, 0.5], [0.1, 0.3], [0.9, 0.1], [0.3, 0.2]]
    result = scored("aro-relation", items, scores)
    # on: right, tie -> 1/2; eating: 1/1; near, with: 0/1 and left out of the headline
    assert result["subsets"]["on"] == {"acc": 0.5, "n": 2, "in_headline": True}
    assert result["subsets"]["near"]["in_headline"] is False
    assert result["macro_acc"] == pytest.approx((0.5 + 1.0) / 2)
    assert result["macro_acc_all_relations"] == pytest.approx((0.5 + 1.0 + 0 + 0) / 4)
    assert result["acc"] == pytest.approx(2 / 5)
    assert result["headline"] == {"name": "macro_acc", "value": result["macro_acc"]}


def test_aro_attribution_headline_keeps_pairs_of_25_items_or_more():
    items = [choice("white_black", 1) for _ in range(25)] + [choice("red_green", 1) for _ in range(3)]
    scores = [[0.1, 0.9]] * 20 + [[0.4, 0.4]] * 5 + [[0.1, 0.2]] * 3
    result = scored("aro-attribution", items, scores)
    assert result["macro_acc"] == pytest.approx(20 / 25)
    assert result["macro_acc_all_pairs"] == pytest.approx((20 / 25 + 1.0) / 2)
    assert result["subsets"]["red_green"]["in_headline"] is False


@pytest.mark.parametrize("name", ["coco-order", "flickr-order"])
def test_order_takes_the_first_maximum_so_a_tie_is_right(name):
    items = [choice(name, 0, 5) for _ in range(4)]
    scores = [
        [0.5, 0.5, 0.1, 0.1, 0.1],  # tie with a perturbation: argmax picks the caption -> right
        [0.5, 0.6, 0.1, 0.1, 0.1],  # a perturbation above: wrong
        [0.3, 0.3, 0.3, 0.3, 0.3],  # all equal: right
        [0.9, 0.1, 0.2, 0.3, 0.4],  # right
    ]
    result = scored(name, items, scores)
    assert result["acc"] == 0.75 and result["headline"]["value"] == 0.75


def test_sugarcrepe_needs_strictly_more_and_reports_each_subset():
    items = [choice("add_obj", 0), choice("add_obj", 0), choice("swap_att", 0), choice("swap_att", 0)]
    scores = [[0.6, 0.5], [0.5, 0.5], [0.2, 0.3], [0.7, 0.1]]
    result = scored("sugarcrepe", items, scores)
    assert result["subsets"] == {"add_obj": {"acc": 0.5, "n": 2}, "swap_att": {"acc": 0.5, "n": 2}}
    assert result["mean_of_subsets"] == 0.5


def winoground_item(collapsed: str, secondary: str, preds: int) -> dict:
    tags = {"tag": "", "secondary_tag": secondary, "num_main_preds": preds, "collapsed_tag": collapsed}
    return {"subset": collapsed, "captions": ["a", "b"], "images": [{}, {}], "tags": tags}


def test_winoground_text_image_group_and_tags():
    items = [
        winoground_item("Object", "", 1),
        winoground_item("Relation", "Symbolic", 1),
        winoground_item("Relation", "", 2),
        winoground_item("Both", "Symbolic", 2),
    ]
    scores = [
        [[0.9, 0.1], [0.2, 0.8]],  # s[caption][image]: text and image right -> group
        [[0.5, 0.4], [0.3, 0.6]],  # text: .5>.3, .6>.4 right; image: .5>.4, .6>.3 right -> group
        [[0.5, 0.6], [0.4, 0.7]],  # text: .5>.4 and .7>.6 right; image: .5>.6 wrong
        [[0.5, 0.5], [0.5, 0.5]],  # every tie fails
    ]
    result = score_benchmark("winoground", items, [np.array(s) for s in scores])
    assert (result["text"], result["image"], result["group"]) == (0.75, 0.5, 0.5)
    assert result["by_collapsed_tag"]["Relation"] == {"text": 1.0, "image": 0.5, "group": 0.5, "n": 2}
    assert result["by_num_main_preds"]["2"] == {"text": 0.5, "image": 0.0, "group": 0.0, "n": 2}
    assert set(result["by_secondary_tag"]) == {"Symbolic"}
    assert result["by_secondary_tag"]["Symbolic"] == {"text": 0.5, "image": 0.5, "group": 0.5, "n": 2}
    assert result["headline"] == {"name": "group", "value": 0.5}


def test_item_scores_are_cosines_in_the_items_option_order():
    images = {json.dumps({"file": "a"}): torch.tensor([1.0, 0.0]), json.dumps({"file": "b"}): torch.tensor([0.0, 1.0])}
    texts = {"x": torch.tensor([0.6, 0.8]), "y": torch.tensor([1.0, 0.0])}
    choice_item = {"image": {"file": "a"}, "captions": ["x", "y"], "answer": 1}
    pair = {"images": [{"file": "a"}, {"file": "b"}], "captions": ["x", "y"]}
    first, second = item_scores([choice_item, pair], images, texts)
    np.testing.assert_allclose(first, [0.6, 1.0])
    np.testing.assert_allclose(second, [[0.6, 0.8], [1.0, 0.0]])


def test_the_table_puts_the_headline_first():
    items = [choice("on", 1), choice("near", 1)]
    result = scored("aro-relation", items, [[0.1, 0.2], [0.3, 0.2]])
    lines = format_benchmark(result).splitlines()
    assert lines[0].startswith("aro-relation: 2 items; macro_acc 100.0%")
    assert lines[1].split() == ["macro_acc", "100.0%"]
    assert any("near" in line and "not in headline" in line for line in lines)


def test_an_unknown_benchmark_or_no_items_is_refused():
    with pytest.raises(ValueError, match="unknown benchmark"):
        score_benchmark("aro", [choice("on", 1)], [np.zeros(2)])
    with pytest.raises(ValueError, match="no items"):
        score_benchmark("aro-relation", [], [])


def test_a_headline_without_a_qualifying_subset_is_none_not_nan():
    result = scored("aro-attribution", [choice("white_black", 1)], [[0.1, 0.9]])
    assert result["macro_acc"] is None and result["macro_acc_all_pairs"] == 1.0
    assert "macro_acc" in format_benchmark(result) and "n/a" in format_benchmark(result).splitlines()[0]
