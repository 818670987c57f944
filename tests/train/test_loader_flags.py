"""--loader-workers and --log-every through a whole run: the same figures whatever their values."""

import json

import pytest
from helpers import train_tiny

from train.run import main


def results(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_loader_workers_and_log_every_leave_every_figure_as_it_was(tmp_path):
    base = train_tiny(tmp_path, tmp_path / "base", "--device", "cpu", "--threads", "1", "--hard-negatives", "relation")
    other = train_tiny(
        tmp_path,
        tmp_path / "workers",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--hard-negatives",
        "relation",
        "--loader-workers",
        "2",
        "--log-every",
        "1",
    )
    assert other == base
    assert results(tmp_path / "workers")[0]["train_loss"] == results(tmp_path / "base")[0]["train_loss"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--loader-workers", "1", "--data-on-device"], "--loader-workers make host batches"),
        (["--log-every", "0"], "--log-every 0 must be at least 1"),
        (["--loader-workers", "-1"], "must be 0 or more"),
    ],
)
def test_refused_loader_flags(tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "run"), *flags])
    assert message in capsys.readouterr().err
