"""Evaluators take the run's own configuration from its checkpoint (evaluate.run_config)."""

import json

import pytest
from helpers import train_tiny

from evaluate.retrieval import main as retrieval_main


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ablated")
    train_tiny(root, root / "run", "--drop-edge-types", "related,near", "--val-size", "96", "--seed", "3")
    return root / "run"


def last_result(run):
    return json.loads((run / "results.jsonl").read_text().splitlines()[-1])


def same_as_logged(metrics, run) -> bool:
    """Every retrieval figure of the run's last validation line, equal to the last digit."""
    logged = {k: v for k, v in last_result(run).items() if k.startswith(("t2i_", "i2t_"))}
    assert len(logged) == 20  # both protocols: every caption, and one caption per image (_1cap)
    return all(metrics[k] == v for k, v in logged.items())


def test_retrieval_with_no_flag_reproduces_the_runs_last_validation_exactly(run):
    metrics = retrieval_main(["--checkpoint", str(run / "checkpoints" / "latest.pt"), "--eval-split", "val"])
    assert same_as_logged(metrics, run)
    written = json.loads((run / "checkpoints" / "retrieval_synthetic_val.json").read_text())
    assert written["images"] == 96 and written["differs_from_run"] == {}
    assert written["override_checkpoint_config"] is False


def test_a_flag_contradicting_the_run_is_refused_naming_each_flag(run):
    checkpoint = str(run / "checkpoints" / "latest.pt")
    with pytest.raises(SystemExit) as refused:
        retrieval_main(["--checkpoint", checkpoint, "--drop-edge-types", "near", "--max-relations", "5"])
    message = str(refused.value.code)
    assert message.startswith("error: flags contradict how the checkpoint's run built its graphs")
    assert "--drop-edge-types: the run used related,near, given near" in message
    assert "--max-relations: the run used 20, given 5" in message
    assert "--override-checkpoint-config" in message


def test_the_runs_own_values_given_again_are_no_contradiction(run, tmp_path):
    output = tmp_path / "same.json"
    retrieval_main(
        [
            "--checkpoint",
            str(run / "checkpoints" / "latest.pt"),
            "--drop-edge-types",
            "near,related",
            "--graph-type",
            "hetero",
            "--eval-split",
            "val",
            "--output",
            str(output),
        ]
    )
    assert json.loads(output.read_text())["differs_from_run"] == {}


def test_an_override_is_printed_and_recorded(run, tmp_path, capsys):
    output = tmp_path / "override.json"
    metrics = retrieval_main(
        [
            "--checkpoint",
            str(run / "checkpoints" / "latest.pt"),
            "--drop-edge-types",
            "near",
            "--val-size",
            "12",
            "--eval-split",
            "val",
            "--override-checkpoint-config",
            "--output",
            str(output),
        ]
    )
    out = capsys.readouterr().out
    assert "OVERRIDDEN" in out and "--drop-edge-types near (the run: related,near)" in out
    assert "differs from the run: --val-size 12 (the run: 96)" in out
    written = json.loads(output.read_text())
    assert written["override_checkpoint_config"] is True and written["images"] == 12
    assert written["differs_from_run"] == {
        "drop_edge_types": {"run": ["related", "near"], "given": ["near"]},
        "val_size": {"run": 96, "given": 12},
    }
    assert written["t2i_R@1"] == metrics["t2i_R@1"]


def test_the_runs_seed_chooses_the_world(run, tmp_path):
    """The run trained on world seed 3: its validation images are seed 3's, not seed 0's."""
    checkpoint = str(run / "checkpoints" / "latest.pt")
    own = retrieval_main(["--checkpoint", checkpoint, "--eval-split", "val", "--output", str(tmp_path / "a.json")])
    other = retrieval_main(
        ["--checkpoint", checkpoint, "--eval-split", "val", "--seed", "0", "--output", str(tmp_path / "b.json")]
    )
    assert same_as_logged(own, run) and not same_as_logged(other, run)
    assert json.loads((tmp_path / "b.json").read_text())["differs_from_run"] == {"seed": {"run": 3, "given": 0}}


