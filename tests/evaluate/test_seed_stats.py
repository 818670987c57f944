"""Rows over seeds: the statistics against a hand computation, and cell reuse with a fake trainer."""

import csv
import json
import math
from pathlib import Path

import pytest

import evaluate.ablate as ablate
from evaluate.seed_stats import margins, paired_difference, parse_seeds, relative_gain, summarise, t_interval
from models import load_config
from train.run import parse_args

# Student's t, 97.5 % quantile with 2 degrees of freedom (tables): 4.302653
T_2 = 4.302653


def test_t_interval_by_hand():
    summary = t_interval([0.5, 0.6, 0.7])
    # mean 0.6, sd 0.1, half width 4.302653 * 0.1 / sqrt(3) = 0.248414
    assert summary["n"] == 3
    assert summary["mean"] == pytest.approx(0.6) and summary["sd"] == pytest.approx(0.1)
    assert summary["low"] == pytest.approx(0.6 - 0.248414, abs=1e-6)
    assert summary["high"] == pytest.approx(0.6 + 0.248414, abs=1e-6)
    one = t_interval([0.4, float("nan")])
    assert one["n"] == 1 and one["mean"] == 0.4 and math.isnan(one["low"]) and math.isnan(one["sd"])


def test_paired_difference_by_hand():
    reference = {0: 0.5, 1: 0.6, 2: 0.7}
    # differences 0.05, 0.06, 0.07: mean 0.06, sd 0.01 -> half width 4.302653 * 0.01 / sqrt(3)
    tight = paired_difference({0: 0.55, 1: 0.66, 2: 0.77}, reference)
    half = T_2 * 0.01 / math.sqrt(3)
    assert tight["mean"] == pytest.approx(0.06) and tight["low"] == pytest.approx(0.06 - half, abs=1e-6)
    assert tight["excludes_zero"]
    # differences 0.05, 0.02, 0.10: sd 0.040415, half width 0.100395 -> the interval holds zero
    loose = paired_difference({0: 0.55, 1: 0.62, 2: 0.80}, reference)
    assert loose["sd"] == pytest.approx(0.0404145, abs=1e-6)
    assert loose["low"] == pytest.approx(0.0566667 - 0.100395, abs=1e-5) and not loose["excludes_zero"]
    # pairing: only seeds both rows finished count (seed 3 has no reference, seed 1 is NaN)
    partial = paired_difference({0: 0.6, 1: float("nan"), 2: 0.8, 3: 0.9}, reference)
    assert partial["n"] == 2 and partial["mean"] == pytest.approx(0.1)
    # pairing removes a shared seed effect that an unpaired comparison would keep
    shifted = paired_difference({0: 0.51, 1: 0.61, 2: 0.71}, reference)
    assert shifted["sd"] == pytest.approx(0.0, abs=1e-9) and shifted["mean"] == pytest.approx(0.01)


def test_relative_gain_over_a_baseline_by_hand():
    # the seed paper's "+47 % over a ViT" is hetero / ViT - 1: here per seed, averaged on the log scale
    gain = relative_gain({0: 0.6, 1: 0.66, 2: 0.9}, {0: 0.4, 1: 0.44, 2: 0.5})
    # ratios 1.5, 1.5, 1.8: geometric mean (1.5 * 1.5 * 1.8) ** (1/3) = 4.05 ** (1/3) = 1.593988
    logs = [math.log(1.5), math.log(1.5), math.log(1.8)]
    sd = (math.log(1.8) - math.log(1.5)) / math.sqrt(3)  # the sample sd of (a, a, b) is |b - a| / sqrt(3)
    assert gain["n"] == 3 and gain["mean"] == pytest.approx(4.05 ** (1 / 3) - 1, abs=1e-9)
    assert gain["sd_log"] == pytest.approx(sd)
    half = T_2 * sd / math.sqrt(3)
    assert gain["low"] == pytest.approx(math.exp(sum(logs) / 3 - half) - 1, abs=1e-6) and gain["excludes_zero"]
    # a seed whose baseline is tiny does not outweigh the others as a mean of ratios would (+500 %)
    assert relative_gain({0: 0.2, 1: 0.2}, {0: 0.02, 1: 0.1})["mean"] == pytest.approx(math.sqrt(10 * 2) - 1)
    # a value of zero has no log ratio: that seed is left out and named, not infinite
    zero = relative_gain({0: 0.3, 1: 0.4, 2: 0.5}, {0: 0.0, 1: 0.2, 2: 0.25})
    assert zero["n"] == 2 and zero["dropped"] == [0] and zero["mean"] == pytest.approx(1.0)
    cells = {"full": {0: {"a": 0.6, "b": 0.3}, 1: {"a": 0.66, "b": 0.3}},
             "vit paper": {0: {"a": 0.4, "b": 0.0}, 1: {"a": 0.44, "b": 0.1}}}  # fmt: skip
    text = margins(cells, ["a", "b"], "full", ["vit paper", "vit-s16"])
    assert text.splitlines() == [
        "'full' over 'vit paper', relative gain (reference / baseline - 1, geometric mean over seeds) [95 % interval]",
        "  a               50.0 % [50.0,50.0]* (n=2)",
        "  b               200.0 % [nan,nan] (n=1; left out, a value <= 0: seed 0)",
    ]


