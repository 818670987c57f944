import json

import pytest
import torch
from helpers import train_tiny

from evaluate.retrieval import main as retrieval_main


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    train_tiny(root, root / "run")
    return root / "run" / "checkpoints" / "latest.pt"


def test_retrieval_cli_prints_and_writes_metrics(checkpoint, capsys, tmp_path):
    output = tmp_path / "metrics.json"
    metrics = retrieval_main(
        ["--checkpoint", str(checkpoint), "--eval-split", "test", "--val-size", "12", "--output", str(output)]
    )
    out = capsys.readouterr().out
    assert "t2i" in out and "one caption per image (seed 0), the seed paper's protocol" in out
    written = json.loads(output.read_text())
    assert written["images"] == 12 and written["t2i_R@1"] == metrics["t2i_R@1"]
    assert written["caption_seed_1cap"] == 0 and written["t2i_R@1_1cap"] == metrics["t2i_R@1_1cap"]
    assert set(metrics) >= {"t2i_R@1", "t2i_R@5", "t2i_R@10", "i2t_R@1", "t2i_mean_rank", "i2t_median_rank"}


def test_the_trainer_records_both_retrieval_protocols(checkpoint):
    record = json.loads((checkpoint.parents[1] / "results.jsonl").read_text().splitlines()[-1])
    for direction in ("t2i", "i2t"):
        assert 0 <= record[f"{direction}_R@1"] <= 1 and 0 <= record[f"{direction}_R@1_1cap"] <= 1
        assert record[f"{direction}_median_rank_1cap"] >= 1


def test_a_checkpoint_of_another_shape_is_refused_with_what_differs(checkpoint, tmp_path):
    state = torch.load(checkpoint, weights_only=True)
    state["model"]["graph_encoder.head.weight"] = torch.zeros(3, 3)
    del state["model"]["logit_scale"]
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(SystemExit, match=r"1 weights missing \(logit_scale\); 1 weights of another shape"):
        retrieval_main(["--checkpoint", str(tmp_path / "bad.pt"), "--val-size", "4"])
    state["schema_version"] = 99
    torch.save(state, tmp_path / "old.pt")
    with pytest.raises(SystemExit, match="schema version 99"):
        retrieval_main(["--checkpoint", str(tmp_path / "old.pt"), "--val-size", "4"])


def test_graph_type_must_match_the_checkpoint(checkpoint):
    with pytest.raises(SystemExit, match="--graph-type: the run used hetero, given patch"):
        retrieval_main(["--checkpoint", str(checkpoint), "--graph-type", "patch", "--val-size", "4"])


def test_plot_draws_the_curves_of_a_run(checkpoint):
    from PIL import Image

    from evaluate.plot import main as plot_main

    out = plot_main([str(checkpoint.parents[1])])
    assert Image.open(out).size == (1100, 440)


def test_plot_of_a_folder_without_results_is_a_clear_error(tmp_path):
    from evaluate.plot import main as plot_main

    with pytest.raises(SystemExit, match="results.jsonl does not exist"):
        plot_main([str(tmp_path)])
