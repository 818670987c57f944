"""The route through an open_clip visual tower, end to end on a small COCO folder: build (in
workers), train, retrieval, and a suite of file images scored with the run's own featurizer."""

import json
import pickle

import numpy as np
import pytest
import torch
from helpers import write_coco, write_tiny_config
from PIL import Image

from graphs.featurizers import BackboneFeaturizer, Featurizer

BACKBONE = "open_clip:ViT-S-32"


@pytest.fixture(scope="module")
def clip_weights(tmp_path_factory):
    """A randomly initialised open_clip model saved as a checkpoint file, as a user's weights would be."""
    import open_clip

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("clip") / "vit-s-32.pt"
    torch.save(open_clip.create_model(BACKBONE.partition(":")[2]).state_dict(), path)
    return path


def test_a_backbone_featurizer_travels_without_its_model_and_builds_it_once(clip_weights, monkeypatch):
    made = []
    real_init = BackboneFeaturizer.__init__

    def counting_init(self, *args, **kwargs):
        made.append(args)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(BackboneFeaturizer, "__init__", counting_init)
    featurizer = Featurizer("backbone", BACKBONE, clip_weights)
    image = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    masks = np.zeros((2, 48, 64), dtype=bool)
    masks[0, :10, :10] = masks[1, 20:, 30:] = True
    first = featurizer(image, masks)
    again = featurizer(image, masks)
    assert len(made) == 1 and torch.equal(first[0], again[0])  # one model per process, not per image
    copy = pickle.loads(pickle.dumps(featurizer))  # what a spawned cache-build worker receives
    assert copy._model is None and len(pickle.dumps(featurizer)) < 10_000
    objects, whole = copy(image, masks)
    assert objects.shape == (2, 384) and whole.shape == (1, 384)
    torch.testing.assert_close(objects, first[0])


@pytest.mark.slow
def test_an_open_clip_run_on_coco_trains_retrieves_and_scores_file_images(tmp_path, clip_weights):
    from data.cache import GraphCache
    from data.coco import CocoBuilder
    from evaluate.compositional import main as compositional_main
    from evaluate.retrieval import main as retrieval_main
    from train.run import main as train_main

    root = tmp_path / "coco"
    names = write_coco(root, "train2017")
    write_coco(root, "val2017")
    backbone = ["--featurizer", "backbone", "--backbone", BACKBONE, "--backbone-weights", str(clip_weights)]
    cache = tmp_path / "cache"
    # the cache built by two spawned workers holds what one process builds
    featurizer = Featurizer("backbone", BACKBONE, clip_weights)
    serial, _ = GraphCache(tmp_path / "serial", shard_size=1).load_or_build(
        CocoBuilder(root, "train2017", featurizer=featurizer), progress=False
    )
    parallel, report = GraphCache(cache, shard_size=1).load_or_build(
        CocoBuilder(root, "train2017", featurizer=featurizer), workers=2, progress=False
    )
    assert report.rebuilt_shards == 3 and parallel.names == serial.names
    torch.testing.assert_close(parallel.nodes["object/x"], serial.nodes["object/x"])
    assert serial.nodes["object/x"].shape[1] == 384  # the tower's width, not the pixel crops
    run = tmp_path / "run"
    train_main(
        [
            "--dataset", "coco", "--coco-root", str(root), *backbone, "--cache-dir", str(tmp_path / "cache2"),
            "--batch-size", "3", "--epochs", "1", "--model-config", str(write_tiny_config(tmp_path)),
            "--out", str(run), "--no-progress", "--threads", "1",
        ]
    )  # fmt: skip
    checkpoint = run / "checkpoints" / "latest.pt"
    metrics = retrieval_main(["--checkpoint", str(checkpoint), "--eval-split", "val"])
    assert 0 <= metrics["t2i_R@1"] <= 1 and metrics["i2t_mean_rank"] >= 1
    suite_dir = tmp_path / "suite"
    suite_dir.mkdir()
    for name in names.values():
        Image.open(root / "train2017" / name).save(suite_dir / name)
    items = [{"id": n, "image": {"file": n}, "captions": ["a cat", "a dog"], "answer": 0} for n in names.values()]
    (suite_dir / "suite.jsonl").write_text("".join(json.dumps(item) + "\n" for item in items))
    results = compositional_main(["--checkpoint", str(checkpoint), "--suite", str(suite_dir / "suite.jsonl")])
    assert results[0]["items"] == len(names) and results[0]["differs_from_run"] == {}


def test_the_cache_build_featurizes_several_images_per_forward_pass(tmp_path, monkeypatch):
    import timm

    from data.cache import build_items
    from data.coco import CocoBuilder

    write_coco(tmp_path)
    weights = tmp_path / "test_resnet.pt"
    torch.save(timm.create_model("test_resnet", pretrained=False, num_classes=0).state_dict(), weights)
    passes = []
    real_maps = BackboneFeaturizer.feature_maps

    def counting_maps(self, images):
        passes.append(len(images))
        return real_maps(self, images)

    monkeypatch.setattr(BackboneFeaturizer, "feature_maps", counting_maps)
    batched = CocoBuilder(tmp_path, "val2017", featurizer=Featurizer("backbone", "timm:test_resnet", weights, 2))
    graphs, names, _ = build_items(batched, range(3), "error")
    assert passes == [2, 1]  # three images, two forward passes
    assert batched.featurizer._prepared == {}  # nothing left over
    passes.clear()
    single = CocoBuilder(tmp_path, "val2017", featurizer=Featurizer("backbone", "timm:test_resnet", weights, 1))
    one_by_one, _, _ = build_items(single, range(3), "error")
    assert passes == [1, 1, 1]
    for a, b in zip(graphs, one_by_one, strict=True):
        torch.testing.assert_close(a["object"].x, b["object"].x)
        torch.testing.assert_close(a["image"].x, b["image"].x)


def test_the_backbone_runs_where_it_is_told_else_on_the_gpu_when_there_is_one(monkeypatch):
    from graphs.featurizers import featurizer_device

    monkeypatch.setenv("SEMGRAPH_FEATURIZER_DEVICE", "cpu")
    assert featurizer_device() == "cpu"
    monkeypatch.delenv("SEMGRAPH_FEATURIZER_DEVICE")
    assert featurizer_device() == ("cuda" if torch.cuda.is_available() else "cpu")
