import json
from collections import Counter

import numpy as np
import pytest

from data.negatives import held_out_in_text, statement_holds
from data.synthetic import describe_triplet
from evaluate.intervals import add_intervals, format_intervals, headline_macro, wilson
from evaluate.suites import render_layout, scene_of_ref, synthetic_suite, world_of
from evaluate.suites_v4 import HEADLINE_PREDICATES, OFF_AXIS


def facts(scene):
    return {describe_triplet(scene, t, reverse=r) for t in scene.triplets for r in (False, True)}


def test_v4_relation_swap_has_50_items_for_every_predicate_each_true_and_its_swap_false():
    items = synthetic_suite("relation-swap", 250, world="v4")
    assert Counter(item["subset"] for item in items) == {name: 50 for name in HEADLINE_PREDICATES}
    for item in items[::5]:
        assert item["image"]["synthetic"]["world"] == "v4"
        scene = scene_of_ref(item["image"]["synthetic"])
        true, false = item["captions"]
        assert true in facts(scene) and false not in facts(scene)


@pytest.fixture(scope="module")
def pairs():
    return synthetic_suite("winoground-synthetic", 40, world="v4")


def test_v4_pairs_hold_2_to_5_objects_their_captions_and_only_the_pair_moves(pairs):
    counts = Counter(item["subset"] for item in pairs)
    assert set(counts) == {"2 objects", "3 objects", "4 objects", "5 objects"}
    assert {item["predicate"] for item in pairs} == {"left of", "above", "points at"}
    for item in pairs:
        scenes = [render_layout(ref["layout"]) for ref in item["images"]]
        for k, scene in enumerate(scenes):
            assert f"{len(scene.objects)} objects" == item["subset"]
            assert statement_holds(scene, item["captions"][k]) and not statement_holds(scene, item["captions"][1 - k])
        first, second = (ref["layout"]["objects"] for ref in item["images"])
        assert first[2:] == second[2:]  # the others stay put
        if item["predicate"] == "points at":
            assert first == second and item["images"][0]["layout"]["arrows"] == [[0, 1]]
        else:
            assert [o["centre"] for o in first[:2]] == [o["centre"] for o in second[:2]]
            assert (first[0]["shape"], first[0]["colour"]) == (second[1]["shape"], second[1]["colour"])


def test_v4_pairs_lie_off_the_axis_by_up_to_20_degrees(pairs):
    angles = []
    for item in pairs:
        (x0, y0), (x1, y1) = (o["centre"] for o in item["images"][0]["layout"]["objects"][:2])
        angle = np.degrees(np.arctan2(y1 - y0, x1 - x0)) % 90
        angles.append(min(angle, 90 - angle))
    assert max(angles) <= OFF_AXIS + 1e-6 and max(angles) > 10


def test_heldout_suites_ask_only_about_held_out_combinations():
    for item in synthetic_suite("heldout-relation-swap", 30, world="v4"):
        assert held_out_in_text(item["captions"][item["answer"]]), item
    for item in synthetic_suite("heldout-winoground", 10, world="v4"):
        assert any(held_out_in_text(caption) for caption in item["captions"]), item
    with pytest.raises(ValueError, match="needs world v4"):
        synthetic_suite("heldout-winoground", 5)


def test_heldout_items_say_which_kind_of_combination_they_hold_out():
    from data.negatives import held_out_kinds

    # one caption of each kind, and one of both (it counts as an object's)
    assert held_out_kinds("a small green circle to the left of a large red cross") == {"object"}
    assert held_out_kinds("a small red circle above a large white cross") == {"relation"}
    assert held_out_kinds("a large white cross below a small red circle") == {"relation"}  # told the other way
    assert held_out_kinds("a large white cross above a small red circle") == set()
    assert held_out_kinds("a small green circle above a large white cross") == {"object", "relation"}
    items = synthetic_suite("heldout-relation-swap", 60, world="v4")
    kinds = Counter(item["held_out"] for item in items)
    assert set(kinds) == {"object", "relation"} and sum(kinds.values()) == len(items)
    for item in items:
        named = held_out_kinds(item["captions"][item["answer"]])
        assert item["held_out"] == ("object" if "object" in named else "relation") and named, item
    for item in synthetic_suite("heldout-winoground", 10, world="v4"):
        assert item["held_out"] in {"object", "relation"}


