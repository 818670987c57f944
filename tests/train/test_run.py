import json

import pytest
import torch
from helpers import TINY_MODEL

from graphs import SCHEMA_VERSION
from train.run import build_parser, main

TINY = TINY_MODEL


@pytest.fixture
def tiny_config(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY))
    return str(path)


def run(tmp_path, tiny_config, *extra):
    out = tmp_path / "run"
    argv = [
        "--train-size",
        "48",
        "--val-size",
        "16",
        "--batch-size",
        "16",
        "--epochs",
        "6",
        "--lr",
        "3e-3",
        "--warmup-steps",
        "2",
        "--model-config",
        tiny_config,
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]
    return out, main(argv)


def test_short_training_lowers_the_loss_and_writes_the_run_directory(tmp_path, tiny_config):
    out, final = run(tmp_path, tiny_config)
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert records[-1]["train_loss"] < records[0]["train_loss"] - 0.1
    for key in ("t2i_R@1", "t2i_R@5", "t2i_R@10", "i2t_R@1", "i2t_R@5", "i2t_R@10"):
        assert 0.0 <= records[-1][key] <= 1.0
        assert final[key] == records[-1][key]
    params = json.loads((out / "params.json").read_text())
    assert params["graph_type"] == "hetero" and params["model"]["graph"]["width"] == 16
    assert "epoch 6" in (out / "out.log").read_text()
    checkpoints = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert checkpoints == [f"epoch_{k}.pt" for k in range(1, 7)] + ["latest.pt"]
    state = torch.load(out / "checkpoints" / "latest.pt", weights_only=True)
    assert state["epoch"] == 6 and state["schema_version"] == SCHEMA_VERSION


@pytest.mark.parametrize("graph_type", ["homo", "patch"])
def test_other_graph_types_train(tmp_path, tiny_config, graph_type):
    _, final = run(tmp_path, tiny_config, "--graph-type", graph_type, "--epochs", "1")
    assert final["epoch"] == 1 and final["t2i_R@10"] >= 0


def test_drop_edge_types_and_bias_flags_reach_the_model(tmp_path, tiny_config):
    out, _ = run(tmp_path, tiny_config, "--drop-edge-types", "near,subject_of", "--edge-bias", "none", "--epochs", "1")
    params = json.loads((out / "params.json").read_text())
    assert params["drop_edge_types"] == ["near", "subject_of"]
    assert params["model"]["graph"]["edge_bias"] == "none"


def test_an_existing_run_directory_is_not_overwritten(tmp_path, tiny_config):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "results.jsonl").write_text("keep me\n")
    with pytest.raises(FileExistsError, match="already exists"):
        run(tmp_path, tiny_config)
    assert (tmp_path / "run" / "results.jsonl").read_text() == "keep me\n"


def test_unknown_edge_type_lists_the_valid_ones(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--drop-edge-types", "near,touches"])
    err = capsys.readouterr().err
    assert "unknown edge type 'touches'" in err
    assert "subject_of, has_object, related, shares, overlaps, near, context" in err


@pytest.mark.parametrize("flag, value", [("--graph-type", "grid"), ("--edge-bias", "maybe"), ("--device", "tpu")])
def test_unknown_choices_are_rejected(capsys, flag, value):
    with pytest.raises(SystemExit):
        build_parser().parse_args([flag, value])
    assert "invalid choice" in capsys.readouterr().err


def test_unknown_model_config_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="^error: unknown model config 'huge'"):
        main(
            [
                "--model-config",
                "huge",
                "--train-size",
                "4",
                "--val-size",
                "4",
                "--out",
                str(tmp_path / "r"),
                "--no-progress",
            ]
        )


def test_training_on_a_coco_folder(tmp_path, tiny_config):
    from helpers import write_coco

    write_coco(tmp_path / "coco")
    out = tmp_path / "coco-run"
    final = main(
        [
            "--dataset",
            "coco",
            "--coco-root",
            str(tmp_path / "coco"),
            "--split",
            "val2017",
            "--val-split",
            "val2017",
            "--batch-size",
            "2",
            "--epochs",
            "1",
            "--model-config",
            tiny_config,
            "--out",
            str(out),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--no-progress",
        ]
    )
    assert final["epoch"] == 1 and 0 <= final["t2i_R@1"] <= 1
    assert json.loads((out / "params.json").read_text())["dataset"] == "coco"


def test_edge_bias_init_flag_reaches_the_model(tmp_path):
    from helpers import train_tiny

    out = tmp_path / "zero"
    train_tiny(tmp_path, out, "--edge-bias-init", "zero")
    assert json.loads((out / "params.json").read_text())["model"]["graph"]["edge_bias_init"] == "zero"


def test_the_composition_config_reads_as_the_readme_says():
    from pathlib import Path

    from train.run import parse_args

    path = Path(__file__).parents[2] / "train" / "configs" / "composition.yaml"
    args, _ = parse_args(["--config", str(path)])
    assert args.hard_negatives == ["relation", "attribute"] and args.hard_negative_images is True
    assert (args.epochs, args.batch_size, args.train_size, args.graph_type) == (28, 128, 8000, "hetero")
    args, _ = parse_args(["--config", str(path), "--epochs", "3"])
    assert args.epochs == 3  # the command line wins
