"""A training killed (as by kill -9) at chosen points resumes to exactly the uninterrupted run.

The kills come from the SEMGRAPH_FAULT hook of data/atomic.py: a subprocess
running train/run.py dies with status 137 the N-th time it reaches a point.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import write_tiny_config

from train.run import main

ROOT = Path(__file__).resolve().parents[2]


def argv(root, out, cache):
    return [
        "--train-size",
        "32",
        "--val-size",
        "8",
        "--batch-size",
        "8",
        "--epochs",
        "2",
        "--lr",
        "3e-3",
        "--warmup-steps",
        "2",
        "--model-config",
        str(root / "tiny.json"),
        "--out",
        str(out),
        "--cache-dir",
        str(cache),
        "--save-every-steps",
        "1",
        "--no-progress",
        "--threads",
        "1",
        "--device",
        "cpu",  # exact equality of runs: no nondeterministic GPU kernels
    ]


def killed_run(root, out, cache, fault):
    """Run train/run.py in a subprocess that dies at `fault`; return its exit status."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "train" / "run.py"), *argv(root, out, cache)],
        cwd=ROOT,
        env={**os.environ, "SEMGRAPH_FAULT": fault, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 137, done.stderr[-2000:]
    return done


def model_of(out):
    return torch.load(out / "checkpoints" / "latest.pt", weights_only=True)["model"]


def losses(out):
    return [json.loads(line)["train_loss"] for line in (out / "results.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    write_tiny_config(root)
    out = root / "whole"
    return root, out, main(argv(root, out, root / "cache"))


# 4 steps an epoch; steps 1-3 and 5-7 write step files, 4 and 8 epoch files; each save writes two files
@pytest.mark.slow
@pytest.mark.parametrize(
    "fault, resumed_at",
    [
        # inside step 6 (epoch 2), after its backward pass
        ("step:6", "at epoch 2, batch 1 (step 5)\n"),
        # epoch 1's result line and epoch_1.pt written, latest.pt not yet replaced: the line is written again
        ("checkpoint_write:8", "at epoch 1, batch 3 (step 3); dropped 1 results past that step\n"),
        # epoch 2 trained, its validation begun
        ("evaluate:2", "at epoch 2, batch 3 (step 7)\n"),
    ],
)
def test_a_killed_run_resumes_to_the_uninterrupted_result(uninterrupted, tmp_path, fault, resumed_at):
    root, whole, expected = uninterrupted
    out = tmp_path / "killed"
    killed_run(root, out, root / "cache", fault)
    resumed = main(["--resume", "latest", "--out", str(out), "--no-progress"])
    assert resumed_at in (out / "out.log").read_text()
    assert resumed == expected
    assert losses(out) == losses(whole)
    expected_model, model = model_of(whole), model_of(out)
    assert all(torch.equal(model[key], value) for key, value in expected_model.items())
    assert not list((out / "checkpoints").glob(".*.tmp")), "the interrupted write's temporary file is cleaned up"


@pytest.mark.slow
def test_a_run_killed_while_writing_the_graph_cache_starts_again_on_the_built_shards(uninterrupted, tmp_path, caplog):
    root, whole, expected = uninterrupted
    cache = tmp_path / "cache"
    killed_run(root, tmp_path / "killed", cache, "shard_write:2")  # the training set's shard is in place
    shards = sorted(p.name for p in cache.rglob("shard_*"))
    assert shards == ["shard_00000.json", "shard_00000.pt"], shards
    assert len(list(cache.rglob(".shard_*.tmp"))) == 1  # the validation shard, cut off before it was moved in
    again = main(argv(root, tmp_path / "again", cache))
    assert again == expected and not list(cache.rglob(".shard_*.tmp"))
    assert all(torch.equal(model_of(tmp_path / "again")[k], v) for k, v in model_of(whole).items())
    # a damaged shard is found by its checksum, named, and rebuilt
    shard = next(cache.rglob("shard_00000.pt"))
    shard.write_bytes(b"\0" * 64 + shard.read_bytes()[64:])
    third = main(argv(root, tmp_path / "third", cache))
    assert third == expected
    assert f"cache shard {shard} is corrupt (checksum mismatch); rebuilding it" in caplog.text