def test_summary_rows_columns_and_reference():
    cells = {
        "full": {0: {"a": 0.5}, 1: {"a": 0.6}, 2: {"a": 0.7}},
        "other": {0: {"a": 0.55}, 1: {"a": 0.66}, 2: {"a": 0.77}},
    }
    summary = summarise(cells, ["a"], reference="full")
    assert [entry["row"] for entry in summary] == ["full", "other"]
    assert "delta" not in summary[0]["columns"]["a"]
    assert summary[1]["columns"]["a"]["delta"]["excludes_zero"]
    assert summary[1]["columns"]["a"]["value"]["mean"] == pytest.approx(0.66)


def test_parse_seeds():
    assert parse_seeds("0, 1,2") == [0, 1, 2]
    for bad in ("0,0", "a,b", ""):
        with pytest.raises(ValueError, match="--seeds"):
            parse_seeds(bad)


def fake_study(monkeypatch):
    """ablate's trainer and scorers replaced: a cell's metrics are a function of (row, seed)."""
    trained = []

    def fake_train(argv):
        flags = dict(zip(argv[::2], argv[1::2], strict=False))
        seed = int(flags["--seed"])
        trained.append((argv, seed))
        folder = Path(argv[argv.index("--out") + 1])
        folder.mkdir(parents=True)  # the run directory and its params, as the trainer makes them
        args = parse_args(argv)[0]
        graph = vars(load_config(args.model_config).graph)  # the resolved model, as the trainer saves it
        graph.update(edge_bias=args.edge_bias or graph["edge_bias"], pool=args.readout or graph["pool"])
        params = {**vars(args), "precision": "fp32", "model": {"graph": graph}}
        (folder / "params.json").write_text(json.dumps(params, default=str))
        bonus = 0.05 if "monotone" in argv else 0.0
        return {"t2i_R@1": 0.5 + 0.01 * seed + bonus, "i2t_R@1": 0.4 + 0.02 * seed}

    def fake_suite(model, params, suite, device, count, seed):
        if suite == "winoground-synthetic":
            return {"text": 0.3, "image": 0.2, "group": 0.1, "pair_subsets": {}}
        return {"macro_acc": 0.6 + 0.01 * seed, "acc": 0.7, "subsets": {}}

    import train.run

    monkeypatch.setattr(train.run, "main", fake_train)
    monkeypatch.setattr(ablate, "load_checkpoint", lambda path: {"params": {}})
    monkeypatch.setattr(ablate, "model_from_checkpoint", lambda state: None)
    monkeypatch.setattr(ablate, "evaluate_suite", fake_suite)
    return trained


