"""The rehearsal's data generator (deterministic, resumable, every mask encoding) and its arithmetic."""

import json

import numpy as np
import pytest
from helpers import write_tiny_config
from pycocotools import mask as mask_utils

from bench.coco_like import image_record, intact_jpeg, uncompressed_rle, write_coco_split
from bench.rehearse_coco import PAPER_EPOCHS, TRAIN_IMAGES, extrapolate, gpu_extrapolation
from bench.rehearse_coco import main as rehearse_main


def test_uncompressed_rle_decodes_to_the_mask():
    mask = np.zeros((7, 5), dtype=np.uint8)
    mask[0, 0] = mask[2:5, 1:4] = 1
    rle = uncompressed_rle(mask)
    decoded = mask_utils.decode(mask_utils.frPyObjects(rle, 7, 5))
    assert rle["counts"][0] == 0 and np.array_equal(decoded, mask)  # starts with a run of ones: zero zeros first


def test_a_split_is_deterministic_resumable_and_readable(tmp_path):
    from data.coco import CocoBuilder

    root = tmp_path / "coco"
    assert write_coco_split(root, "val2017", 8, seed=3, progress=False) == {"written": 8, "kept": 0, "torn": 0}
    files = sorted((root / "val2017").iterdir())
    original = {path.name: path.read_bytes() for path in files}
    annotations = (root / "annotations" / "instances_val2017.json").read_text()
    assert write_coco_split(root, "val2017", 8, seed=3, progress=False)["written"] == 0  # finished: untouched
    files[0].write_bytes(original[files[0].name][:100])  # torn
    files[1].unlink()  # never written
    (root / "annotations" / ".complete_val2017.json").unlink()  # as if killed before the end
    assert not intact_jpeg(files[0])
    assert write_coco_split(root, "val2017", 8, seed=3, progress=False) == {"written": 2, "kept": 6, "torn": 1}
    assert {path.name: path.read_bytes() for path in sorted((root / "val2017").iterdir())} == original
    assert (root / "annotations" / "instances_val2017.json").read_text() == annotations
    instances = json.loads(annotations)
    kinds = {
        type(a["segmentation"]).__name__ + type(a["segmentation"].get("counts", "")).__name__
        if isinstance(a["segmentation"], dict)
        else "polygon"
        for a in instances["annotations"]
    }
    assert kinds == {"polygon", "dictstr", "dictlist"}  # polygons, compressed and uncompressed RLE
    captions = json.loads((root / "annotations" / "captions_val2017.json").read_text())["annotations"]
    assert len(captions) == 5 * 8
    builder = CocoBuilder(root, "val2017")
    graph, name = builder.build(7)
    assert len(builder) == 8 and len(graph.captions) == 5 and name == instances["images"][7]["file_name"]


def test_an_image_follows_from_seed_split_and_index_alone():
    first = image_record(0, "train2017", 41)
    assert first[:3] == image_record(0, "train2017", 41)[:3]
    assert first[0]["id"] != image_record(0, "val2017", 41)[0]["id"]
    assert first[1] != image_record(1, "train2017", 41)[1]


def test_extrapolation_from_the_measured_costs():
    stages = {
        "build-w0": {"per_image_s": 0.01, "setup_s": 2.0},
        "build-w2": {"start_workers_s": 5.0},
        "train-memory": {"samples_per_s": 100.0, "epoch_seconds": 20.0},
    }
    out = extrapolate(stages, train_count=1000, val_count=10)
    setup = 2.0 * TRAIN_IMAGES / 1000
    assert out["build_full_w1_hours"] == pytest.approx((setup + TRAIN_IMAGES * 0.01) / 3600)
    assert out["build_full_w16_hours"] == pytest.approx((setup + 5.0 + TRAIN_IMAGES * 0.01 / 16) / 3600)
    epoch = TRAIN_IMAGES / 100.0 + (20.0 - 10.0) * 5000 / 10  # training, then validation scaled to 5,000 images
    assert out["train-memory_100_epochs_days"] == pytest.approx(100 * epoch / 86400)
    # without a serial build (the full-size run built with 2 workers only), the fewest workers' per-image cost
    only_two = extrapolate({"build-w2": {"per_image_s": 0.03, "setup_s": 1.0, "start_workers_s": 5.0}}, 1000, 10)
    assert only_two["build_per_image_ms"] == pytest.approx(30.0)
    assert only_two["build_full_w1_hours"] == pytest.approx((1.0 * TRAIN_IMAGES / 1000 + TRAIN_IMAGES * 0.03) / 3600)