def test_a_bad_image_in_the_evaluated_data_is_an_error_naming_it(run, tmp_path, capsys):
    """Scored on another dataset than the run's (recorded), whose one image is broken: no traceback."""
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "torn.png").write_bytes(b"not a png")
    (tmp_path / "captions.jsonl").write_text(json.dumps({"file_name": "torn.png", "captions": ["a photo"]}) + "\n")
    argv = ["--checkpoint", str(run / "checkpoints" / "latest.pt"), "--dataset", "images", "--no-cache"]
    argv += ["--images", str(tmp_path / "images"), "--captions", str(tmp_path / "captions.jsonl")]
    with pytest.raises(SystemExit) as error:
        retrieval_main(argv)
    assert str(error.value.code).startswith("error: ") and "torn.png cannot be decoded" in str(error.value.code)
    assert "Traceback" not in capsys.readouterr().err


def settings(params, *flags):
    from evaluate.retrieval import build_parser
    from evaluate.run_config import settings_from_run

    parser = build_parser()
    argv = ["--checkpoint", "run.pt", *flags]
    return settings_from_run(parser, argv, parser.parse_args(argv), params, "run/params.json")


def test_weights_are_the_same_setting_when_their_bytes_are(tmp_path):
    from evaluate.run_config import ContradictsRun

    (tmp_path / "a.pt").write_bytes(b"weights")
    (tmp_path / "moved.pt").write_bytes(b"weights")
    (tmp_path / "other.pt").write_bytes(b"other weights")
    params = {
        "dataset": "images",
        "featurizer": "backbone",
        "backbone": "timm:x",
        "backbone_weights": str(tmp_path / "a.pt"),
    }
    assert settings(params, "--backbone-weights", str(tmp_path / "moved.pt")).differs == {}
    with pytest.raises(ContradictsRun, match="--backbone-weights: the run used .*a.pt, given .*other.pt"):
        settings(params, "--backbone-weights", str(tmp_path / "other.pt"))


def test_a_token_source_contradicts_only_a_run_that_used_one():
    from evaluate.run_config import ContradictsRun

    synthetic = {"dataset": "synthetic", "token_source": "felzenszwalb", "val_size": 50, "batch_size": 32}
    chosen = settings(synthetic, "--token-source", "slic")
    assert chosen.differs == {} and chosen.args.token_source == "slic"
    assert chosen.args.val_size == 50 and chosen.args.batch_size == 32  # the run's, by default
    with pytest.raises(ContradictsRun, match="--token-source: the run used felzenszwalb, given slic"):
        settings({**synthetic, "dataset": "images"}, "--token-source", "slic")


def test_params_come_from_the_run_directory_when_the_checkpoint_lacks_them(tmp_path):
    from evaluate.run_config import options_from_params, run_params

    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "params.json").write_text(json.dumps({"drop_edge_types": ["near"], "no_cache": True}))
    params, source = run_params({"graph_type": "homo"}, tmp_path / "checkpoints" / "latest.pt")
    assert params == {"drop_edge_types": ["near"], "no_cache": True, "graph_type": "homo"}
    assert source == str(tmp_path / "params.json")
    options = options_from_params(params)
    assert (options.graph_type, options.drop_edge_types, options.use_cache) == ("homo", ["near"], False)


def test_probe_reads_the_run_and_refuses_what_contradicts_it(run, tmp_path):
    from evaluate.probe import main as probe_main

    checkpoint = str(run / "checkpoints" / "latest.pt")
    output = tmp_path / "probe.json"
    result = probe_main(["--checkpoint", checkpoint, "--output", str(output)])
    written = json.loads(output.read_text())
    assert written["image_probe_acc"] == result["image_probe_acc"] and written["differs_from_run"] == {}
    with pytest.raises(SystemExit, match="--graph-type: the run used hetero, given patch"):
        probe_main(["--checkpoint", checkpoint, "--graph-type", "patch"])


def test_compositional_takes_the_edge_schema_flag_and_refuses_one_the_run_did_not_use(run):
    # evaluate.compositional had no --edge-schema (the issue asks for it on every evaluator)
    from evaluate.compositional import main as compositional_main

    checkpoint = str(run / "checkpoints" / "latest.pt")
    with pytest.raises(SystemExit) as refused:
        compositional_main(["--checkpoint", checkpoint, "--suite", "relation-swap", "--edge-schema", "seed"])
    message = str(refused.value.code)
    assert message.startswith("error: flags contradict how the checkpoint's run built its graphs")
    assert "--edge-schema: the run used semgraph, given seed" in message