def test_seeds_train_every_row_once_per_seed_and_reuse_finished_cells(tmp_path, monkeypatch, capsys):
    trained = fake_study(monkeypatch)
    out = tmp_path / "study"
    argv = ["--out", str(out), "--study", "recipes", "--rows", "monotone bias", "--seeds", "0,1,2"]
    summary = ablate.main(argv)
    assert sorted(seed for _, seed in trained) == [0, 0, 1, 1, 2, 2]
    assert (out / "rows" / "monotone-bias" / "seed-2" / "row.json").exists()
    t2i = summary[1]["columns"]["t2i_R@1"]
    assert t2i["value"]["mean"] == pytest.approx(0.56) and t2i["delta"]["mean"] == pytest.approx(0.05)
    assert t2i["delta"]["sd"] == pytest.approx(0.0, abs=1e-9) and t2i["delta"]["excludes_zero"]
    assert not summary[1]["columns"]["i2t_R@1"]["delta"]["excludes_zero"]  # identical: no difference
    with open(out / "study-recipes-seeds.csv") as f:
        lines = {(r["row"], r["metric"]): r for r in csv.DictReader(f)}
    assert lines["monotone bias", "t2i_R@1"]["delta_excludes_zero"] == "1"
    assert float(lines["full", "t2i_R@1"]["ci_low"]) == pytest.approx(0.51 - T_2 * 0.01 / math.sqrt(3), abs=1e-4)
    assert "Δ+5.0" in (out / "study-recipes-seeds.txt").read_text()
    # the suites here have no arrow subset (as on world v4): those metrics are left out and named, not nan
    assert {metric for _, metric in lines} == set(ablate.COLUMNS) - {"arrow-swap", "arrow_group"}
    assert "left out, no value in any cell: arrow-swap, arrow_group" in (out / "study-recipes-seeds.txt").read_text()
    assert "arrow_group" not in json.loads((out / "study-recipes-seeds.json").read_text())[1]["columns"]
    assert (out / "study-recipes-seeds.png").stat().st_size > 0
    assert json.loads((out / "study-recipes-seeds.json").read_text())[0]["row"] == "full"

    trained.clear()
    ablate.main([*argv[:-1], "0,1,2,3"])  # one more seed: only its cells train
    assert sorted(seed for _, seed in trained) == [3, 3]


def test_cells_record_per_predicate_swap_per_count_group_and_one_caption_retrieval(tmp_path, monkeypatch):
    # the issue's columns: relation swap per predicate, both retrieval protocols, Winoground by subset
    fake_study(monkeypatch)
    cells = {suite: 0 for suite in ablate.SUITES}  # the k-th cell scored (seed k here) gets the k-th figures

    def fake_suite(model, params, suite, device, count, seed):
        k, cells[suite] = cells[suite], cells[suite] + 1
        if suite == "winoground-synthetic":
            pairs = {"2 objects": {"text": 0.5, "image": 0.4, "group": 0.3, "n": 60},
                     "3 objects": {"text": 0.4, "image": 0.3, "group": 0.1 + 0.1 * k, "n": 60}}  # fmt: skip
            return {"text": 0.45, "image": 0.35, "group": 0.2, "pair_subsets": pairs}
        subsets = {"left of": {"acc": 0.8, "n": 50}, "above": {"acc": 0.6 + 0.05 * k, "n": 50}}
        return {"macro_acc": sum(v["acc"] for v in subsets.values()) / 2, "acc": 0.7, "subsets": subsets}

    monkeypatch.setattr(ablate, "evaluate_suite", fake_suite)
    out = tmp_path / "study"
    summary = ablate.main(["--out", str(out), "--study", "recipes", "--rows", "full", "--seeds", "0,1"])
    row = json.loads((out / "rows" / "full" / "seed-1" / "row.json").read_text())
    assert row["relation-swap:left of"] == 0.8 and row["relation-swap:above"] == pytest.approx(0.65)
    assert row["relation-swap"] == pytest.approx((row["relation-swap:left of"] + row["relation-swap:above"]) / 2)
    assert row["wino_group:3 objects"] == pytest.approx(0.2) and row["wino_group:2 objects"] == 0.3
    assert row["t2i_R@1_1cap"] is None  # this fake trainer reports no one-caption figures: left out below
    columns = summary[0]["columns"]
    assert list(columns)[-4:] == ["relation-swap:above", "relation-swap:left of", "wino_group:2 objects",
                                  "wino_group:3 objects"]  # fmt: skip
    assert columns["relation-swap:above"]["value"]["mean"] == pytest.approx(0.625)
    assert "t2i_R@1_1cap" not in columns
    assert "  relation-swap:left of  80.0±0.0" in (out / "study-recipes-seeds.txt").read_text()  # name, gap, value


def test_detail_columns_and_median_epoch_seconds(tmp_path):
    rows = [{"t2i_R@1_1cap": 0.3, "wino_group:2 objects": 0.1, "relation-swap:z": 1}, {"relation-swap:a": 0.5}]
    assert ablate.detail_columns(rows) == ["t2i_R@1_1cap", "relation-swap:a", "relation-swap:z", "wino_group:2 objects"]
    results = tmp_path / "results.jsonl"
    results.write_text("".join(json.dumps({"epoch": e, "epoch_seconds": s}) + "\n" for e, s in enumerate([9, 3, 5])))
    assert ablate.median_epoch_seconds(results) == 5
    assert ablate.median_epoch_seconds(tmp_path / "none.jsonl") is None


