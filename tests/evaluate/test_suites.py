import json

import numpy as np
import pytest
import torch

from data.negatives import statement_holds
from data.synthetic import make_scene
from evaluate.compositional import main as compositional_main
from evaluate.compositional import score
from evaluate.suites import (
    attribute_swap,
    order_perturbations,
    read_suite,
    relation_swap,
    render_layout,
    winoground_synthetic,
    word_order,
    write_suite,
)
from graphs.schema import PREDICATES


def facts(scene):
    """Every relation that holds in a scene, told from both sides, as caption fragments."""
    from data.synthetic import describe_triplet

    return {describe_triplet(scene, t, reverse=r) for t in scene.triplets for r in (False, True)}


def scene_of(ref):
    spec = ref["synthetic"]
    return make_scene(spec["seed"], spec["split"], spec["index"])


def test_relation_swap_negatives_are_false_and_positives_true():
    items = relation_swap(60)
    assert len(items) == 60 and {i["subset"] for i in items} <= set(PREDICATES)
    for item in items:
        scene = scene_of(item["image"])
        true, false = item["captions"]
        assert true != false and true in facts(scene) and false not in facts(scene)


def test_attribute_swap_negatives_describe_no_object_pair_of_the_scene():
    items = attribute_swap(60)
    assert len(items) == 60
    for item in items:
        scene = scene_of(item["image"])
        described = {(o.colour, o.shape) for o in scene.objects} | {(o.size, o.shape) for o in scene.objects}
        true, false = item["captions"]
        for caption, expect in ((true, True), (false, False)):
            words = caption.replace(" and ", " ").split()
            pairs = [(words[k + 1], words[k + 2]) for k in range(0, len(words), 3)]
            assert all(p in described for p in pairs) == expect, caption


def test_word_order_perturbations_keep_the_words_and_change_the_order():
    rng = np.random.default_rng(0)
    caption = "a small red circle to the left of a large blue square"
    perturbed = order_perturbations(caption, rng)
    assert len(perturbed) == 4 and caption not in perturbed and len(set(perturbed)) == 4
    assert all(sorted(p.split()) == sorted(caption.split()) for p in perturbed)
    assert all(len(i["captions"]) == 5 and i["answer"] == 0 for i in word_order(20))


def test_winoground_pairs_have_the_relation_they_claim():
    for item in winoground_synthetic(30):
        for ref, caption in zip(item["images"], item["captions"], strict=True):
            scene = render_layout(ref["layout"])
            assert len(scene.objects) == 2
            assert caption in facts(scene) and statement_holds(scene, caption)
            other = item["captions"][1 - item["captions"].index(caption)]
            assert not statement_holds(scene, other)
        assert sorted(item["captions"][0].split()) == sorted(item["captions"][1].split())
    subsets = {item["subset"] for item in winoground_synthetic(30)}
    assert subsets == {"left of", "above", "points at"}


def test_arrow_pairs_are_one_picture_with_the_arrow_turned():
    items = [item for item in winoground_synthetic(30) if item["subset"] == "points at"]
    assert items
    for item in items:
        first, second = (ref["layout"] for ref in item["images"])
        assert first["objects"] == second["objects"] and first["arrows"] == [list(reversed(second["arrows"][0]))]


def test_scoring_counts_ties_as_wrong_and_matches_hand_computed_scores():
    e = torch.eye(3)
    images = {json.dumps({"file": "a"}, sort_keys=True): e[0], json.dumps({"file": "b"}, sort_keys=True): e[1]}
    texts = {"right": e[0], "wrong": e[1], "tie": e[0], "other": e[2]}
    items = [
        {"subset": "x", "image": {"file": "a"}, "captions": ["right", "wrong"], "answer": 0},
        {"subset": "x", "image": {"file": "a"}, "captions": ["right", "tie"], "answer": 0},
        {"subset": "y", "image": {"file": "b"}, "captions": ["right", "wrong", "other"], "answer": 1},
        {"subset": "p", "images": [{"file": "a"}, {"file": "b"}], "captions": ["right", "wrong"]},
        {"subset": "p", "images": [{"file": "a"}, {"file": "b"}], "captions": ["wrong", "right"]},
    ]
    result = score(items, images, texts)
    assert result["subsets"]["x"] == {"acc": 0.5, "n": 2} and result["subsets"]["y"]["acc"] == 1.0
    assert result["acc"] == pytest.approx(2 / 3) and result["macro_acc"] == pytest.approx(0.75)
    assert (result["text"], result["image"], result["group"]) == (0.5, 0.5, 0.5)


def test_suite_files_round_trip_and_bad_lines_name_the_line(tmp_path):
    items = relation_swap(5)
    write_suite(items, tmp_path / "s.jsonl")
    assert read_suite(tmp_path / "s.jsonl") == items
    (tmp_path / "bad.jsonl").write_text(json.dumps(items[0]) + "\n" + json.dumps({**items[1], "answer": 7}) + "\n")
    with pytest.raises(ValueError, match="bad.jsonl:2: 'answer' must index the captions"):
        read_suite(tmp_path / "bad.jsonl")


def test_compositional_cli_on_a_trained_checkpoint_and_a_suite_file(tmp_path, capsys):
    from helpers import train_tiny

    train_tiny(tmp_path, tmp_path / "run", "--drop-edge-types", "near")
    suite = tmp_path / "mine.jsonl"
    compositional_main(["--suite", "winoground-synthetic", "--count", "6", "--write-suite", str(suite)])
    checkpoint = str(tmp_path / "run" / "checkpoints" / "latest.pt")
    results = compositional_main(
        ["--checkpoint", checkpoint, "--suite", "relation-swap", "--count", "10", "--suite", str(suite)]
    )
    assert results[0]["items"] == 10 and 0 <= results[0]["acc"] <= 1
    assert results[1]["items"] == 6 and 0 <= results[1]["group"] <= results[1]["text"]
    assert "relation-swap: 10 items" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="unknown suite 'nonsense'"):
        compositional_main(["--checkpoint", checkpoint, "--suite", "nonsense"])
