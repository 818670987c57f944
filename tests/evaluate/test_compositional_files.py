"""Suites of file images scored as the checkpoint's run built its graphs: tokens files, crops,
undrawable layouts and bad items."""

import json

import numpy as np
import pytest
import torch
from helpers import train_tiny, write_tiny_config
from PIL import Image
from pycocotools import mask as mask_utils

from data.cache import BadItem
from evaluate.compositional import main as compositional_main
from evaluate.plot import compositional_panels
from evaluate.ref_graphs import TokensByPath, crop_box, crop_tokens
from evaluate.suites import UndrawableLayout, render_layout
from graphs.tokens import ImageTokens

# Two squares of known colours on a 40x50 photo: mask 0 red at rows 5..14, cols 4..13; mask 1 blue at
# rows 22..33, cols 30..45.
RED, BLUE = (200, 30, 30), (30, 30, 200)


def photo(path, seed=0):
    pixels = np.random.default_rng(seed).integers(90, 110, (40, 50, 3), dtype=np.uint8)
    pixels[5:15, 4:14] = RED
    pixels[22:34, 30:46] = BLUE
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return pixels


def photo_masks():
    masks = np.zeros((2, 40, 50), dtype=bool)
    masks[0, 5:15, 4:14] = True
    masks[1, 22:34, 30:46] = True
    return masks


def rle(mask):
    encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(encoded["size"]), "counts": encoded["counts"].decode()}


def tokens_line(name, masks, triplets=()):
    height, width = masks.shape[1:]
    entry = {"file_name": name, "height": height, "width": width, "masks": [rle(m) for m in masks]}
    return json.dumps({**entry, "triplets": [list(t) for t in triplets]}) + "\n"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic-run")
    train_tiny(root, root / "run")
    return str(root / "run" / "checkpoints" / "latest.pt")


@pytest.mark.parametrize(
    "box", [[2, 3, 30, 20], [-5, -4, 20, 15], [40, 30, 20, 20], [1.5, 2.5, 10.4, 7.6], [0.5, 0, 49.5, 40]]
)
def test_crop_box_is_pils_crop_padding_outside(box):
    pixels = np.random.default_rng(0).integers(1, 255, (40, 50, 3), dtype=np.uint8)
    x, y, w, h = box
    expected = np.asarray(Image.fromarray(pixels).crop((x, y, x + w, y + h)))
    assert np.array_equal(crop_box(pixels, box), expected)


def test_full_size_masks_crop_with_the_image_and_empty_ones_go(tmp_path):
    pixels = photo(tmp_path / "p.png")
    tokens = ImageTokens(photo_masks(), labels=[1, 2], triplets=[(0, 3, 1), (1, 4, 0)])
    for box in ([2, 3, 30, 20], [-6, -2, 30, 30], [25, 20, 40, 30]):
        image, cropped = crop_box(pixels, box), crop_tokens(tokens, box)
        colours = [np.all(image == colour, axis=-1) for colour in (RED, BLUE)]
        kept = [k for k in range(2) if colours[k].any()]
        assert cropped.labels == [tokens.labels[k] for k in kept]
        assert all(np.array_equal(mask, colours[k]) for mask, k in zip(cropped.masks, kept, strict=True))
        assert cropped.triplets == ([(0, 3, 1), (1, 4, 0)] if len(kept) == 2 else [])


def test_tokens_are_found_by_relative_path_and_a_shared_basename_is_refused(tmp_path):
    one, other = ImageTokens(photo_masks()[:1]), ImageTokens(photo_masks()[1:])
    by_path = TokensByPath({"a/x.png": one, "./b/x.png": other}, "t.jsonl", tmp_path, ["a/x.png", "b/x.png"])
    assert by_path("a/x.png") is one and by_path("b/x.png") is other
    assert TokensByPath({"x.png": one}, "t.jsonl", tmp_path, ["a/x.png", "c/y.png"])("a/x.png") is one
    shared = TokensByPath({"x.png": one}, "t.jsonl", tmp_path, ["a/x.png", "b/x.png"])
    with pytest.raises(BadItem, match="t.jsonl: the line for x.png fits a/x.png and b/x.png"):
        shared("a/x.png")
    with pytest.raises(BadItem, match="no line for image c/y.png"):
        by_path("c/y.png")


