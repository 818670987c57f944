import json

import pytest

from data.cache import BadItem, GraphBuilder, GraphCache
from data.datasets import SyntheticBuilder


class CountingBuilder(SyntheticBuilder):
    """Synthetic graphs; remembers which items it built; item `bad` is broken."""

    def __init__(self, size, bad=None, tag="a"):
        super().__init__("val", size)
        self.bad, self.tag, self.built = bad, tag, []

    def fingerprint(self):
        return {**super().fingerprint(), "tag": self.tag}

    def build(self, index):
        self.built.append(index)
        if index == self.bad:
            raise BadItem(f"item {index} is broken")
        return super().build(index)


def test_build_once_then_load(tmp_path):
    cache = GraphCache(tmp_path, shard_size=4)
    builder = CountingBuilder(10)
    store, report = cache.load_or_build(builder, progress=False)
    assert len(store) == 10 and report.rebuilt_shards == 3 and sorted(builder.built) == list(range(10))
    again = CountingBuilder(10)
    store2, report2 = cache.load_or_build(again, progress=False)
    assert again.built == [] and report2.reused_shards == 3
    assert store2.names == [f"val/{k}" for k in range(10)] and store2.captions == store.captions


def test_a_changed_source_gets_its_own_entry(tmp_path):
    cache = GraphCache(tmp_path, shard_size=4)
    assert cache.folder(CountingBuilder(10, tag="a")) != cache.folder(CountingBuilder(10, tag="b"))
    assert cache.folder(CountingBuilder(10)) != cache.folder(CountingBuilder(11))


def test_interrupted_build_resumes_and_corrupt_shards_are_rebuilt(tmp_path):
    cache = GraphCache(tmp_path, shard_size=4)
    builder = CountingBuilder(10)
    cache.load_or_build(builder, progress=False)
    folder = cache.folder(builder)
    (folder / "shard_00001.json").unlink()  # killed before the sidecar was written
    data = (folder / "shard_00002.pt").read_bytes()
    (folder / "shard_00002.pt").write_bytes(data[: len(data) // 2])  # truncated
    again = CountingBuilder(10)
    store, report = cache.load_or_build(again, progress=False)
    assert sorted(again.built) == [4, 5, 6, 7, 8, 9]
    assert report.reused_shards == 1 and report.rebuilt_shards == 2 and len(store) == 10


def test_bad_items_raise_or_are_counted(tmp_path):
    cache = GraphCache(tmp_path, shard_size=4)
    with pytest.raises(BadItem, match="item 5 is broken"):
        cache.load_or_build(CountingBuilder(10, bad=5), progress=False)
    store, report = cache.load_or_build(CountingBuilder(10, bad=5), on_bad="skip", progress=False)
    assert len(store) == 9 and "val/5" not in store.names
    assert report.skipped == [{"index": 5, "reason": "item 5 is broken"}]
    sidecar = json.loads((cache.folder(CountingBuilder(10, bad=5)) / "shard_00001.json").read_text())
    assert sidecar["skipped"][0]["index"] == 5


@pytest.mark.slow
def test_workers_build_the_same_graphs(tmp_path):
    serial, _ = GraphCache(tmp_path / "serial", shard_size=8).load_or_build(SyntheticBuilder("val", 32), progress=False)
    parallel, report = GraphCache(tmp_path / "parallel", shard_size=8).load_or_build(
        SyntheticBuilder("val", 32), workers=2, progress=False
    )
    assert report.rebuilt_shards == 4 and parallel.names == serial.names
    for key in serial.nodes:
        assert (serial.nodes[key] == parallel.nodes[key]).all()


def test_base_builder_is_abstract():
    with pytest.raises(NotImplementedError):
        len(GraphBuilder())


def test_memory_mapped_store_serves_the_same_batches(tmp_path):
    import torch

    cache = GraphCache(tmp_path, shard_size=4)
    in_memory, _ = cache.load_or_build(SyntheticBuilder("val", 10), progress=False)
    mapped, _ = cache.load_or_build(SyntheticBuilder("val", 10), progress=False, mmap=True)
    assert len(list((cache.folder(SyntheticBuilder("val", 10)) / "mmap").glob("*.npy"))) == len(mapped.nodes) + 7
    order = [7, 0, 3, 9, 9, 2]
    a, b = in_memory.collate(order), mapped.collate(order)
    for key in in_memory.nodes:
        node_type, attr = key.split("/")
        assert torch.equal(a[node_type][attr], b[node_type][attr]), key
    assert a.captions == b.captions and mapped.names == in_memory.names
    for k in (0, 9):
        assert torch.equal(mapped[k]["relation"].x, in_memory[k]["relation"].x)


def test_a_rebuilt_shard_keeps_the_map_whole(tmp_path):
    cache = GraphCache(tmp_path, shard_size=4)
    cache.load_or_build(SyntheticBuilder("val", 10), progress=False, mmap=True)
    folder = cache.folder(SyntheticBuilder("val", 10))
    (folder / "shard_00001.json").unlink()
    again = CountingBuilder(10)
    again.fingerprint = SyntheticBuilder("val", 10).fingerprint
    store, report = cache.load_or_build(again, progress=False, mmap=True)
    assert report.rebuilt_shards == 1 and len(store) == 10


def build_in_a_process(root, start, results):
    import hashlib

    start.wait()  # both processes build at once
    store, report = GraphCache(root, shard_size=1).load_or_build(SyntheticBuilder("val", 12), progress=False)
    digest = hashlib.sha256()
    for key in sorted(store.nodes):
        digest.update(store.nodes[key].numpy().tobytes())
    results.put((store.names, store.captions, digest.hexdigest(), report.rebuilt_shards))


@pytest.mark.slow
def test_two_processes_building_one_cache_end_with_the_same_valid_graphs(tmp_path):
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(2), context.Queue()
    builders = [context.Process(target=build_in_a_process, args=(tmp_path, start, results)) for _ in range(2)]
    for process in builders:
        process.start()
    outcomes = [results.get(timeout=300) for _ in builders]
    for process in builders:
        process.join(timeout=60)
        assert process.exitcode == 0
    (names, captions, digest, _), second = outcomes
    assert second[:3] == (names, captions, digest) and names == [f"val/{k}" for k in range(12)]
    assert sorted(outcome[3] for outcome in outcomes) == [0, 12]  # one built every shard, the other reused them
    again = CountingBuilder(12)
    again.fingerprint = SyntheticBuilder("val", 12).fingerprint
    store, report = GraphCache(tmp_path, shard_size=1).load_or_build(again, progress=False)
    assert again.built == [] and report.reused_shards == 12 and store.names == names
    assert not list(tmp_path.rglob("*.tmp"))
