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


def test_the_directed_config_is_the_16k_seed_config_with_one_change_the_edge_schema():
    folder = CONFIGS[0].parent
    seed, _ = parse_args(["--config", str(folder / "composition-v4-seed-16k.yaml")])
    directed, _ = parse_args(["--config", str(folder / "composition-v4-directed-16k.yaml")])
    differing = {k: (getattr(seed, k), v) for k, v in vars(directed).items() if getattr(seed, k) != v and k != "config"}
    assert differing == {"edge_schema": ("seed", "seed-directed")}
    assert (directed.train_size, directed.epochs, directed.edge_bias, directed.readout) == (
        16000,
        25,
        "monotone",
        "cls",
    )


def test_every_config_a_make_target_names_exists():
    import re

    root = CONFIGS[0].parents[2]
    named = set(re.findall(r"train/configs/([\w.-]+\.yaml)", (root / "Makefile").read_text()))
    assert "composition-v4-directed-16k.yaml" in named
    assert named <= {p.name for p in CONFIGS}
