"""Two processes on the CPU (gloo) take the same step as one process on the same global batch."""

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from helpers import write_tiny_config

from train.run import main


def argv(root, out, batch_size):
    return [
        "--train-size",
        "8",
        "--val-size",
        "8",
        "--batch-size",
        str(batch_size),
        "--epochs",
        "1",
        "--model-config",
        str(root / "tiny.json"),
        "--out",
        str(out),
        "--no-progress",
        "--threads",
        "1",
        "--cache-dir",
        str(root / "cache"),
        "--device",
        "cpu",
    ]


def worker(rank, world_size, port, root):
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    main(argv(root, root / "ddp", batch_size=8 // world_size))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_step_like_one_process_on_the_global_batch(tmp_path):
    write_tiny_config(tmp_path)
    main(argv(tmp_path, tmp_path / "single", batch_size=8))  # also builds the graph cache
    mp.start_processes(worker, args=(2, free_port(), tmp_path), nprocs=2, start_method="spawn")
    single = torch.load(tmp_path / "single" / "checkpoints" / "latest.pt", weights_only=True)
    ddp = torch.load(tmp_path / "ddp" / "checkpoints" / "latest.pt", weights_only=True)
    assert single["step"] == ddp["step"] == 1 and ddp["params"]["world_size"] == 2
    moments = [s["exp_avg"] for s in single["optimizer"]["state"].values()]
    assert any(m.abs().sum() > 0 for m in moments)  # a real step with real gradients
    for key, value in single["model"].items():
        assert torch.allclose(value, ddp["model"][key], atol=1e-5), key
