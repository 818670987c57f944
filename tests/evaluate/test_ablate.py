import csv
import json
from pathlib import Path

import pytest
from helpers import write_tiny_config
from PIL import Image

from evaluate.ablate import main, variants
from graphs import EDGE_TYPES


def test_rows_cover_every_edge_type_the_bias_and_the_graph_types():
    rows = variants()
    assert list(rows)[0] == "full" and len(rows) == 1 + len(EDGE_TYPES) + 4
    assert rows["-subject_of"] == ["--drop-edge-types", "subject_of"]
    assert rows["-subject_of+has_object"] == ["--drop-edge-types", "subject_of,has_object"]
    assert rows["bias none"] == ["--edge-bias", "none"] and rows["patch"] == ["--graph-type", "patch"]


def test_ablation_writes_table_csv_chart_and_reuses_finished_rows(tmp_path, capsys):
    config = write_tiny_config(tmp_path)
    argv = [
        "--out",
        str(tmp_path / "abl"),
        "--train-size",
        "32",
        "--val-size",
        "8",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--suite-count",
        "6",
        "--rows",
        "-near,bias none",
        "--extra",
        f"--model-config {config}",
    ]
    rows = main(argv)
    assert [r["row"] for r in rows] == ["full", "-near", "bias none"]
    with open(tmp_path / "abl" / "ablation.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["row"] for r in table] == ["full", "-near", "bias none"]
    assert float(table[0]["delta_t2i_R@1"]) == 0.0
    assert abs(float(table[1]["delta_relation-swap"]) - (rows[1]["relation-swap"] - rows[0]["relation-swap"])) < 1e-4
    assert Image.open(tmp_path / "abl" / "ablation.png").size[0] >= 800
    # each cell also keeps both retrieval protocols, every predicate's swap (the macro is their mean), its epochs
    predicates = [v for k, v in rows[0].items() if k.startswith("relation-swap:")]
    assert len(predicates) >= 2 and rows[0]["relation-swap"] == pytest.approx(sum(predicates) / len(predicates))
    assert 0 <= rows[0]["t2i_R@1_1cap"] <= 1 and rows[0]["epoch_seconds_median"] > 0
    params = json.loads((tmp_path / "abl" / "rows" / "minus-near" / "params.json").read_text())
    assert params["drop_edge_types"] == ["near"]
    stamp = (tmp_path / "abl" / "rows" / "full" / "row.json").stat().st_mtime_ns
    assert main(argv) == rows  # reused, not retrained
    assert (tmp_path / "abl" / "rows" / "full" / "row.json").stat().st_mtime_ns == stamp


def test_a_cell_stopped_before_its_first_checkpoint_is_moved_aside_and_trained_again(tmp_path, monkeypatch):
    """Killed after writing params.json and out.log but before any checkpoint: the trainer would refuse
    the non-empty folder, so the cell is moved aside (nothing deleted) and trained from the start."""
    import evaluate.ablate as ablate

    folder = tmp_path / "rows" / "full" / "seed-1"
    folder.mkdir(parents=True)
    (folder / "params.json").write_text("{}")
    calls = []

    def fake_train(argv):
        calls.append(argv)
        out = Path(argv[argv.index("--out") + 1])
        assert not out.exists() or not any(out.iterdir())
        raise SystemExit("stop here")

    monkeypatch.setattr("train.run.main", fake_train)
    with pytest.raises(SystemExit, match="stop here"):
        ablate.run_row("full", [], ["--epochs", "1"], folder, 2, 1)
    assert calls and "--resume" not in calls[0]
    assert (tmp_path / "rows" / "full" / "seed-1.unfinished-1" / "params.json").read_text() == "{}"
    assert ablate.set_aside_unstarted(tmp_path / "nothing") is None


@pytest.mark.parametrize("edge_schema", ["seed", "seed-directed"])
def test_the_triplet_row_of_a_seed_schema_drops_every_edge_of_a_triplet(edge_schema):
    from graphs.schema import RELATION, SUBJECT_TO_OBJECT, schema_edge_types

    types = schema_edge_types(edge_schema)
    rows = variants("edges", edge_schema)
    assert len(rows) == 1 + len(types) + 4
    [triplet] = [row for name, row in rows.items() if "+" in name]
    expected = {et[1] for et in types if RELATION in (et[0], et[2]) or et == SUBJECT_TO_OBJECT}
    assert triplet[0] == "--drop-edge-types" and set(triplet[1].split(",")) == expected
