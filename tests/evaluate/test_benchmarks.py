"""The real benchmarks' loaders, on small fixtures written in each original format."""

import json

import numpy as np
import pytest
from PIL import Image

from evaluate.benchmarks import load_benchmark
from evaluate.compositional import RefGraphs, score


def photo(path, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(path)


@pytest.fixture
def root(tmp_path):
    for k in range(4):
        photo(tmp_path / "images" / f"{k}.jpg", k)
        photo(tmp_path / "images" / f"ex_{k}.png", 10 + k)
    relation = [
        {
            "image_id": k,
            "image_path": f"{k}.jpg",
            "bbox_x": 2,
            "bbox_y": 3,
            "bbox_w": 30,
            "bbox_h": 20,
            "true_caption": "the horse is eating the grass",
            "false_caption": "the grass is eating the horse",
            "relation_name": "eating" if k % 2 else "on",
        }
        for k in range(4)
    ]
    (tmp_path / "visual_genome_relation.json").write_text(json.dumps(relation))
    attribution = [
        {
            "image_id": k,
            "image_path": f"{k}.jpg",
            "bbox_x": 0,
            "bbox_y": 0,
            "bbox_w": 50,
            "bbox_h": 40,
            "true_caption": "the white dog and the black cat",
            "false_caption": "the black dog and the white cat",
            "attributes": ["white", "black"],
        }
        for k in range(2)
    ]
    (tmp_path / "visual_genome_attribution.json").write_text(json.dumps(attribution))
    karpathy = [
        {
            "image": f"{k}.jpg",
            "caption": ["A man riding a brown horse on the beach.", "two dogs playing with a red ball"],
        }
        for k in range(2)
    ]
    (tmp_path / "karpathy_test.json").write_text(json.dumps(karpathy))
    for subset in ("swap_att", "replace_rel"):
        entries = {
            str(k): {"filename": f"{k}.jpg", "caption": "a cat on a mat", "negative_caption": "a mat on a cat"}
            for k in range(3)
        }
        (tmp_path / f"{subset}.json").write_text(json.dumps(entries))
    examples = [
        {
            "id": k,
            "image_0": f"ex_{2 * k}",
            "image_1": f"ex_{2 * k + 1}",
            "caption_0": "an old person kisses a young person",
            "caption_1": "a young person kisses an old person",
            "tag": "Object",
            "collapsed_tag": "Object",
        }
        for k in range(2)
    ]
    (tmp_path / "examples.jsonl").write_text("".join(json.dumps(e) + "\n" for e in examples))
    return tmp_path


def test_aro_items_crop_to_the_box_and_group_by_relation(root):
    items = load_benchmark("aro-relation", root)
    assert len(items) == 4 and {i["subset"] for i in items} == {"eating", "on"}
    assert items[0]["image"]["box"] == [2, 3, 30, 20] and items[0]["answer"] == 0
    attribution = load_benchmark("aro-attribution", root)
    assert attribution[0]["subset"] == "white_black"


def test_order_items_perturb_real_captions(root):
    items = load_benchmark("coco-order", root)
    assert len(items) == 4
    for item in items:
        true, *wrong = item["captions"]
        assert len(wrong) == 4 and true not in wrong
        assert all(sorted(w.split()) == sorted(true.split()) for w in wrong)


def test_sugarcrepe_and_winoground(root):
    sugar = load_benchmark("sugarcrepe", root)
    assert len(sugar) == 6 and {i["subset"] for i in sugar} == {"swap_att", "replace_rel"}
    wino = load_benchmark("winoground", root)
    assert len(wino) == 2 and wino[1]["images"][1]["file"].endswith("ex_3.png")


def test_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="visual_genome_relation.json does not exist"):
        load_benchmark("aro-relation", tmp_path)
    with pytest.raises(FileNotFoundError, match="no SugarCrepe subset"):
        load_benchmark("sugarcrepe", tmp_path)


def test_benchmark_images_become_graphs_and_score(root):
    class Model:
        class config:
            vision = None

    graphs = RefGraphs(Model(), {"graph_type": "hetero", "token_source": "slic"}, root)
    item = load_benchmark("aro-relation", root)[0]
    graph = graphs(item["image"])
    assert graph["image"].num_nodes == 1 and graph["object"].num_nodes >= 1
    assert graph["object"].box[:, :2].max() <= 1.0  # boxes of the 30x20 crop, normalised
    import torch

    images = {json.dumps(item["image"], sort_keys=True): torch.tensor([1.0, 0.0])}
    texts = {item["captions"][0]: torch.tensor([1.0, 0.0]), item["captions"][1]: torch.tensor([0.0, 1.0])}
    assert score([item], images, texts)["acc"] == 1.0


def test_compositional_cli_scores_a_benchmark_folder(root, tmp_path, capsys):
    from helpers import train_tiny

    from evaluate.compositional import main

    train_tiny(tmp_path, tmp_path / "run")
    checkpoint = str(tmp_path / "run" / "checkpoints" / "latest.pt")
    results = main(
        [
            "--checkpoint",
            checkpoint,
            "--suite",
            "winoground",
            "--suite",
            "sugarcrepe",
            "--benchmark-root",
            str(root),
            "--token-source",
            "slic",
        ]
    )
    assert results[0]["items"] == 2 and "group" in results[0]
    assert set(results[1]["subsets"]) == {"swap_att", "replace_rel"}
    with pytest.raises(SystemExit, match="give --benchmark-root"):
        main(["--checkpoint", checkpoint, "--suite", "winoground"])