def test_edge_rows_follow_the_chosen_schema_and_recipes_name_theirs():
    from graphs.schema import SEED_EDGE_TYPES

    rows = ablate.variants("edges", "seed")
    assert [name for name in rows if name.startswith("-")] == [f"-{et[1]}" for et in SEED_EDGE_TYPES] + [
        "-subject_to_object+to_relation+to_participant"
    ]
    recipes = ablate.variants("recipes")
    assert recipes["seed recipe"] == ["--edge-schema", "seed", "--edge-bias", "monotone", "--readout", "cls"]
    assert recipes["vit paper"] == ["--vision", "vit:paper"] and list(recipes)[0] == "full"


def test_a_cell_trained_with_other_flags_is_refused_not_reused(tmp_path, monkeypatch):
    # cells were reused by folder alone: a study rerun at another budget mixed in cells of the old one
    trained = fake_study(monkeypatch)
    out = tmp_path / "study"
    argv = ["--out", str(out), "--study", "recipes", "--rows", "monotone bias", "--seeds", "0", "--epochs", "3"]
    ablate.main(argv)
    assert len(trained) == 2
    with pytest.raises(SystemExit, match=r"seed-0 was trained with other flags.*--epochs 3 \(this study: 4\)"):
        ablate.main([*argv[:-1], "4"])
    with pytest.raises(SystemExit, match=r"--world v3 \(this study: v4\)"):
        ablate.main([*argv, "--extra", "--world v4"])
    assert len(trained) == 2  # nothing trained, nothing overwritten
    # a flag added after the cell was trained counts as its default; how a run executes does not count
    cell = out / "rows" / "full" / "seed-0" / "params.json"
    params = json.loads(cell.read_text())
    del params["twin_caption_mode"]
    cell.write_text(json.dumps({**params, "threads": 7, "no_progress": False, "edge_bias": None}))
    ablate.main([*argv, "--extra", "--threads 1"])
    assert len(trained) == 2
    # a flag the run left unset counts as what its model resolved it to (--edge-bias: learned, as the study gives)
    budget = ["--train-size", "4000", "--val-size", "500", "--epochs", "3", "--batch-size", "256", "--seed", "0"]
    assert ablate.cell_differences(cell.parent, [*budget, "--edge-bias", "learned"]) == []
    assert ablate.cell_differences(cell.parent, [*budget, "--edge-bias", "ranked"]) == [
        "--edge-bias learned (this study: ranked)"
    ]


def test_unset_flags_resolve_on_each_side_from_that_sides_model_config(tmp_path, monkeypatch):
    # the study's unset --edge-bias was filled in from the old run's own model (always equal), and
    # --readout was looked up under its flag name where the model config calls it `pool`
    fake_study(monkeypatch)
    out = tmp_path / "study"
    ablate.main(["--out", str(out), "--study", "recipes", "--rows", "full", "--seeds", "0", "--epochs", "3"])
    cell = out / "rows" / "full" / "seed-0" / "params.json"
    params = json.loads(cell.read_text())
    budget = ["--train-size", "4000", "--val-size", "500", "--epochs", "3", "--batch-size", "256", "--seed", "0"]
    graph = params["model"]["graph"]
    monotone = {**params, "edge_bias": "monotone", "model": {"graph": {**graph, "edge_bias": "monotone"}}}
    cell.write_text(json.dumps(monotone))
    assert ablate.cell_differences(cell.parent, budget) == ["--edge-bias monotone (this study: learned)"]
    cell.write_text(json.dumps({**params, "readout": None, "model": {"graph": {**graph, "pool": "cls"}}}))
    assert ablate.cell_differences(cell.parent, [*budget, "--readout", "cls"]) == []
    assert ablate.cell_differences(cell.parent, budget) == ["--readout cls (this study: attention)"]