def test_a_suite_with_a_tokens_file_and_boxes_scores_with_the_files_masks(checkpoint, tmp_path, capsys):
    """Two images of one name in two folders, each with its own line; a box crops image and masks alike."""
    photo(tmp_path / "a" / "x.png", 0)
    photo(tmp_path / "b" / "x.png", 1)
    masks = photo_masks()
    (tmp_path / "tokens.jsonl").write_text(
        tokens_line("a/x.png", masks, [(0, 3, 1)]) + tokens_line("b/x.png", masks[:1])
    )
    items = [
        {"id": "whole", "image": {"file": "a/x.png"}, "captions": ["a red square", "a blue square"], "answer": 0},
        {"id": "crop", "image": {"file": "b/x.png", "box": [-3, 2, 30, 20]}, "captions": ["red", "blue"], "answer": 1},
    ]
    suite = tmp_path / "suite.jsonl"
    suite.write_text("".join(json.dumps(item) + "\n" for item in items))
    argv = ["--checkpoint", checkpoint, "--suite", str(suite), "--output", str(tmp_path / "out.json")]
    results = compositional_main([*argv, "--token-source", "tokens", "--tokens-file", str(tmp_path / "tokens.jsonl")])
    assert results[0]["items"] == 2 and results[0]["differs_from_run"] == {}

    from evaluate.ref_graphs import RefGraphs
    from models.checkpoint import load_checkpoint, model_from_checkpoint

    model = model_from_checkpoint(load_checkpoint(checkpoint))
    graphs = RefGraphs(model, {"token_source": "tokens", "tokens_file": str(tmp_path / "tokens.jsonl")}, tmp_path)
    whole, crop = graphs(items[0]["image"]), graphs(items[1]["image"])
    assert whole["object"].num_nodes == 2 and whole["relation"].num_nodes == 1
    assert crop["object"].num_nodes == 1  # b/x.png has one mask; the crop keeps it
    assert torch.allclose(crop["object"].box, torch.tensor([[(3 + 4 + 5) / 30, (5 - 2 + 5) / 20, 10 / 30, 10 / 20]]))


def test_token_source_is_checked_when_the_flags_are_read(capsys):
    with pytest.raises(SystemExit) as error:
        compositional_main(["--checkpoint", "nowhere.pt", "--suite", "relation-swap", "--token-source", "sam"])
    assert error.value.code == 2 and "invalid choice: 'sam'" in capsys.readouterr().err


def test_a_layout_with_no_room_for_its_arrow_is_skipped_counted_and_named(checkpoint, tmp_path, capsys):
    touching = {
        "objects": [
            {"shape": "square", "colour": "red", "size": "large", "centre": [30, 48]},
            {"shape": "circle", "colour": "blue", "size": "large", "centre": [58, 48]},
        ],
        "arrows": [[0, 1]],
    }
    with pytest.raises(UndrawableLayout, match="no room for an arrow from object 0 to object 1"):
        render_layout(touching)
    apart = {
        **touching,
        "objects": [{**touching["objects"][0], "centre": [20, 48]}, {**touching["objects"][1], "centre": [76, 48]}],
    }
    render_layout(apart)
    captions = ["a red square pointing at a blue circle", "a blue circle pointing at a red square"]
    items = [
        {
            "id": "bad-pair",
            "subset": "points at",
            "images": [{"layout": touching}, {"layout": apart}],
            "captions": captions,
        },
        {"id": "good", "subset": "points at", "image": {"layout": apart}, "captions": captions, "answer": 0},
    ]
    suite = tmp_path / "layouts.jsonl"
    suite.write_text("".join(json.dumps(item) + "\n" for item in items))
    output = tmp_path / "out.json"
    results = compositional_main(["--checkpoint", checkpoint, "--suite", str(suite), "--output", str(output)])
    assert results[0]["items"] == 1 and "group" not in results[0]
    assert results[0]["skipped"] == {
        "count": 1,
        "items": [{"id": "bad-pair", "reason": "no room for an arrow from object 0 to object 1"}],
    }
    assert json.loads(output.read_text())[0]["skipped"]["count"] == 1
    assert "skipped 1 items the renderer cannot draw: bad-pair (no room" in capsys.readouterr().out


