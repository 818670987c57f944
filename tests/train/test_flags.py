"""The flag set is checked before any data is built; data errors end in `error: ...`, not a traceback."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import write_coco, write_tiny_config
from torch_geometric.data import HeteroData

from train.run import main

ROOT = Path(__file__).parents[2]


def tiny_argv(tmp_path, *extra, size: int = 16):
    return [
        "--train-size",
        str(size),
        "--val-size",
        "4",
        "--batch-size",
        "8",
        "--epochs",
        "1",
        "--model-config",
        str(write_tiny_config(tmp_path)),
        "--out",
        str(tmp_path / "run"),
        "--no-progress",
        "--threads",
        "1",
        *extra,
    ]


REFUSED = [
    (["--graph-type", "homo", "--objective", "mim"], "homo graphs have one node type and no object tokens to hide"),
    (["--graph-type", "homo", "--mim-weight", "0.5"], "no object tokens to hide"),
    (["--graph-type", "homo", "--tokenprop-weight", "0.5"], "--tokenprop-weight reconstructs"),
    (["--vision", "timm:resnet10t", "--graph-type", "homo"], "--vision replaces it with a pixel model"),
    (["--vision", "timm:resnet10t", "--drop-edge-types", "near"], "--drop-edge-types shapes the graph encoder"),
    (["--vision", "timm:resnet10t", "--mim-weight", "0.5"], "--objective mim / --mim-weight shapes the graph"),
    (["--vision", "resnet10t"], "must be timm:NAME or vit:PRESET"),
    (["--mmap", "--dataset", "images", "--images", "i", "--captions", "c"], "--mmap cannot serve --dataset images"),
    (["--mmap", "--no-cache"], "--mmap maps the graph cache"),
    (["--workers", "2", "--no-cache"], "--workers build cache shards"),
    (["--objective", "mim", "--hard-negatives", "relation"], "--objective mim reads no text"),
    (["--objective", "mim", "--mim-weight", "0.5"], "--objective mim trains MIM alone"),
    (["--hard-negatives", "relation", "--dataset", "coco", "--coco-root", "x"], "--dataset coco has none"),
    (["--hard-negative-images", "--data-on-device"], "drop --data-on-device"),
    (["--twins-per-scene", "2"], "--twins-per-scene 2 makes hard-negative images (twins): it needs"),
    (["--twins-per-scene", "0", "--hard-negative-images"], "--twins-per-scene 0 must be at least 1"),
    (["--twin-caption-share", "0.5"], "--twin-caption-share 0.5 tells a scene what its twin reverses: it needs"),
    (["--twin-caption-share", "1.5", "--hard-negative-images"], "--twin-caption-share 1.5: a share of the scenes, in"),
    (["--twin-caption-mode", "extra", "--hard-negative-images"], "--twin-caption-mode extra says how --twin-caption"),
    (["--hard-negatives", "relation", "--data-on-device"], "drop --data-on-device"),
    (["--data-on-device", "--graph-type", "homo"], "--data-on-device serves hetero and patch graphs"),
    (["--featurizer", "backbone"], "--featurizer backbone needs --backbone"),
    (["--backbone", "timm:resnet18"], "--backbone is read by --featurizer backbone only"),
    (["--featurizer", "precomputed"], "it needs --dataset images --token-source tokens"),
    (["--featurizer", "backbone", "--backbone", "timm:resnet18", "--graph-type", "patch"], "patch graphs have none"),
    (["--graph-type", "patch", "--drop-edge-types", "related"], "patch graphs have no such edges"),
    (["--coco-root", "x"], "--coco-root applies to --dataset coco only"),
    (["--relations", "vg", "--dataset", "coco", "--coco-root", "x"], "--relations vg needs --vg-dir"),
    (["--dataset", "coco"], "--dataset coco needs --coco-root"),
    (["--dataset", "coco", "--coco-root", "x", "--train-size", "8"], "--train-size applies to --dataset synthetic"),
    (["--dataset", "images"], "--dataset images needs --images DIR and --captions FILE"),
    (["--token-source", "slic"], "--token-source applies to --dataset images only"),
    (["--tokens-file", "t.jsonl"], "--tokens-file applies to --dataset images only"),
    (["--mim-clusters", "8"], "read by MIM only"),
    (["--max-relations", "5"], "the synthetic world's relations are its scenes' own"),
    (["--freeze-text", "--text-lr-scale", "0.1"], "--text-lr-scale has no effect with --freeze-text"),
    (["--edge-bias", "none", "--edge-bias-init", "zero"], "--edge-bias none learns none"),
    (["--epochs", "0"], "--epochs 0 must be at least 1"),
    (["--lr", "0"], "--lr 0.0 must be above 0"),
    (["--mim-weight", "0.5", "--mim-ratio", "1.5"], "--mim-ratio 1.5 must be in (0, 1]"),
    (["--init-from", "missing.pt"], "--init-from missing.pt does not exist"),
    (
        ["--featurizer", "backbone", "--backbone", "timm:resnet18", "--backbone-weights", "no.pt"],
        "--backbone-weights no.pt does not exist",
    ),
]


@pytest.mark.parametrize("flags, message", REFUSED, ids=[" ".join(f) for f, _ in REFUSED])
def test_combinations_that_cannot_train_are_refused_at_start(tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as exit_info:
        main(tiny_argv(tmp_path, *flags))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "error: " in err and message in err
    assert not (tmp_path / "run").exists()  # nothing was written, nothing built


def test_ddp_with_mim_pretraining_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SystemExit):
        main(tiny_argv(tmp_path, "--objective", "mim"))
    assert "DistributedDataParallel refuses (this run has 2 processes)" in capsys.readouterr().err


def test_a_resumed_run_is_checked_with_its_saved_flags(tmp_path, capsys):
    """Flags given again on --resume are merged with params.json, then the whole set is checked."""
    main(tiny_argv(tmp_path, "--mim-weight", "0.5", "--mim-clusters", "4", size=8))
    with pytest.raises(SystemExit):
        main(["--resume", "latest", "--out", str(tmp_path / "run"), "--graph-type", "homo"])
    assert "no object tokens to hide" in capsys.readouterr().err


# --- every training option through --mmap and through --data-on-device --------------------------------------


def relation_edges(batch) -> int:
    return batch["object", "related", "object"].edge_index.size(1)


def has_negative_texts(seen) -> bool:
    return any(getattr(b, "negative_texts", None) for b in seen["batches"])


OPTIONS = {
    "plain": ([], lambda seen: relation_edges(seen["batches"][0]) > 0),
    "hard-negatives": (["--hard-negatives", "relation,attribute"], has_negative_texts),
    "hard-negative-images": (
        ["--hard-negative-images"],
        lambda seen: any(getattr(b, "twins", None) is not None for b in seen["batches"]),
    ),
    "homo": (["--graph-type", "homo"], lambda seen: not isinstance(seen["batches"][0], HeteroData)),
    "patch": (
        ["--graph-type", "patch"],
        lambda seen: seen["batches"][0]["object"].num_nodes == 64 * 8 and seen["batches"][0]["relation"].num_nodes == 0,
    ),
    "drop-edge-types": (["--drop-edge-types", "related"], lambda seen: relation_edges(seen["batches"][0]) == 0),
    "mim": (
        ["--mim-weight", "0.5", "--mim-clusters", "4"],
        lambda seen: seen["objectives"].centroids is not None and seen["objectives"].centroids.shape[0] == 4,
    ),
    "objective-mim": (
        ["--objective", "mim", "--mim-clusters", "4"],
        lambda seen: not seen["objectives"].contrastive and seen["objectives"].centroids is not None,
    ),
    "tokenprop": (["--tokenprop-weight", "0.5"], lambda seen: seen["objectives"].tokenprop_weight == 0.5),
    "token-norm": (["--token-norm", "moto"], lambda seen: seen["params"]["model"]["graph"]["token_norm"] == "moto"),
    "backbone": (
        ["--featurizer", "backbone", "--backbone", "timm:resnet10t"],
        lambda seen: seen["batches"][0]["object"].x.shape[1] == 512,  # resnet10t's channels, not pixel crops
    ),
    "edge-bias": (["--edge-bias", "none"], lambda seen: seen["params"]["model"]["graph"]["edge_bias"] == "none"),
    "save-every-steps": (
        ["--save-every-steps", "1"],
        lambda seen: (seen["run"] / "checkpoints" / "step_1.pt").is_file(),
    ),
    "vision": (
        ["--vision", "timm:resnet10t", "--vision-image-size", "32"],
        lambda seen: tuple(seen["batches"][0]["image"].pixels.shape[1:]) == (3, 32, 32),
    ),
}
# What a path cannot serve, and the message that says so.
NOT_SERVED = {
    ("data-on-device", "hard-negatives"): "drop --data-on-device",
    ("data-on-device", "hard-negative-images"): "drop --data-on-device",
    ("data-on-device", "homo"): "--data-on-device serves hetero and patch graphs",
}


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("graphs")


@pytest.mark.slow
@pytest.mark.parametrize("path", ["mmap", "data-on-device"])
@pytest.mark.parametrize("option", list(OPTIONS))
def test_every_option_works_through_each_data_path_or_is_refused(
    tmp_path, capsys, monkeypatch, shared_cache, path, option
):
    import train.trainer
    from data.loader import GraphLoader

    flags, happened = OPTIONS[option]
    argv = tiny_argv(tmp_path, f"--{path}", "--cache-dir", str(shared_cache), *flags)
    if (path, option) in NOT_SERVED:
        with pytest.raises(SystemExit):
            main(argv)
        assert NOT_SERVED[path, option] in capsys.readouterr().err
        return
    seen = {"batches": []}
    iterate, train_epoch = GraphLoader.iterate, train.trainer.train_epoch

    def recording_iterate(self, start=0):
        for batch in iterate(self, start):
            seen["batches"].append(batch)
            yield batch

    def recording_train_epoch(*args, **kwargs):
        seen["objectives"] = kwargs["objectives"]
        return train_epoch(*args, **kwargs)

    monkeypatch.setattr(GraphLoader, "iterate", recording_iterate)
    monkeypatch.setattr(train.trainer, "train_epoch", recording_train_epoch)
    final = main(argv)
    seen["params"] = json.loads((tmp_path / "run" / "params.json").read_text())
    seen["run"] = tmp_path / "run"
    assert final["epoch"] == 1 and seen["batches"]
    assert seen["params"][path.replace("-", "_")] is True
    assert happened(seen), option


# --- bad input: error, not a traceback ------------------------------------------------------------------------


def coco_argv(tmp_path, root, *extra):
    return tiny_argv(
        tmp_path,
        "--dataset",
        "coco",
        "--coco-root",
        str(root),
        "--split",
        "val2017",
        "--val-split",
        "val2017",
        "--cache-dir",
        str(tmp_path / "cache"),
        *extra,
    )[4:]  # no --train-size, --val-size on COCO


def test_a_coco_annotation_naming_an_unknown_image_is_an_error_without_traceback(tmp_path):
    bad = {"id": 77, "image_id": 9, "category_id": 1, "segmentation": [[1, 1, 5, 1, 5, 5]]}
    write_coco(tmp_path / "coco", extra_annotations=[bad])
    argv = coco_argv(tmp_path, tmp_path / "coco", "--batch-size", "2")
    result = subprocess.run(
        [sys.executable, str(ROOT / "train" / "run.py"), *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    assert "error: " in result.stderr and "instances_val2017.json: annotation 77 names unknown image 9" in result.stderr


def test_a_corrupt_image_names_the_file(tmp_path):
    names = write_coco(tmp_path / "coco", corrupt=(3,))
    with pytest.raises(SystemExit) as exit_info:
        main(coco_argv(tmp_path, tmp_path / "coco", "--batch-size", "2"))
    message = str(exit_info.value)
    assert message.startswith("error: ") and f"{names[3]} cannot be decoded" in message
    assert "--on-bad-image skip" in message
    final = main(
        coco_argv(
            tmp_path,
            tmp_path / "coco",
            "--batch-size",
            "2",
            "--on-bad-image",
            "skip",
            "--out",
            str(tmp_path / "skipped"),
        )
    )
    assert final["epoch"] == 1


def test_a_missing_annotation_file_is_an_error(tmp_path):
    with pytest.raises(SystemExit, match=r"^error: COCO annotation file .*instances_val2017.json does not exist"):
        main(coco_argv(tmp_path, tmp_path / "nowhere"))