def test_reuse_check_needs_no_file_the_cell_was_trained_from_and_refuses_fp16_and_unrecorded_cells(
    tmp_path, monkeypatch
):
    # the check validated the study's flags as a new run: a finished cell whose --init-from file had
    # since moved stopped the study with the trainer's error; an fp16 cell passed as "the device's own";
    # and a cell with a row but no params.json was reused unchecked
    fake_study(monkeypatch)
    out = tmp_path / "study"
    argv = ["--out", str(out), "--study", "recipes", "--rows", "full", "--seeds", "0", "--epochs", "3"]
    ablate.main(argv)
    cell = out / "rows" / "full" / "seed-0" / "params.json"
    params = json.loads(cell.read_text())
    budget = ["--train-size", "4000", "--val-size", "500", "--epochs", "3", "--batch-size", "256", "--seed", "0"]
    gone = str(tmp_path / "moved" / "encoder.pt")
    cell.write_text(json.dumps({**params, "init_from": gone}))
    assert ablate.cell_differences(cell.parent, [*budget, "--init-from", gone]) == []
    assert ablate.cell_differences(cell.parent, budget) == [f"--init-from {gone} (this study: None)"]
    for precision in ("fp32", "bf16"):
        cell.write_text(json.dumps({**params, "precision": precision}))
        assert ablate.cell_differences(cell.parent, budget) == []
    cell.write_text(json.dumps({**params, "precision": "fp16"}))
    assert ablate.cell_differences(cell.parent, budget) == [
        "--precision fp16 (this study: unset: bf16 on CUDA, fp32 on CPU)"
    ]
    assert ablate.cell_differences(cell.parent, [*budget, "--precision", "fp16"]) == []
    with pytest.raises(SystemExit, match=r"seed-0 was trained with other flags.*--precision fp16"):
        ablate.main(argv)
    cell.unlink()
    with pytest.raises(SystemExit, match=r"seed-0 has a finished row or checkpoint but no params.json"):
        ablate.main(argv)


def test_the_reference_row_comes_first_whatever_the_order_of_rows(tmp_path, monkeypatch):
    # with --rows "patch,full" the table named 'patch' the reference while its differences were to
    # 'full', and the chart stopped on the reference's missing difference (no png, no margins)
    fake_study(monkeypatch)
    out = tmp_path / "study"
    argv = ["--out", str(out), "--study", "recipes", "--rows", "patch,full", "--seeds", "0,1"]
    summary = ablate.main(argv)
    assert [entry["row"] for entry in summary] == ["full", "patch"]
    assert "delta" not in summary[0]["columns"]["t2i_R@1"] and "delta" in summary[1]["columns"]["t2i_R@1"]
    text = (out / "study-recipes-seeds.txt").read_text()
    assert "paired difference to 'full'" in text and (out / "study-recipes-seeds.png").stat().st_size > 0
    assert text.count("'full' over 'patch'") == 1  # the margins, in the file too
    assert (out / "study-recipes-margins.txt").read_text().strip() in text

    def strict(constant):
        raise ValueError(f"{constant} is not JSON")

    one = tmp_path / "one"
    ablate.main(["--out", str(one), "--study", "recipes", "--rows", "full", "--seeds", "0"])
    stored = json.loads((one / "study-recipes-seeds.json").read_text(), parse_constant=strict)  # was a bare NaN
    assert stored[0]["columns"]["t2i_R@1"]["value"]["sd"] is None

    # a cell without a metric (older than it): means and differences over fewer seeds say so
    cell = out / "rows" / "full" / "seed-0" / "row.json"
    cell.write_text(json.dumps({k: v for k, v in json.loads(cell.read_text()).items() if k != "i2t_R@1"}))
    ablate.main(argv)
    text = (out / "study-recipes-seeds.txt").read_text()
    lines = text.split("'full' over")[0].splitlines()  # the table, not the margins below it
    i2t = [line for line in lines if line.strip().startswith("i2t_R@1 ")]
    assert "(n=1)" in i2t[0] and "(paired n=1)" in i2t[1] and "(n=" not in i2t[1].split("Δ")[0]
    assert all("(n=" not in line for line in lines if line.strip().startswith("t2i_R@1 "))


def test_a_failing_cell_of_a_seeded_study_is_an_error_naming_row_and_seed(tmp_path, monkeypatch):
    fake_study(monkeypatch)
    import train.run

    def broken(argv):
        raise ValueError("tokens.json: item 3 has no mask")

    monkeypatch.setattr(train.run, "main", broken)
    with pytest.raises(SystemExit, match=r"^error: row full, seed 0 \(.*seed-0\): tokens.json: item 3 has no mask$"):
        ablate.main(["--out", str(tmp_path / "s"), "--study", "recipes", "--rows", "full", "--seeds", "0"])