@pytest.mark.slow
def test_the_rehearsal_runs_end_to_end_and_resumes(tmp_path, capsys):
    args = [
        "--folder", str(tmp_path / "r"), "--scale", "0.0001", "--workers", "0,1", "--no-progress",
        "--results", str(tmp_path / "rehearsal.json"),
        "--train-args", f"--threads 1 --batch-size 4 --model-config {write_tiny_config(tmp_path)}",
    ]  # fmt: skip
    summary = rehearse_main(args)
    stages = summary["stages"]
    assert summary["train_images"] == 12 and stages["build-w0"]["built_items"] == 12
    assert stages["build-w1"]["cache_bytes"] == stages["build-w0"]["cache_bytes"]
    assert stages["train-mmap"]["samples_per_s"] > 0 and 0 <= stages["evaluate"]["t2i_R@1"] <= 1
    # the time to the first step is read from the training's progress bar, shown here or not (--no-progress)
    assert 0 < stages["train-memory"]["first_step_s"] < stages["train-memory"]["wall_s"]
    assert "| train-memory |" in capsys.readouterr().out
    state = json.loads((tmp_path / "r" / "state.json").read_text())
    del state["stages"]["evaluate"]  # as if killed during the last stage
    (tmp_path / "r" / "state.json").write_text(json.dumps(state))
    again = rehearse_main(args)
    assert again["stages"]["build-w0"] == stages["build-w0"]  # finished stages are kept, not rerun
    assert again["stages"]["evaluate"]["t2i_R@1"] == stages["evaluate"]["t2i_R@1"]
    # --redo of a training stage trains its epoch again (it resumed the finished run, timing nothing)
    redone = rehearse_main([*args, "--redo", "train-memory"])["stages"]["train-memory"]
    assert redone["resumed"] is False and 0 < redone["first_step_s"] < redone["wall_s"]


def test_coco_annotations_travel_to_workers_packed(tmp_path):
    """A builder goes to every cache-build worker: its annotations are held as compact JSON, the
    same values as the dicts, at a fraction of their memory once unpickled."""
    import pickle
    import tracemalloc

    from data.coco import CocoBuilder

    write_coco_split(tmp_path, "val2017", 40, progress=False)
    builder = CocoBuilder(tmp_path, "val2017")
    instances = json.loads((tmp_path / "annotations" / "instances_val2017.json").read_text())
    first = instances["images"][0]["id"]
    expected = [a for a in instances["annotations"] if a["image_id"] == first]
    assert builder.annotations[first] == expected and builder.annotations.count(first) == len(expected)
    as_dicts = pickle.dumps({k: builder.annotations[k] for k in builder.annotations})
    held = {}
    for name, blob in (("dicts", as_dicts), ("packed", pickle.dumps(builder))):
        tracemalloc.start()
        kept = pickle.loads(blob)
        held[name] = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        del kept
    assert held["packed"] < held["dicts"] / 2  # the whole builder, against its annotations alone as dicts


def test_a_disk_too_small_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    import bench.rehearse_coco as rehearse

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(rehearse.shutil, "disk_usage", lambda path: usage(2**30, 0, 2**30))
    with pytest.raises(SystemExit, match=r"1.0 GiB free and the rehearsal at scale 1.0 needs about 18.0 GiB more"):
        rehearse.main(["--folder", str(tmp_path / "r"), "--results", str(tmp_path / "out.json")])
    assert not (tmp_path / "r" / "coco").exists() and shutil is rehearse.shutil


def test_the_gpu_schedule_comes_from_bench_gpus_whole_step_in_each_mode(tmp_path):
    """bench_gpu.py writes {device, ..., eager: {image_side, whole_step}, compile: {...}}; the
    rehearsal read a top-level "image_side" that file never had (a KeyError once it existed)."""
    assert gpu_extrapolation(tmp_path / "absent.json") == {}
    path = tmp_path / "gpu.json"
    step = {"samples_per_s": 10000.0, "sync_check": "no host sync"}
    path.write_text(json.dumps({"device": "X", "processes": 1, "eager": {"image_side": {}, "whole_step": step}}))
    out = gpu_extrapolation(path)
    assert out == {
        "gpu_eager_samples_per_s": 10000.0,
        "gpu_eager_100_epochs_hours": PAPER_EPOCHS * TRAIN_IMAGES / 1e4 / 3600,
    }
    assert out["gpu_eager_100_epochs_hours"] == pytest.approx(0.3286, abs=1e-4)  # 100 x 118,287 at 10k/s
