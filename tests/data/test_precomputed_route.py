"""The route through a pretrained featurizer, end to end, on a COCO-format fixture:
SEEM-like 512-d mask features and RAM-style predicate names in a tokens file,
--featurizer precomputed, one tiny epoch, then retrieval."""

import json
import math

import numpy as np
import pytest
import torch
from export_files import noise, polygon, rectangle, write_coco_folder
from helpers import write_tiny_config
from pycocotools import mask as mask_utils

from data.sources import DataOptions, open_dataset
from graphs.schema import OBJECT, PREDICATES, RELATION, relation_names

FEATURE_DIM = 512
RAM_PREDICATES = ["holding", "sitting on", "in front of", "grazing on", "wearing"]  # "grazing on" is not in VG150


def write_fixture(root, images=12):
    """A COCO folder (instances, captions, images) and what a SEEM + RAM export of it looks like."""
    pictures, annotations, lines, captions = [], [], [], []
    rng = np.random.default_rng(0)
    for image_id in range(1, images + 1):
        name = f"{image_id:012d}.jpg"
        pictures.append((image_id, name, noise(64, 48, image_id), 64, 48))
        square = polygon(4 + image_id % 5, 3, 12, 14)
        block = rectangle(48, 64, 20, 30 + image_id % 7, 16, 18)
        rle = mask_utils.encode(np.asfortranarray(block.astype(np.uint8)))
        rle = {"size": rle["size"], "counts": rle["counts"].decode()}
        annotations += [
            {"image_id": image_id, "segmentation": square, "area": 168.0},
            {"image_id": image_id, "segmentation": rle, "area": 288.0, "category_id": 2},
        ]
        lines.append(
            {
                "file_name": name,
                "height": 48,
                "width": 64,
                "masks": [square, rle],
                "labels": [1, 2],
                "scores": [0.9, 0.8],
                "features": rng.normal(size=(2, FEATURE_DIM)).round(4).tolist(),
                "triplets": [[0, RAM_PREDICATES[image_id % 5], 1]],
            }
        )
        captions.append({"file_name": name, "captions": [f"picture {image_id} of a dog and a frisbee"]})
    write_coco_folder(root / "coco", pictures, annotations)
    (root / "tokens.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    (root / "captions.jsonl").write_text("\n".join(json.dumps(c) for c in captions) + "\n")
    return [
        "--dataset",
        "images",
        "--images",
        str(root / "coco" / "val2017"),
        "--captions",
        str(root / "captions.jsonl"),
        "--token-source",
        "tokens",
        "--tokens-file",
        str(root / "tokens.jsonl"),
        "--featurizer",
        "precomputed",
        "--val-fraction",
        "0.34",
        "--cache-dir",
        str(root / "cache"),
    ]


def test_precomputed_features_and_ram_predicates_reach_the_graphs(tmp_path):
    write_fixture(tmp_path)
    options = DataOptions(
        dataset="images",
        images=str(tmp_path / "coco" / "val2017"),
        captions=str(tmp_path / "captions.jsonl"),
        token_source="tokens",
        tokens_file=str(tmp_path / "tokens.jsonl"),
        featurizer="precomputed",
        val_fraction=0.0,
        cache_dir=str(tmp_path / "cache"),
    )
    dataset = open_dataset(options, "train", progress=False)
    tokens = [json.loads(line) for line in (tmp_path / "tokens.jsonl").read_text().splitlines()]
    for k, name in enumerate(dataset.store.names):
        graph, line = dataset.store[k], next(t for t in tokens if t["file_name"] == name)
        assert torch.allclose(graph[OBJECT].x, torch.tensor(line["features"]))
        predicate = PREDICATES[int(graph[RELATION].predicate[0])]
        wanted = line["triplets"][0][1]
        assert predicate == (wanted if wanted in PREDICATES else "other")
        assert relation_names(graph)[0] == wanted  # the name is kept, inside the vocabulary or not
        assert graph.open_predicates == ([] if wanted in PREDICATES else [wanted])


@pytest.mark.slow
def test_precomputed_route_trains_and_retrieves(tmp_path):
    from evaluate.retrieval import main as retrieve
    from train.run import main as train

    data = write_fixture(tmp_path)
    config = write_tiny_config(tmp_path)
    run = tmp_path / "run"
    common = ["--batch-size", "4", "--no-progress", "--threads", "1"]
    train([*data, "--epochs", "1", "--model-config", str(config), "--out", str(run), *common])
    metrics = retrieve(
        [*data, "--checkpoint", str(run / "checkpoints" / "latest.pt"), "--eval-split", "val", "--batch-size", "4"]
    )
    recalls = {k: v for k, v in metrics.items() if "R@" in k or "r@" in k.lower()}
    assert recalls and all(0.0 <= v <= 100.0 and not math.isnan(v) for v in recalls.values())


@pytest.mark.slow
def test_open_vocabulary_predicates_train_and_score_with_text_relation_features(tmp_path, caplog):
    """RAM's "grazing on" is outside the vocabulary: with text relation features it is embedded by
    its name in training and again, by the run's own (seeded, untrained) tower, in evaluation."""
    from evaluate.retrieval import main as retrieve
    from evaluate.run_config import options_from_params
    from models.checkpoint import load_checkpoint, model_from_checkpoint
    from models.relation_text import PredicateTexts
    from train.run import main as train

    data = write_fixture(tmp_path)
    config = write_tiny_config(tmp_path)
    run = tmp_path / "run"
    common = ["--batch-size", "4", "--no-progress", "--threads", "1"]
    text = ["--relation-features", "text"]
    with pytest.warns(UserWarning, match="untrained"), caplog.at_level("INFO", logger="semgraph"):
        train([*data, "--epochs", "1", "--model-config", str(config), "--out", str(run), *common, *text])
    assert "embedding 1 predicate names outside the vocabulary" in caplog.text
    checkpoint = str(run / "checkpoints" / "latest.pt")
    every = ["--val-fraction", "1.0"]  # score every image, "grazing on" among them
    with pytest.warns(UserWarning, match="untrained"):  # the tower is built: an open name is met
        metrics = retrieve([*data, "--checkpoint", checkpoint, "--eval-split", "val", "--batch-size", "4", *every])
    assert all(not math.isnan(v) for k, v in metrics.items() if "R@" in k)

    state = load_checkpoint(checkpoint)
    model = model_from_checkpoint(state)
    dataset = open_dataset(options_from_params(state["params"]), "train", progress=False)
    k = next(k for k, names in enumerate(dataset.store.open_predicates) if names == ["grazing on"])
    batch = dataset.store.collate([k])
    encoder = model.graph_encoder
    with pytest.warns(UserWarning, match="untrained"):
        row = encoder._predicate_text(batch[RELATION], batch)[0]
        expected = PredicateTexts("ViT-B-32").embed(["grazing on"])[0]
    assert torch.allclose(row, expected, atol=1e-5)
    assert not torch.allclose(row, encoder.relation_text[PREDICATES.index("other")])

    # the run's tower file gone: refused by name when an open predicate needs it
    state["params"]["relation_text_checkpoint"] = str(tmp_path / "moved.pt")
    torch.save(state, tmp_path / "moved-tower.pt")
    with pytest.raises(SystemExit, match=r"error: text checkpoint .*moved.pt does not exist"):
        retrieve([*data, "--checkpoint", str(tmp_path / "moved-tower.pt"), "--eval-split", "val", *every])