def test_held_out_items_are_scored_by_kind_as_well_as_by_predicate():
    import torch

    from evaluate.compositional import format_result, ref_key, score

    image = {"i0": torch.tensor([1.0, 0.0]), "i1": torch.tensor([0.0, 1.0])}
    text = {"a": torch.tensor([1.0, 0.0]), "b": torch.tensor([0.0, 1.0])}
    images = {ref_key({"ref": k}): v for k, v in image.items()}
    # right, right, wrong: kinds object (1 of 2) and relation (1 of 1); predicates above (2 of 2), left of (0 of 1)
    items = [
        {"subset": "above", "held_out": "object", "image": {"ref": "i0"}, "captions": ["a", "b"], "answer": 0},
        {"subset": "above", "held_out": "relation", "image": {"ref": "i1"}, "captions": ["a", "b"], "answer": 1},
        {"subset": "left of", "held_out": "object", "image": {"ref": "i0"}, "captions": ["b", "a"], "answer": 0},
    ]
    result = score(items, images, text)
    assert result["subsets"]["above"]["acc"] == 1.0 and result["subsets"]["left of"]["acc"] == 0.0
    assert result["held_out_kinds"] == {"object": {"acc": 0.5, "n": 2}, "relation": {"acc": 1.0, "n": 1}}
    out = add_intervals(result)
    assert out["held_out_kinds"]["object"]["ci"] == pytest.approx(list(wilson(0.5, 2)))
    assert "held-out relation: 100.0%" in "\n".join(format_intervals(out))
    assert "held-out object" in format_result("heldout-relation-swap", out)
    pair = {
        "subset": "2 objects",
        "held_out": "relation",
        "images": [{"ref": "i0"}, {"ref": "i1"}],
        "captions": ["a", "b"],
    }
    mixed = score([*items, pair], images, text)  # a suite file may hold both kinds of item: each kept apart
    assert mixed["held_out_kinds"] == result["held_out_kinds"]
    assert mixed["pair_held_out"] == {"relation": {"text": 1.0, "image": 1.0, "group": 1.0, "n": 1}}
    plain = [{k: v for k, v in item.items() if k != "held_out"} for item in items]
    assert "held_out_kinds" not in score(plain, images, text)  # other suites: no breakdown


def test_a_held_out_run_is_asked_its_own_suites_in_the_held_out_world():
    options = world_of({"world": "v4", "held_out_combinations": True})
    assert options == {"world": "v4", "held_out": True}
    assert world_of({}) == {"world": "v3", "held_out": False}
    items = synthetic_suite("winoground-synthetic", 8, **options)
    for item in items:
        for ref in item["images"]:
            scene = render_layout(ref["layout"])
            assert not any(held_out_in_text(c) for c in scene.captions)
    ref = synthetic_suite("relation-swap", 5, **options)[0]["image"]["synthetic"]
    assert ref["held_out"] is True and ref["world"] == "v4"


def test_wilson_interval_matches_a_hand_computation():
    # p = 0.8, n = 50, z = 1.96: centre = (0.8 + 3.8416 / 100) / (1 + 3.8416 / 50) = 0.778598,
    # half = 1.96 * sqrt(0.0032 + 3.8416 / 10000) / 1.076832 = 0.108970
    low, high = wilson(0.8, 50)
    assert low == pytest.approx(0.669628, abs=2e-5) and high == pytest.approx(0.887568, abs=2e-5)
    assert wilson(0.0, 20)[0] == 0.0 and wilson(1.0, 20)[1] == 1.0


def test_the_headline_macro_uses_subsets_of_50_or_more_and_its_interval_matches_a_hand_computation():
    subsets = {"a": {"acc": 0.8, "n": 50}, "b": {"acc": 0.6, "n": 100}, "c": {"acc": 1.0, "n": 7}}
    macro = headline_macro(subsets)
    # mean of a and b; var = (0.8 * 0.2 / 50 + 0.6 * 0.4 / 100) / 4 = 0.0014, half = 1.96 * 0.0374166 = 0.073336
    assert macro["value"] == pytest.approx(0.7) and macro["subsets"] == ["a", "b"] and macro["left_out"] == {"c": 7}
    assert macro["ci"] == pytest.approx([0.626664, 0.773336], abs=1e-5)
    assert headline_macro({"c": {"acc": 1.0, "n": 7}})["value"] is None


