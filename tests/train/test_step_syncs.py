"""No training step waits for the device: every host read of a tensor made by the project's
code (the loop, the models, the device-resident batches) is counted, step by step.

`torch.cuda.set_sync_debug_mode` exists on CUDA only; on the CPU the methods
that bring a tensor's value to the host are wrapped instead. A call counts when
the code calling it is the project's own (torch, PyG and open_clip are not
counted: the optimizer, for one, reads its step counters, which live on the host
even when training on a GPU).
"""

import sys
from contextlib import contextmanager
from pathlib import Path

import torch
from helpers import TINY_MODEL
from open_clip.loss import ClipLoss
from open_clip.tokenizer import SimpleTokenizer

from data.datasets import GraphDataset, SyntheticBuilder, SyntheticTwinBuilder
from data.loader import GraphLoader, Twins
from data.negatives import twin_scene
from data.store import GraphStore
from data.synthetic import make_scene
from graphs import encoder_inputs
from models import GraphCLIP
from models.clip import GraphCLIPConfig
from train.loop import EpochTotals, make_optimizer, train_epoch, warmup_cosine

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("graphs", "models", "data", "train", "evaluate")  # not .venv, which may live in the checkout
READS = ("item", "tolist", "__int__", "__float__", "__bool__", "__index__", "__format__", "cpu", "numpy")
# Functions that read host tensors only: the text tower runs texts by length only when its
# tokens are on the CPU (tests/models/test_text.py checks a device's tokens never get there).
HOST_ONLY = ("length_buckets",)


def is_project_code(filename: str) -> bool:
    path = Path(filename).resolve()
    return any(path.is_relative_to(ROOT / package) for package in PACKAGES)


@contextmanager
def count_host_reads():
    """Collect (method, file:line) of every host read called from the project's code."""
    calls: list[tuple[str, str]] = []
    originals = {name: getattr(torch.Tensor, name) for name in READS}

    def wrap(name, original):
        def read(self, *args, **kwargs):
            caller = sys._getframe(1)
            if is_project_code(caller.f_code.co_filename) and caller.f_code.co_name not in HOST_ONLY:
                calls.append((name, f"{Path(caller.f_code.co_filename).name}:{caller.f_lineno}"))
            return original(self, *args, **kwargs)

        return read

    original_setitem = torch.Tensor.__setitem__

    def setitem(self, key, value):  # `t[index] = True` copies the host's True to the device: a wait there
        caller = sys._getframe(1)
        keys = key if isinstance(key, tuple) else (key,)
        indexed = any(isinstance(k, torch.Tensor) for k in keys)
        if indexed and not isinstance(value, torch.Tensor) and is_project_code(caller.f_code.co_filename):
            calls.append(("__setitem__ of a host value", f"{Path(caller.f_code.co_filename).name}:{caller.f_lineno}"))
        return original_setitem(self, key, value)

    originals["__setitem__"] = original_setitem
    for name, original in originals.items():
        setattr(torch.Tensor, name, setitem if name == "__setitem__" else wrap(name, original))
    try:
        yield calls
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)


def tiny_model(sample) -> GraphCLIP:
    config = GraphCLIPConfig.from_dict(TINY_MODEL)
    config.graph.node_dims, config.graph.num_edge_types = encoder_inputs(sample)
    return GraphCLIP(config)


def reads_per_step(model, loader, steps: int, log_every: int, totals: EpochTotals | None = None) -> list[list]:
    """Train `steps` batches of `loader`; the host reads made during each step."""
    optimizer = make_optimizer(model, 1e-3, 0.1)
    scheduler = warmup_cosine(optimizer, 2, steps)
    per_step, seen = [], 0
    with count_host_reads() as calls:

        def after_step(done: int) -> None:
            nonlocal seen
            per_step.append(calls[seen:])
            seen = len(calls)

        train_epoch(
            model,
            loader,
            optimizer,
            scheduler,
            ClipLoss(),
            torch.device("cpu"),
            after_step=after_step,
            progress=False,
            log_every=log_every,
            totals=totals,
        )
    assert len(per_step) == steps
    return per_step


def build_store(size: int, negatives=()) -> GraphStore:
    builder = SyntheticBuilder("train", size, negatives=list(negatives))
    return GraphStore.from_graphs(*zip(*(builder.build(k) for k in range(size)), strict=True))


def test_device_resident_training_reads_the_device_only_every_log_every_steps():
    store = build_store(28)
    model = tiny_model(GraphDataset(store)[0])
    tokens = store.caption_tokens(model.text_encoder.tokenize, "cpu")
    dataset = GraphDataset(store.to("cpu"), "hetero")
    loader = GraphLoader(dataset, 4, shuffle=True, drop_last=True, seed=1, pick_caption=True, caption_tokens=tokens)
    per_step = reads_per_step(model, loader, 7, log_every=3)
    # once an epoch, its order (drawn on the host by a CPU generator) becomes a host array
    assert [(name, place.split(":")[0]) for name, place in per_step[0]] == [("numpy", "loader.py")]
    per_step[0] = []
    for step, reads in enumerate(per_step, 1):
        if step % 3 and step != 7:
            assert reads == [], f"step {step} read the device: {reads}"
    # the counter sees the reads there are: the losses, every third step and at the end
    assert all(per_step[step - 1] for step in (3, 6, 7))


class Prepared:
    """Batches made before the steps: a loader whose host work is not counted."""

    def __init__(self, batches) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def iterate(self, start: int = 0):
        yield from self.batches[start:]


def test_a_step_with_hard_negatives_and_twins_reads_nothing():
    size = 24
    store = build_store(size, ["relation"])
    twin_builder = SyntheticTwinBuilder("train", size)
    twin_graphs = [twin_builder.build(k) for k in range(size) if twin_scene(make_scene(0, "train", k)) is not None]
    twins = Twins.align(GraphStore.from_graphs(*zip(*twin_graphs, strict=True)), store)
    dataset = GraphDataset(store)
    loader = GraphLoader(
        dataset, 6, shuffle=True, seed=2, pick_caption=True, twins=twins, tokenize=SimpleTokenizer(context_length=32)
    )
    batches = list(loader.iterate())
    assert all(batch.twins.num_graphs for batch in batches) and all(batch.negative_texts for batch in batches)
    per_step = reads_per_step(tiny_model(dataset[0]), Prepared(batches), 4, log_every=100)
    assert per_step[:3] == [[], [], []]
    assert per_step[3]  # the epoch's end reads the sums


def test_the_sums_read_late_are_the_sums_read_every_step():
    """Reading the losses every 100 steps or every step: the same totals, to the bit."""
    store = build_store(20)
    results = []
    for log_every in (1, 100):
        torch.manual_seed(0)
        model = tiny_model(GraphDataset(store)[0])
        loader = GraphLoader(GraphDataset(store), 4, shuffle=True, seed=3, pick_caption=True)
        totals = EpochTotals(loss=0.25, graphs=3)  # a resumed epoch's sums carry on
        reads_per_step(model, loader, 5, log_every, totals)
        results.append(totals.state())
    assert results[0] == results[1] and results[0]["graphs"] == 23
