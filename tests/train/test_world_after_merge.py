"""World v4 through main's flag validation and run configuration (added when worldv4 was merged)."""

import json

import pytest


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--held-out-combinations"], "--held-out-combinations keeps world v4's held-out combinations"),
        (["--world", "v4", "--dataset", "coco", "--coco-root", "."], "--world applies to --dataset synthetic only"),
    ],
)
def test_world_flags_that_cannot_train_are_refused(tmp_path, capsys, flags, message):
    from train.run import main

    with pytest.raises(SystemExit):
        main([*flags, "--out", str(tmp_path / "run")])
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_retrieval_scores_a_v4_run_on_its_own_world_unless_told(tmp_path):
    from helpers import train_tiny

    from evaluate.retrieval import main as retrieval

    train_tiny(tmp_path, tmp_path / "run", "--world", "v4", "--held-out-combinations")
    checkpoint = str(tmp_path / "run" / "checkpoints" / "latest.pt")
    common = ["--checkpoint", checkpoint, "--eval-split", "val", "--val-size", "8"]
    retrieval([*common, "--output", str(tmp_path / "own.json")])
    retrieval([*common, "--world", "v3", "--no-held-out-combinations", "--output", str(tmp_path / "v3.json")])
    own, v3 = (json.loads((tmp_path / f"{name}.json").read_text()) for name in ("own", "v3"))
    assert not own.get("differs_from_run")
    assert v3["differs_from_run"]["world"] == {"run": "v4", "given": "v3"}