def test_intervals_join_a_scored_result_and_its_printout():
    result = {
        "items": 57,
        "acc": 47 / 57,
        "macro_acc": 0.9,
        "subsets": {"left of": {"acc": 0.8, "n": 50}, "inside": {"acc": 1.0, "n": 7}},
    }
    out = add_intervals(result)
    assert out["headline_macro"]["value"] == pytest.approx(0.8) and out["macro_acc"] == 0.9
    assert out["subsets"]["left of"]["ci"] == pytest.approx(list(wilson(0.8, 50)))
    assert out["acc_ci"] == pytest.approx(list(wilson(47 / 57, 57)))
    assert out["headline"] == {"name": "headline_macro", "value": 0.8, "ci": out["headline_macro"]["ci"]}
    assert [v["in_headline"] for v in out["subsets"].values()] == [True, False]
    pairs = add_intervals(
        {
            "items": 4,
            "text": 0.5,
            "image": 0.5,
            "group": 0.25,
            "pair_subsets": {"2 objects": {"text": 0.5, "image": 0.5, "group": 0.25, "n": 4}},
        }
    )
    assert pairs["headline"]["name"] == "group" and pairs["group_ci"] == pytest.approx(list(wilson(0.25, 4)))
    text = "\n".join(format_intervals(out))
    assert "headline macro over subsets with >= 50 items (left of): 80.0% [" in text
    assert "left out of the macro: inside (7)" in text
    json.dumps(out)  # the results file takes it


def test_compositional_cli_writes_a_v4_suite(tmp_path, capsys):
    from evaluate.compositional import main as compositional_main

    path = tmp_path / "v4.jsonl"
    compositional_main(["--suite", "relation-swap", "--world", "v4", "--count", "10", "--write-suite", str(path)])
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 10 and all(item["image"]["synthetic"]["world"] == "v4" for item in lines)
    with pytest.raises(SystemExit, match="needs world v4"):
        compositional_main(["--suite", "heldout-relation-swap", "--count", "5", "--write-suite", str(path)])


@pytest.mark.slow
def test_a_v4_held_out_run_trains_and_is_scored_on_its_world(tmp_path, capsys):
    from helpers import train_tiny

    from evaluate.compositional import main as compositional_main

    flags = ("--world", "v4", "--held-out-combinations", "--hard-negatives", "relation", "--hard-negative-images")
    told = ("--twin-caption-share", "1", "--twin-caption-mode", "extra")  # extra texts through the training loop
    train_tiny(tmp_path, tmp_path / "run", *flags, *told)
    params = json.loads((tmp_path / "run" / "params.json").read_text())
    assert params["world"] == "v4" and params["held_out_combinations"] is True
    assert params["twin_caption_mode"] == "extra"
    checkpoint = str(tmp_path / "run" / "checkpoints" / "latest.pt")
    results = compositional_main(
        ["--checkpoint", checkpoint, "--count", "10", "--suite", "relation-swap", "--suite", "heldout-winoground"]
    )
    assert results[0]["world"] == {"world": "v4", "held_out": True}
    assert results[0]["headline_macro"]["left_out"] == {name: 2 for name in HEADLINE_PREDICATES}
    assert 0 <= results[1]["group_ci"][0] <= results[1]["group"] <= results[1]["group_ci"][1]
    assert "left out of the macro" in capsys.readouterr().out


def test_the_world_of_a_run_is_read_from_its_data_options_too():
    from data.sources import DataOptions

    assert world_of(DataOptions(world="v4", held_out_combinations=True)) == {"world": "v4", "held_out": True}
    assert world_of(DataOptions(world="v4", held_out_combinations=True), "v3") == {"world": "v3", "held_out": False}


def test_v4_pairs_are_scored_by_predicate_as_well_as_by_object_count():
    # world v4's pairs were split by object count only: arrow and spatial pairs could not be told apart
    import torch

    from evaluate.compositional import format_result, ref_key, score

    image = {f"i{k}": torch.tensor(v, dtype=torch.float) for k, v in enumerate([[1, 0], [0, 1], [1, 0], [0, 1]])}
    text = {"a": torch.tensor([1.0, 0.0]), "b": torch.tensor([0.0, 1.0]), "c": torch.tensor([0.0, 1.0])}
    refs = {k: {"ref": k} for k in image}
    images = {ref_key(refs[k]): v for k, v in image.items()}
    items = [  # the first pair is told apart both ways (group 1), the second by neither caption (group 0)
        {"subset": "3 objects", "predicate": "points at", "images": [refs["i0"], refs["i1"]], "captions": ["a", "b"]},
        {"subset": "3 objects", "predicate": "left of", "images": [refs["i2"], refs["i3"]], "captions": ["c", "a"]},
    ]
    result = score(items, images, text)
    assert result["pair_subsets"] == {"3 objects": {"text": 0.5, "image": 0.5, "group": 0.5, "n": 2}}
    assert result["pair_predicates"]["points at"] == {"text": 1.0, "image": 1.0, "group": 1.0, "n": 1}
    assert result["pair_predicates"]["left of"]["group"] == 0.0
    out = add_intervals(result)
    assert out["pair_predicates"]["points at"]["group_ci"] == pytest.approx(list(wilson(1.0, 1)))
    assert "points at: group 100.0%" in "\n".join(format_intervals(out))
    assert "points at" in format_result("winoground-synthetic", out)
