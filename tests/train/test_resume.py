import json
import os
import shutil
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
        "--device",
        "cpu",  # exact equality of runs: no nondeterministic GPU kernels
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
    assert train_losses(out) == train_losses(tmp_path / "whole")


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


@pytest.mark.parametrize("precision, dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_reduced_precision_trains_on_the_cpu(tmp_path, precision, dtype):
    """The training steps run under autocast: their linear layers compute in the reduced dtype."""
    seen = set()

    def record(module, inputs, output):
        if module.training and isinstance(module, torch.nn.Linear):
            seen.add(output.dtype)

    hook = torch.nn.modules.module.register_module_forward_hook(record)
    try:
        final = main(argv(tmp_path, tmp_path / precision, "--precision", precision, "--epochs", "1"))
    finally:
        hook.remove()
    assert seen == {dtype}
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


def test_the_optimizer_is_fused_and_steps_as_the_per_tensor_loop():
    from models import GraphCLIP, load_config
    from train.loop import make_optimizer

    torch.manual_seed(0)
    model = GraphCLIP(load_config("semgraph-tiny"))
    fused = make_optimizer(model, lr=1e-3, weight_decay=0.1, text_lr_scale=0.1)
    assert all(group["fused"] for group in fused.param_groups)
    looped = torch.optim.AdamW(
        [
            {**{k: v for k, v in g.items() if k != "params"}, "params": [p.detach().clone() for p in g["params"]]}
            for g in fused.param_groups
        ]
    )
    for group in looped.param_groups:
        group["fused"] = None
    for _ in range(3):
        grads = [torch.randn_like(p) for g in fused.param_groups for p in g["params"]]
        for p, other, grad in zip(
            (p for g in fused.param_groups for p in g["params"]),
            (p for g in looped.param_groups for p in g["params"]),
            grads,
            strict=True,
        ):
            p.grad, other.grad = grad, grad.clone()
        fused.step()
        looped.step()
    for p, other in zip(
        (p for g in fused.param_groups for p in g["params"]),
        (p for g in looped.param_groups for p in g["params"]),
        strict=True,
    ):
        assert torch.allclose(p, other, atol=1e-6, rtol=1e-5)


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


def params_of(path):
    return torch.load(path, weights_only=True)["model"]


def assert_same_parameters(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def train_losses(out):
    return [json.loads(line)["train_loss"] for line in (out / "results.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("objective", ["clip", "mim", "two-twins"])
def test_a_run_stopped_inside_an_epoch_resumes_to_the_same_numbers(tmp_path, objective):
    """Stopped after step 4 (the first batch of epoch 2 of 3 steps each), resumed: every
    deterministic figure equals the uninterrupted run's, the epoch's train_loss, the
    MIM hiding draws and the twins drawn for the rest of the epoch included."""
    extra = ["--epochs", "2", "--save-every-steps", "1", "--keep-step-checkpoints", "0"]
    if objective == "mim":
        extra += ["--objective", "mim", "--mim-clusters", "4"]
    if objective == "two-twins":
        extra += ["--hard-negatives", "relation", "--hard-negative-images", "--twins-per-scene", "2"]
    whole = tmp_path / "whole"
    expected = main(argv(tmp_path, whole, *extra))
    stopped = tmp_path / "stopped"
    shutil.copytree(whole, stopped)
    (stopped / "checkpoints" / "step_4.pt").replace(stopped / "checkpoints" / "latest.pt")
    assert torch.load(stopped / "checkpoints" / "latest.pt", weights_only=True)["batch_in_epoch"] == 1
    resumed = main(["--resume", "latest", "--out", str(stopped), "--no-progress"])
    assert resumed == expected
    assert train_losses(stopped) == train_losses(whole)
    assert_same_parameters(params_of(stopped / "checkpoints/latest.pt"), params_of(whole / "checkpoints/latest.pt"))


def test_step_checkpoints_keep_the_newest_few(tmp_path):
    out = tmp_path / "run"
    main(argv(tmp_path, out, "--epochs", "2", "--save-every-steps", "1", "--keep-step-checkpoints", "2"))
    # steps 1, 2, 4, 5 are step files (3 and 6 end an epoch and are epoch files)
    names = sorted(path.name for path in (out / "checkpoints").iterdir())
    assert names == ["epoch_1.pt", "epoch_2.pt", "latest.pt", "step_4.pt", "step_5.pt"]


def test_pruning_never_deletes_the_newest_step_file_nor_later_ones(tmp_path):
    from train.rundir import RunDir

    run = RunDir(tmp_path / "run", keep_step_checkpoints=1)
    try:
        for step in (1, 2, 3):
            run.save_checkpoint({"step": step}, f"step_{step}")
        folder = tmp_path / "run" / "checkpoints"
        assert sorted(p.name for p in folder.iterdir()) == ["latest.pt", "step_3.pt"]
        assert torch.load(folder / "latest.pt") == torch.load(folder / "step_3.pt") == {"step": 3}
        # resumed from an earlier checkpoint: the files of the abandoned later steps stay until overwritten
        run.save_checkpoint({"step": 2}, "step_2")
        assert sorted(p.name for p in folder.iterdir()) == ["latest.pt", "step_2.pt", "step_3.pt"]
        run.save_checkpoint({"step": 1}, "epoch_1")
        assert sorted(p.name for p in folder.iterdir()) == ["epoch_1.pt", "latest.pt", "step_2.pt", "step_3.pt"]
    finally:
        run.close()
    assert not list(folder.glob("*.tmp")) and not list(folder.glob(".*"))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished 2-epoch run to copy and damage."""
    root = tmp_path_factory.mktemp("finished")
    main(argv(root, root / "run", "--epochs", "2"))
    return root / "run"


def copied(finished_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    return out


def resume_error(out, capsys, *extra):
    with pytest.raises(SystemExit) as stopped:
        main(["--resume", "latest", "--out", str(out), "--no-progress", *extra])
    assert stopped.value.code == 2
    return capsys.readouterr().err


def test_resume_refuses_another_world_size(finished_run, tmp_path, capsys, monkeypatch):
    out = copied(finished_run, tmp_path)
    monkeypatch.setenv("WORLD_SIZE", "2")
    err = resume_error(out, capsys)
    assert f"error: {out / 'params.json'}: the run was trained by 1 process(es) and this resume has 2" in err


def test_resume_refuses_another_batch_size(finished_run, tmp_path, capsys):
    out = copied(finished_run, tmp_path)
    err = resume_error(out, capsys, "--batch-size", "8")
    assert f"error: {out / 'params.json'}: the run was trained with batch size 16" in err
    assert "asks for --batch-size 8" in err


def test_a_damaged_checkpoint_is_named(finished_run, tmp_path, capsys):
    out = copied(finished_run, tmp_path)
    latest = out / "checkpoints" / "latest.pt"
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2])
    err = resume_error(out, capsys)
    assert f"error: {latest}: not a readable checkpoint" in err
    assert "the run's other checkpoints: epoch_1.pt, epoch_2.pt (resume one with --resume PATH)" in err


def test_a_damaged_results_line_is_named(finished_run, tmp_path, capsys):
    out = copied(finished_run, tmp_path)
    lines = (out / "results.jsonl").read_text().splitlines()
    (out / "results.jsonl").write_text(lines[0][:-7] + "\n" + lines[1] + "\n")
    err = resume_error(out, capsys)
    assert f"error: {out / 'results.jsonl'}: line 1 is not a JSON record" in err


def test_a_torn_last_results_line_is_dropped_and_said(finished_run, tmp_path):
    out = copied(finished_run, tmp_path)
    (out / "checkpoints" / "epoch_1.pt").replace(out / "checkpoints" / "latest.pt")
    lines = (out / "results.jsonl").read_text().splitlines()
    (out / "results.jsonl").write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])  # killed mid-write
    main(["--resume", "latest", "--out", str(out), "--no-progress"])
    again = (out / "results.jsonl").read_text().splitlines()
    assert again[0] == lines[0] and [json.loads(line)["epoch"] for line in again] == [1, 2]
    assert json.loads(again[1])["train_loss"] == json.loads(lines[1])["train_loss"]
    assert "dropped its last line, torn by an interrupted write" in (out / "out.log").read_text()


def test_temporary_files_of_interrupted_writes_are_removed_on_resume(finished_run, tmp_path):
    out = copied(finished_run, tmp_path)
    left = [out / ".params.json.k3j2.tmp", out / "checkpoints" / ".latest.pt.x9q1.tmp"]
    for path in left:
        path.write_bytes(b"half a file")
    main(["--resume", "latest", "--out", str(out), "--no-progress"])
    assert not any(path.exists() for path in left)
    assert f"removed {left[1]}, left by an interrupted write" in (out / "out.log").read_text()


def test_params_json_is_replaced_whole(finished_run, tmp_path, monkeypatch):
    """A resume rewrites params.json through a temporary file that replaces it, so a kill never leaves half."""
    import os

    out = copied(finished_run, tmp_path)
    replaced = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (replaced.append(Path(dst)), real_replace(src, dst)))
    main(["--resume", "latest", "--out", str(out), "--no-progress"])
    assert out / "params.json" in replaced
    assert json.loads((out / "params.json").read_text())["epochs"] == 2


def test_a_last_results_line_without_its_newline_is_kept_and_ended(tmp_path):
    from train.rundir import RunDir

    run = RunDir(tmp_path / "run")
    try:
        unended = '{"step": 3, "train_loss": 1.5}\n{"step": 6, "train_loss": 1.25}'
        (tmp_path / "run" / "results.jsonl").write_text(unended)
        assert run.truncate_results(6) == 0
        run.append_result({"step": 9, "train_loss": 1.0})
        records = [json.loads(line) for line in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
        assert [r["step"] for r in records] == [3, 6, 9]
        assert run.truncate_results(3) == 2
        assert (tmp_path / "run" / "results.jsonl").read_text() == '{"step": 3, "train_loss": 1.5}\n'
    finally:
        run.close()
