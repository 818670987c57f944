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
    cache.load_or_build(CountingBuilder(10), progress=False, mmap=True)
    folder = cache.folder(CountingBuilder(10))
    (folder / "shard_00001.json").unlink()
    again = CountingBuilder(10)
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
    store, report = GraphCache(tmp_path, shard_size=1).load_or_build(SyntheticBuilder("val", 12), progress=False)
    assert report.rebuilt_shards == 0 and report.reused_shards == 12 and store.names == names
    assert not list(tmp_path.rglob("*.tmp"))


def executed_project_files(call) -> set:
    """The project files whose functions run during `call()` (a second way to find the code behind a graph)."""
    import sys
    from pathlib import Path

    from data.cache import PROJECT_ROOT

    seen = set()

    def record(frame, event, arg):
        if event == "call":
            seen.add(frame.f_code.co_filename)

    sys.setprofile(record)
    try:
        call()
    finally:
        sys.setprofile(None)
    files = {Path(name).resolve() for name in seen if not name.startswith("<")}
    packages = {"graphs", "models", "data", "train", "evaluate"}  # not .venv, which may live in the checkout
    return {f for f in files if f.is_relative_to(PROJECT_ROOT) and f.relative_to(PROJECT_ROOT).parts[0] in packages}


def test_the_cache_key_covers_every_module_that_runs_while_building(tmp_path):
    """Every project file that executes while a builder makes a graph is part of its cache key."""
    import functools

    from helpers import write_coco

    from data.cache import builder_files
    from data.coco import CocoBuilder
    from data.datasets import SyntheticTwinBuilder
    from data.images import ImageFolderBuilder, TokenSource

    write_coco(tmp_path / "coco")
    captions = tmp_path / "captions.jsonl"
    captions.write_text('{"file_name": "000000000001.jpg", "captions": ["a photo"]}\n')
    builders = [
        SyntheticBuilder("train", 4, negatives=["relation", "attribute", "order"]),
        SyntheticTwinBuilder("train", 8),
        CocoBuilder(tmp_path / "coco", "val2017"),
        ImageFolderBuilder(tmp_path / "coco" / "val2017", captions, TokenSource("slic")),
    ]
    for builder in builders:
        keyed = set(builder_files(builder))
        for index in range(len(builder)):
            try:
                ran = executed_project_files(functools.partial(builder.build, index))
            except BadItem:
                continue
            assert ran, type(builder).__name__
            assert ran <= keyed, (type(builder).__name__, sorted(str(f) for f in ran - keyed))
    names = {f.name for f in builder_files(builders[0])}
    assert {"datasets.py", "negatives.py", "synthetic.py", "featurizers.py", "build.py"} <= names
    assert {"coco.py", "images.py", "tokens.py"} <= {f.name for f in builder_files(builders[3])}


def test_an_edit_to_any_module_a_builder_imports_changes_the_code_digest(tmp_path):
    """On a copy of the project: editing data/negatives.py (which graphs/ and data/synthetic.py do
    not cover) gives another digest; editing a module no builder imports does not."""
    import shutil

    from data.cache import PROJECT_ROOT, code_digest, project_modules

    for package in ("data", "graphs"):
        shutil.copytree(PROJECT_ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))

    def digest():
        files = project_modules([tmp_path / "data" / "coco.py"], root=tmp_path)
        return code_digest(files, root=tmp_path)

    before = digest()
    for name in ("negatives.py", "datasets.py", "synthetic.py"):
        path = tmp_path / "data" / name
        path.write_text(path.read_text() + f"\n# an edit to {name}\n")
        after = digest()
        assert after != before, name
        before = after
    path = tmp_path / "graphs" / "featurizers.py"
    path.write_text(path.read_text() + "\n# an edit\n")
    assert digest() != before
    before = digest()
    (tmp_path / "data" / "loader.py").write_text("# not imported by any builder\n")
    assert digest() == before


def test_stores_keep_their_hard_negatives_when_memory_mapped(tmp_path):
    cache = GraphCache(tmp_path, shard_size=3)
    builder = SyntheticBuilder("train", 8, negatives=["relation", "attribute"])
    in_memory, _ = cache.load_or_build(builder, progress=False)
    mapped, _ = cache.load_or_build(builder, progress=False, mmap=True)
    assert in_memory.negatives is not None and any(any(n) for n in in_memory.negatives)
    assert mapped.negatives == in_memory.negatives


def test_kmeans_cache_is_keyed_on_the_features_and_the_device(tmp_path):
    """Two stores with the same fingerprint but other object features (graphs made by other code)
    get their own centroids; the device (another algorithm) is part of the key."""
    import torch

    from data.clusters import fit_kmeans, kmeans_key, object_clusters

    store, _ = GraphCache(tmp_path / "graphs", shard_size=64).load_or_build(SyntheticBuilder("val", 12), progress=False)
    first = object_clusters(store, 4, seed=0, cache_dir=tmp_path)
    changed = store.nodes["object/x"] * 3 + 1
    store.nodes["object/x"] = changed
    second = object_clusters(store, 4, seed=0, cache_dir=tmp_path)
    assert not torch.allclose(first, second)
    assert torch.allclose(second, fit_kmeans(changed, 4, 0))
    assert kmeans_key(changed, 4, 0, "cpu") != kmeans_key(changed, 4, 0, "cuda")
    assert kmeans_key(changed, 4, 0, "cpu") != kmeans_key(changed, 4, 1, "cpu")
