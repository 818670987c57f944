"""Training curves of a run: `python -m evaluate.plot RUN_DIR` -> RUN_DIR/curves.png."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

RECALLS = ("t2i_R@1", "t2i_R@5", "t2i_R@10", "i2t_R@1", "i2t_R@5", "i2t_R@10")


def read_results(run_dir: Path) -> list[dict]:
    path = run_dir / "results.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: is {run_dir} a run directory?")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not JSON ({error.msg})") from None
    if not records:
        raise ValueError(f"{path} holds no evaluations yet")
    return records


def plot_curves(records: list[dict], path: Path, title: str = "") -> None:
    """Loss and retrieval against the epoch, side by side."""
    epochs = [r["epoch"] for r in records]
    fig, (loss_ax, recall_ax) = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    loss_ax.plot(epochs, [r["train_loss"] for r in records], marker="o")
    loss_ax.set(xlabel="epoch", ylabel="training loss", title="contrastive loss")
    for key in RECALLS:
        if key in records[0]:
            style = "-" if key.startswith("t2i") else "--"
            recall_ax.plot(epochs, [100 * r[key] for r in records], style, marker=".", label=key)
    recall_ax.set(xlabel="epoch", ylabel="%", title="validation retrieval")
    recall_ax.legend(fontsize=8, ncol=2)
    for ax in (loss_ax, recall_ax):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(prog="python -m evaluate.plot", description=__doc__)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, help="PNG path (default RUN_DIR/curves.png)")
    args = parser.parse_args(argv)
    try:
        records = read_results(args.run_dir)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    out = args.out or args.run_dir / "curves.png"
    plot_curves(records, out, title=args.run_dir.name)
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
