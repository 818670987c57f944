"""Training with the seed paper's recipe: schema, bias and readout reach the model, the params and the data."""

import json

import pytest
from helpers import train_tiny


@pytest.mark.parametrize("schema", ["seed", "seed-directed"])
def test_a_seed_recipe_run_records_its_schema_and_trains(tmp_path, schema):
    import torch

    out = tmp_path / "run"
    final = train_tiny(
        tmp_path, out, "--edge-schema", schema, "--edge-bias", "monotone", "--readout", "cls",
        "--drop-edge-types", "nearest_4", size=16,
    )  # fmt: skip
    assert 0.0 <= final["t2i_R@1"] <= 1.0
    params = json.loads((out / "params.json").read_text())
    assert params["edge_schema"] == schema and params["drop_edge_types"] == ["nearest_4"]
    graph = params["model"]["graph"]
    assert (graph["edge_schema"], graph["edge_bias"], graph["pool"]) == (schema, "monotone", "cls")
    assert graph["num_edge_types"] == {"seed": 7, "seed-directed": 9}[schema]
    state = torch.load(out / "checkpoints" / "latest.pt", map_location="cpu", weights_only=False)
    [rank_weight] = [v for k, v in state["model"].items() if k.endswith("rank_bias.weight")]
    assert rank_weight.shape == (graph["num_edge_types"],)  # one entry per rank of the schema


def test_drop_edge_types_must_belong_to_the_chosen_schema(tmp_path, capsys):
    with pytest.raises(SystemExit):
        train_tiny(tmp_path, tmp_path / "bad", "--edge-schema", "seed", "--drop-edge-types", "near", size=8)
    assert "unknown edge type 'near' in the seed edge schema" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_tiny(tmp_path, tmp_path / "typo", "--drop-edge-types", "nearest_9", size=8)
    assert "unknown edge type 'nearest_9'" in capsys.readouterr().err


@pytest.mark.slow
def test_text_relation_features_train_and_travel_in_the_checkpoint(tmp_path):
    import torch

    from graphs.schema import PREDICATES
    from models.checkpoint import load_checkpoint, model_from_checkpoint

    out = tmp_path / "run"
    with pytest.warns(UserWarning, match="untrained"):
        train_tiny(tmp_path, out, "--relation-features", "text", size=16)
    state = load_checkpoint(out / "checkpoints" / "latest.pt")
    assert state["model_config"]["graph"]["relation_features"] == "text"
    model = model_from_checkpoint(state)
    table = model.graph_encoder.relation_text
    assert table.shape == (len(PREDICATES), 512) and table.abs().sum() > 0
    assert torch.equal(table, state["model"]["graph_encoder.relation_text"])


def test_text_relation_features_need_schema_graphs(tmp_path, capsys):
    with pytest.raises(SystemExit):
        train_tiny(tmp_path, tmp_path / "homo", "--relation-features", "text", "--graph-type", "homo", size=8)
    assert "use hetero graphs" in capsys.readouterr().err
