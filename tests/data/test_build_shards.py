import json

import pytest
import torch

from data.build_shards import build_shard_range, main, shard_bounds
from data.cache import GraphCache
from data.datasets import SyntheticBuilder, load_graphs


def test_shard_bounds_cover_every_item_once():
    assert shard_bounds(10, 4) == [(0, 0, 4), (1, 4, 8), (2, 8, 10)]
    assert shard_bounds(0, 4) == []


def test_a_range_builds_only_its_shards_and_training_reuses_them(tmp_path):
    cache = GraphCache(tmp_path, shard_size=4)
    builder = SyntheticBuilder("val", 10)
    report = build_shard_range(builder, cache, 1, 3)
    folder = cache.folder(builder)
    assert sorted(p.name for p in folder.glob("shard_*.pt")) == ["shard_00001.pt", "shard_00002.pt"]
    assert (report["built_shards"], report["reused_shards"], report["built_items"]) == (2, 0, 6)
    again = build_shard_range(builder, cache, 0, 3)  # resumes: only shard 0 is missing
    assert (again["built_shards"], again["reused_shards"], again["built_items"]) == (1, 2, 4)
    store, build = cache.load_or_build(SyntheticBuilder("val", 10), progress=False)
    assert (build.reused_shards, build.rebuilt_shards) == (3, 0)
    whole, _ = GraphCache(tmp_path / "whole", shard_size=4).load_or_build(SyntheticBuilder("val", 10), progress=False)
    assert store.names == whole.names
    for key in whole.nodes:
        assert torch.equal(store.nodes[key], whole.nodes[key])


def test_a_range_outside_the_shards_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="shard range"):
        build_shard_range(SyntheticBuilder("val", 10), GraphCache(tmp_path, shard_size=4), 3, 2)


def test_the_command_builds_the_entry_training_opens(tmp_path, capsys):
    report = main(
        ["--train-size", "6", "--cache-dir", str(tmp_path), "--stop", "1", "--output", str(tmp_path / "r.json")]
    )
    assert report["built_items"] == 6 and report["shards"] == 1
    assert json.loads(capsys.readouterr().out) == json.loads((tmp_path / "r.json").read_text())
    store = load_graphs(SyntheticBuilder("train", 6), tmp_path, progress=False)
    _, build = GraphCache(tmp_path).load_or_build(SyntheticBuilder("train", 6), progress=False)
    assert len(store) == 6 and (build.reused_shards, build.rebuilt_shards) == (1, 0)
