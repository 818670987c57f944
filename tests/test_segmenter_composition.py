"""The synthetic suites scored with each token source: exact masks, or the drawn images segmented."""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import train_tiny

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from segmenter_composition import main as bench_main  # noqa: E402

from evaluate.compositional import main as compositional_main  # noqa: E402
from evaluate.compositional import synthetic_token_source  # noqa: E402
from evaluate.run_config import RunSettings  # noqa: E402
from evaluate.suites import scene_of_ref, synthetic_suite  # noqa: E402
from graphs.tokens import segment_image  # noqa: E402


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic-run")
    train_tiny(root, root / "run", "--threads", "1", "--batch-size", "8", size=8)
    return str(root / "run" / "checkpoints" / "latest.pt")


def suite_argv(checkpoint, tmp_path, *extra):
    output = str(tmp_path / "o.json")
    return ["--checkpoint", checkpoint, "--suite", "relation-swap", "--count", "6", "--output", output, *extra]


def test_a_synthetic_suite_keeps_its_exact_masks_unless_a_token_source_is_given(checkpoint, tmp_path):
    (exact,) = compositional_main(suite_argv(checkpoint, tmp_path))
    items = synthetic_suite("relation-swap", 6)
    objects = [len(scene_of_ref(item["image"]["synthetic"]).objects) for item in items]
    assert exact["token_source"] == "exact" and exact["object_tokens_per_image"] == np.mean(objects)
    assert exact["differs_from_run"] == {}

    with pytest.raises(SystemExit, match="--token-source quickshift: the synthetic suites' images would be tokenized"):
        compositional_main(suite_argv(checkpoint, tmp_path, "--token-source", "quickshift"))
    (segmented,) = compositional_main(
        suite_argv(checkpoint, tmp_path, "--token-source", "quickshift", "--override-checkpoint-config")
    )
    regions = [len(segment_image(scene_of_ref(item["image"]["synthetic"]).image, "quickshift").masks) for item in items]
    assert segmented["token_source"] == "quickshift" and segmented["object_tokens_per_image"] == np.mean(regions)
    assert segmented["differs_from_run"] == {"token_source": {"run": "exact", "given": "quickshift"}}
    # both scorings stay in the results file: another token source is another entry
    assert [r["token_source"] for r in json.loads((tmp_path / "o.json").read_text())] == ["exact", "quickshift"]

    with pytest.raises(SystemExit, match="a tokens file names image files"):
        tokens = ["--token-source", "tokens", "--tokens-file", "t.jsonl", "--override-checkpoint-config"]
        compositional_main(suite_argv(checkpoint, tmp_path, *tokens))


def test_only_a_given_token_source_tokenizes_drawn_images_and_only_a_run_on_exact_masks_needs_the_override():
    def chosen(dataset, given, suites=("relation-swap",), override=False):
        args = argparse.Namespace(token_source=given or "felzenszwalb")
        settings = RunSettings(args, {"dataset": dataset, "token_source": "felzenszwalb"}, "params", override=override)
        explicit = {"token_source"} if given else set()
        return synthetic_token_source(args, explicit, settings, list(suites)), settings.differs

    assert chosen("synthetic", None) == ("exact", {})
    assert chosen("images", None) == ("exact", {})
    assert chosen("synthetic", "slic", suites=("suite.jsonl",)) == ("exact", {})  # file images: the run's source
    assert chosen("images", "felzenszwalb") == ("felzenszwalb", {})  # the run's own segmenter: nothing differs
    for dataset in ("synthetic", "coco"):
        with pytest.raises(ValueError, match="while the run trained on exact masks"):
            chosen(dataset, "slic")
        given = {"token_source": {"run": "exact", "given": "slic", "shapes_graphs": True}}
        assert chosen(dataset, "slic", override=True) == ("slic", given)


def test_the_bench_scores_each_token_source_on_the_same_items(checkpoint, tmp_path):
    out = tmp_path / "composition.json"
    argv = ["--checkpoint", checkpoint, "--suite", "relation-swap", "--suite", "winoground-synthetic"]
    rows = bench_main([*argv, "--count", "4", "--out", str(out)])
    assert [(row["token_source"], row["suite"]) for row in rows] == [
        (source, suite)
        for source in ("exact", "felzenszwalb", "slic", "quickshift")
        for suite in ("relation-swap", "winoground-synthetic")
    ]
    tokens = {row["token_source"]: row["object_tokens_per_image"] for row in rows if row["suite"] == "relation-swap"}
    assert len(set(tokens.values())) == 4  # each source cuts the same images into other tokens
    assert all(row["items"] == 4 for row in rows)
    assert json.loads(out.read_text())["rows"] == rows
    table = out.with_suffix(".md").read_text()
    assert table.count("\n") == 2 + len(rows) and "| quickshift | winoground-synthetic | 4 |" in table


def test_the_suites_keep_their_own_seed_whatever_the_runs_seed(tmp_path, monkeypatch):
    """A run trained with --seed 1 is scored on the same suite items as one trained with seed 0:
    evaluate.compositional's --seed is the suites' (default 0), not filled from the run's params."""
    import evaluate.compositional as compositional

    train_tiny(tmp_path, tmp_path / "run", "--threads", "1", "--batch-size", "8", "--seed", "1", size=8)
    seen = []
    real = compositional.load_items

    def spy(suite, count, seed, *args, **kwargs):
        seen.append(seed)
        return real(suite, count, seed, *args, **kwargs)

    monkeypatch.setattr(compositional, "load_items", spy)
    checkpoint = str(tmp_path / "run" / "checkpoints" / "latest.pt")
    compositional_main(suite_argv(checkpoint, tmp_path))
    compositional_main(suite_argv(checkpoint, tmp_path, "--seed", "3"))
    assert seen == [0, 3]