@pytest.mark.parametrize("problem", ["missing", "unreadable", "bad json", "bad layout"])
def test_bad_items_are_an_error_naming_file_and_item_without_a_traceback(checkpoint, tmp_path, capsys, problem):
    photo(tmp_path / "fine.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    good = {"id": "ok", "image": {"file": "fine.png"}, "captions": ["a", "b"], "answer": 0}
    bad = {
        "missing": {**good, "id": "gone", "image": {"file": "missing.png"}},
        "unreadable": {**good, "id": "torn", "image": {"file": "broken.png"}},
        "bad layout": {
            **good,
            "id": "odd",
            "image": {"layout": {"objects": [{"shape": "blob", "colour": "red", "size": "small", "centre": [9, 9]}]}},
        },
    }
    suite = tmp_path / "suite.jsonl"
    lines = [json.dumps(good), "{not json" if problem == "bad json" else json.dumps(bad[problem])]
    suite.write_text("\n".join(lines) + "\n")
    with pytest.raises(SystemExit) as error:
        compositional_main(["--checkpoint", checkpoint, "--suite", str(suite), "--token-source", "slic"])
    message = str(error.value.code)
    expected = {
        "missing": f"error: {suite}: gone: image {tmp_path / 'missing.png'} does not exist",
        "unreadable": f"error: {suite}: torn: image {tmp_path / 'broken.png'} cannot be decoded",
        "bad json": f"error: {suite}:2: not valid JSON",
        "bad layout": f"error: {suite}: odd: unknown shape 'blob'",
    }[problem]
    assert message.startswith(expected), message
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.slow
def test_a_backbone_run_scores_file_images_with_its_own_backbone(tmp_path):
    """Trained on an image folder with a (random) timm backbone; a suite of the same images gets
    the very graphs the run trained on, backbone features included."""
    from data.sources import open_dataset
    from evaluate.ref_graphs import RefGraphs
    from evaluate.run_config import options_from_params, run_params
    from models.checkpoint import load_checkpoint, model_from_checkpoint
    from train.run import main as train_main

    names = [f"{folder}/p{k}.png" for folder in ("a", "b") for k in range(6)]
    for k, name in enumerate(names):
        photo(tmp_path / "images" / name, k)
    (tmp_path / "captions.jsonl").write_text(
        "".join(
            json.dumps({"file_name": name, "captions": [f"photo {k}", "squares"]}) + "\n"
            for k, name in enumerate(names)
        )
    )
    import timm

    weights = tmp_path / "test_resnet.pt"  # random, but in a file: the same features at training and scoring
    torch.save(timm.create_model("test_resnet", pretrained=False, num_classes=0).state_dict(), weights)
    backbone = ["--featurizer", "backbone", "--backbone", "timm:test_resnet", "--backbone-weights", str(weights)]
    run = tmp_path / "run"
    train_main(
        [
            "--dataset", "images", "--images", str(tmp_path / "images"), "--captions", str(tmp_path / "captions.jsonl"),
            "--val-fraction", "0.5", *backbone, "--token-source", "slic", "--max-relations", "3",
            "--batch-size", "4", "--epochs", "1", "--model-config", str(write_tiny_config(tmp_path)),
            "--out", str(run), "--no-progress", "--no-cache",
        ]
    )  # fmt: skip
    items = [{"id": name, "image": {"file": name}, "captions": ["photo", "squares"], "answer": 0} for name in names]
    suite = tmp_path / "images" / "suite.jsonl"
    suite.write_text("".join(json.dumps(item) + "\n" for item in items))
    checkpoint = run / "checkpoints" / "latest.pt"
    results = compositional_main(["--checkpoint", str(checkpoint), "--suite", str(suite)])
    assert results[0]["items"] == len(names) and results[0]["differs_from_run"] == {}

    state = load_checkpoint(checkpoint)
    options = options_from_params(run_params(state, checkpoint)[0])
    trained = open_dataset(options, "train", progress=False)
    graphs = RefGraphs(model_from_checkpoint(state), options, suite.parent)
    assert len(trained) > 0
    for index, name in enumerate(trained.store.names):
        graph, mine = trained.store[index], graphs({"file": name})
        assert mine["object"].x.shape == graph["object"].x.shape and mine["object"].x.shape[1] != 256  # not pixels
        assert torch.allclose(mine["object"].x, graph["object"].x) and mine["relation"].num_nodes <= 3
    with pytest.raises(SystemExit, match="--featurizer: the run used backbone, given pixels"):
        compositional_main(["--checkpoint", str(checkpoint), "--suite", str(suite), "--featurizer", "pixels"])
    with pytest.raises(ValueError, match="had no --backbone-weights: the random features"):
        RefGraphs(model_from_checkpoint(state), {**state["params"], "backbone_weights": None}, suite.parent)


def test_mask_rcnn_needs_its_weights_file(checkpoint, tmp_path):
    photo(tmp_path / "p.png")
    suite = tmp_path / "suite.jsonl"
    suite.write_text(json.dumps({"image": {"file": "p.png"}, "captions": ["a", "b"], "answer": 0}) + "\n")
    argv = ["--checkpoint", checkpoint, "--suite", str(suite), "--token-source", "maskrcnn"]
    with pytest.raises(SystemExit, match="error: Mask R-CNN needs a local weights file"):
        compositional_main(argv)
    with pytest.raises(SystemExit, match="error: Mask R-CNN weights .*nothing.pth do not exist"):
        compositional_main([*argv, "--maskrcnn-weights", str(tmp_path / "nothing.pth")])


def layout_suite(path, colour):
    """One choice item on a drawn layout: a `colour` square left of a blue circle."""
    layout = {
        "objects": [
            {"shape": "square", "colour": colour, "size": "large", "centre": [24, 48]},
            {"shape": "circle", "colour": "blue", "size": "large", "centre": [72, 48]},
        ]
    }
    captions = [f"a {colour} square to the left of a blue circle", f"a blue circle to the left of a {colour} square"]
    item = {"id": f"{colour}-left", "subset": "left of", "image": {"layout": layout}, "captions": captions, "answer": 0}
    path.write_text(json.dumps(item) + "\n")
    return str(path)


def test_a_second_scoring_keeps_the_results_file_of_other_suites(checkpoint, tmp_path, capsys):
    red, green = layout_suite(tmp_path / "red.jsonl", "red"), layout_suite(tmp_path / "green.jsonl", "green")
    output = tmp_path / "out.json"
    compositional_main(["--checkpoint", checkpoint, "--suite", red, "--output", str(output)])
    compositional_main(["--checkpoint", checkpoint, "--suite", green, "--output", str(output)])
    assert [entry["suite"] for entry in json.loads(output.read_text())] == [red, green]
    assert "kept 1 earlier results" in capsys.readouterr().out
    again = compositional_main(["--checkpoint", checkpoint, "--suite", red, "--output", str(output)])
    written = json.loads(output.read_text())
    assert [entry["suite"] for entry in written] == [green, red] and written[1] == again[0]


def test_a_suite_file_of_drawn_images_records_exact_tokens(checkpoint, tmp_path):
    # the tiny run's own token source (for image files) is felzenszwalb; drawn layouts keep exact masks
    suite = layout_suite(tmp_path / "red.jsonl", "red")
    result = compositional_main(["--checkpoint", checkpoint, "--suite", suite, "--output", str(tmp_path / "o.json")])
    assert torch.load(checkpoint, weights_only=False)["params"]["token_source"] == "felzenszwalb"
    assert result[0]["token_source"] == "exact" and result[0]["object_tokens_per_image"] == 2.0


@pytest.mark.parametrize("content", ["{not json", '{"suite": "x"}', "[1, 2]"])
def test_a_results_file_that_is_not_one_is_refused_and_left_as_it_was(checkpoint, tmp_path, capsys, content):
    output = tmp_path / "notes.json"
    output.write_text(content)
    suite = layout_suite(tmp_path / "red.jsonl", "red")
    with pytest.raises(SystemExit, match=f"error: {output}: not .*: give --output another file"):
        compositional_main(["--checkpoint", checkpoint, "--suite", suite, "--output", str(output)])
    assert output.read_text() == content


def test_a_suite_scored_twice_in_one_file_is_drawn_as_two_panels():
    def result(tokens, acc):
        differs = {} if tokens == "exact" else {"token_source": {"run": "exact", "given": tokens}}
        subsets = {"left of": {"acc": acc, "n": 50}, "above": {"acc": 1.0, "n": 50}}
        scored = {"macro_acc": (acc + 1.0) / 2, "subsets": subsets}
        return {"suite": "relation-swap", "token_source": tokens, "differs_from_run": differs, **scored}

    files = {"a": [result("exact", 0.9), result("quickshift", 0.5)], "b": [result("exact", 0.8)]}
    panels = compositional_panels(files)
    assert list(panels) == ["relation-swap (tokens: exact)", "relation-swap (tokens: quickshift)"]
    assert panels["relation-swap (tokens: exact)"]["a"]["left of"] == 0.9
    assert panels["relation-swap (tokens: exact)"]["b"]["left of"] == 0.8
    assert list(panels["relation-swap (tokens: quickshift)"]) == ["a"]
    assert list(compositional_panels({"b": files["b"]})) == ["relation-swap"]
