import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import TINY_MODEL

from train.run import main

ROOT = Path(__file__).resolve().parents[2]
TINY = TINY_MODEL


def argv(tmp_path, out, *extra):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    return [
        "--train-size",
        "48",
        "--val-size",
        "16",
        "--batch-size",
        "16",
        "--epochs",
        "3",
        "--lr",
        "3e-3",
        "--warmup-steps",
        "2",
        "--model-config",
        str(config),
        "--out",
        str(out),
        "--no-progress",
        "--threads",
        "1",
        *extra,
    ]


def test_resume_from_the_end_of_an_epoch_continues_exactly(tmp_path):
    out = tmp_path / "run"
    whole = main(argv(tmp_path, out))
    records = (out / "results.jsonl").read_text()
    # back to the state after epoch 1, as if the run had stopped there
    (out / "checkpoints" / "epoch_1.pt").replace(out / "checkpoints" / "latest.pt")
    resumed = main(["--resume", "latest", "--out", str(out), "--no-progress"])
    assert resumed == whole
    assert (out / "results.jsonl").read_text() != "" and [
        json.loads(line)["epoch"] for line in (out / "results.jsonl").read_text().splitlines()
    ] == [1, 2, 3]
    assert [json.loads(r)["train_loss"] for r in records.splitlines()] == [
        json.loads(r)["train_loss"] for r in (out / "results.jsonl").read_text().splitlines()
    ]


@pytest.mark.slow
def test_a_run_killed_by_a_signal_resumes_to_the_same_metrics(tmp_path):
    whole = main(argv(tmp_path, tmp_path / "whole", "--save-every-steps", "1"))
    out = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "train" / "run.py"), *argv(tmp_path, out, "--save-every-steps", "1")],
        cwd=ROOT,
        env={**os.environ},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 120
    while not (out / "checkpoints" / "step_5.pt").exists():
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        assert time.time() < deadline, "the run never reached step 5"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stderr.close()
    state = torch.load(out / "checkpoints" / "latest.pt", weights_only=True)
    assert 4 <= state["step"] < 9 and not (out / "checkpoints" / "epoch_3.pt").exists(), "killed in the middle"
    resumed = main(["--resume", "latest", "--out", str(out), "--no-progress"])
    assert resumed == whole


def test_resume_needs_a_checkpoint(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--resume", "latest", "--out", str(tmp_path / "nothing")])
    assert "no checkpoint to resume from" in capsys.readouterr().err


def test_config_file_with_command_line_override(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("epochs: 2\nbatch-size: 8\nedge_bias: ranked\ndrop-edge-types: near,overlaps\n")
    out = tmp_path / "run"
    final = main([*argv(tmp_path, out), "--config", str(config), "--epochs", "1"])
    params = json.loads((out / "params.json").read_text())
    assert final["epoch"] == 1 and params["epochs"] == 1  # the command line wins
    assert params["batch_size"] == 16 and params["edge_bias"] == "ranked"
    assert params["drop_edge_types"] == ["near", "overlaps"]
    # params.json is itself a config: the run can be repeated from it
    again = main(["--config", str(out / "params.json"), "--out", str(tmp_path / "again")])
    assert again == final


def test_config_file_errors_name_the_file_and_flag(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("epochz: 3\n")
    with pytest.raises(SystemExit):
        main(["--config", str(config)])
    assert "bad.yaml: unknown flag 'epochz'" in capsys.readouterr().err
    config.write_text("graph-type: grid\n")
    with pytest.raises(SystemExit):
        main(["--config", str(config)])
    assert "graph_type must be one of hetero, homo, patch" in capsys.readouterr().err


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_trains_on_the_cpu(tmp_path, precision):
    final = main(argv(tmp_path, tmp_path / precision, "--precision", precision, "--epochs", "1"))
    assert 0 <= final["t2i_R@1"] <= 1


def test_freeze_text_keeps_the_text_tower_and_trains_the_rest(tmp_path):
    out = tmp_path / "frozen"
    main(argv(tmp_path, out, "--freeze-text", "--epochs", "1", "--save-every-steps", "1"))
    first = torch.load(out / "checkpoints" / "step_1.pt", weights_only=True)["model"]
    last = torch.load(out / "checkpoints" / "latest.pt", weights_only=True)["model"]
    text = [k for k in last if k.startswith("text_encoder.")]
    graph = [k for k in last if k.startswith("graph_encoder.") and last[k].is_floating_point()]
    assert text and all(torch.equal(first[k], last[k]) for k in text)
    assert any(not torch.equal(first[k], last[k]) for k in graph)


def test_text_learning_rate_scale_makes_its_own_parameter_groups():
    from models import GraphCLIP, load_config
    from train.loop import make_optimizer

    model = GraphCLIP(load_config("semgraph-tiny"))
    optimizer = make_optimizer(model, lr=1e-3, weight_decay=0.1, text_lr_scale=0.1)
    text_ids = {id(p) for p in model.text_encoder.parameters()}
    for group in optimizer.param_groups:
        is_text = {id(p) in text_ids for p in group["params"]}
        assert len(is_text) == 1
        assert group["lr"] == pytest.approx(1e-4 if is_text.pop() else 1e-3)
    no_decay = {id(p) for g in optimizer.param_groups if g["weight_decay"] == 0 for p in g["params"]}
    assert id(model.logit_scale) in no_decay and id(model.graph_encoder.norm.weight) in no_decay
    assert id(model.graph_encoder.head.weight) not in no_decay


def test_tensorboard_logging_or_a_clear_message(tmp_path, capsys):
    out = tmp_path / "tb"
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(SystemExit):  # refused before any data is built
            main(argv(tmp_path, out, "--epochs", "1", "--report-to", "tensorboard"))
        assert "needs the tensorboard package" in capsys.readouterr().err
    else:
        main(argv(tmp_path, out, "--epochs", "1", "--report-to", "tensorboard"))
        assert list((out / "tensorboard").glob("events.out.tfevents.*"))


def test_data_on_device_trains_exactly_like_the_host_path(tmp_path):
    host = main(argv(tmp_path, tmp_path / "host", "--epochs", "2"))
    resident = main(argv(tmp_path, tmp_path / "resident", "--epochs", "2", "--data-on-device"))
    assert resident == host
