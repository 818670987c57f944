"""The training configs shipped in train/configs parse into valid flag sets."""

from pathlib import Path

import pytest

from train.run import parse_args

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "train" / "configs").glob("*.yaml"))


def test_the_configs_are_found():
    assert {p.name for p in CONFIGS} >= {"composition.yaml", "composition-v4.yaml", "composition-v4-seed.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_config_is_a_valid_flag_set(path, tmp_path):
    args, _ = parse_args(["--config", str(path), "--out", str(tmp_path / "run")])
    assert args.graph_type == "hetero"


def test_the_seed_recipe_config_is_the_v4_config_with_the_seed_recipe_at_50_epochs(tmp_path):
    folder = CONFIGS[0].parent
    base, _ = parse_args(["--config", str(folder / "composition-v4.yaml")])
    seed, _ = parse_args(["--config", str(folder / "composition-v4-seed.yaml")])
    differing = {k: (getattr(base, k), v) for k, v in vars(seed).items() if getattr(base, k) != v and k != "config"}
    assert differing == {
        "edge_schema": ("semgraph", "seed"),
        "edge_bias": (None, "monotone"),  # None: the model config's (learned)
        "readout": (base.readout, "cls"),
        "epochs": (28, 50),
    }
    assert base.readout != "cls"
