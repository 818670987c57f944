"""Training curves of a run, or compositional results of checkpoints side by side.

    python -m evaluate.plot RUN_DIR                      # -> RUN_DIR/curves.png
    python -m evaluate.plot A/compositional.json B/compositional.json --out bars.png

Given results files of `python -m evaluate.compositional`, it draws one panel
per benchmark or suite: the headline, then a bar group per subset, one bar per
results file (Winoground: text, image, group, overall and per tag).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

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
    fig = Figure(figsize=(10, 4), dpi=110)
    loss_ax, recall_ax = fig.subplots(1, 2)
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


def read_compositional(path: Path) -> list[dict]:
    """The results of one `evaluate.compositional` output file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        results = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not JSON ({error.msg})") from None
    if not isinstance(results, list) or not all(isinstance(r, dict) and "suite" in r for r in results):
        raise ValueError(f"{path}: not a results file of python -m evaluate.compositional")
    return results


def bar_groups(result: dict) -> dict[str, float]:
    """The bars of one result, label -> fraction: headline first, then the subsets."""
    if "text" in result:  # Winoground and its synthetic twin
        groups = {m: result[m] for m in ("text", "image", "group")}
        for tag in ("by_collapsed_tag", "by_num_main_preds", "by_secondary_tag", "pair_subsets"):
            for value, v in result.get(tag, {}).items():
                name = f"{value} main preds" if tag == "by_num_main_preds" else value
                groups |= {f"{name} {m}": v[m] for m in ("text", "image", "group")}
        return groups
    headline = result.get("headline", {"name": "macro_acc", "value": result.get("macro_acc")})  # synthetic suites
    groups = {f"headline: {headline['name']}": headline["value"]} if headline["value"] is not None else {}
    subsets = result.get("subsets", {})
    if len(subsets) > 1:
        groups |= {k: v["acc"] for k, v in subsets.items() if v.get("in_headline", True)}
    return groups


def panel_name(result: dict, repeated: set[str]) -> str:
    """A result's panel: its suite, and where a file holds that suite more than once (scored with other
    tokens or settings, evaluate.compositional keeps each) also its token source and overridden settings."""
    if result["suite"] not in repeated:
        return result["suite"]
    given = [f"{k} {v['given']}" for k, v in result.get("differs_from_run", {}).items() if k != "token_source"]
    return f"{result['suite']} (tokens: {'; '.join([str(result.get('token_source')), *given])})"


def compositional_panels(files: dict[str, list[dict]]) -> dict[str, dict[str, dict[str, float]]]:
    """panel -> {file label -> bars}: one panel per suite, or per suite and scoring where a file has several."""
    counts = [Counter(r["suite"] for r in results) for results in files.values()]
    repeated = {suite for count in counts for suite, n in count.items() if n > 1}
    panels: dict[str, dict[str, dict[str, float]]] = {}
    for label, results in files.items():
        for result in results:
            panels.setdefault(panel_name(result, repeated), {})[label] = bar_groups(result)
    return panels


def plot_compositional(files: dict[str, list[dict]], path: Path) -> None:
    """Per-subset bars of several results files (label -> results) side by side."""
    panels = []
    for suite, bars in compositional_panels(files).items():
        panels.append((suite, bars, list(dict.fromkeys(k for groups in bars.values() for k in groups))))
    widest = max(len(labels) for _, _, labels in panels)
    fig = Figure(figsize=(max(6.0, 0.45 * widest * max(1, len(files)) ** 0.5 + 2), 3.6 * len(panels)), dpi=110)
    axes = fig.subplots(len(panels), 1)
    axes = [axes] if len(panels) == 1 else list(axes)
    width = 0.8 / len(files)
    for ax, (suite, bars, labels) in zip(axes, panels, strict=True):
        for k, (name, groups) in enumerate(bars.items()):
            xs = [j + (k - (len(bars) - 1) / 2) * width for j in range(len(labels))]
            heights = [100 * groups.get(label, float("nan")) for label in labels]
            bars_drawn = ax.bar(xs, heights, width, label=name)
            if len(labels) * len(bars) <= 60:  # a 0 % bar is invisible: print every value
                ax.bar_label(bars_drawn, fmt="%.0f", fontsize=6, padding=1)
        slanted = len(labels) > 6
        ax.set_xticks(range(len(labels)), labels, fontsize=8)
        if slanted:
            ax.tick_params(axis="x", labelrotation=60)
            for tick in ax.get_xticklabels():
                tick.set(ha="right", rotation_mode="anchor")
        ax.set(ylabel="%", ylim=(0, 108), title=suite)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path)


def _label(path: Path, results: list[dict], taken: set[str]) -> str:
    checkpoint = results[0].get("checkpoint")
    label = Path(checkpoint).parent.parent.name if checkpoint else path.parent.name or path.stem
    return label if label and label not in taken else str(path)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        prog="python -m evaluate.plot", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("paths", type=Path, nargs="+", help="a run directory, or compositional results JSON files")
    parser.add_argument("--out", type=Path, help="PNG path (default RUN_DIR/curves.png, or compositional.png here)")
    args = parser.parse_args(argv)
    try:
        if all(path.suffix == ".json" for path in args.paths):
            files: dict[str, list[dict]] = {}
            for path in args.paths:
                results = read_compositional(path)
                files[_label(path, results, set(files))] = results
            out = args.out or Path("compositional.png")
            plot_compositional(files, out)
            print(f"wrote {out}")
            return out
        if len(args.paths) != 1:
            raise ValueError("give one run directory, or compositional results files (.json)")
        records = read_results(args.paths[0])
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    out = args.out or args.paths[0] / "curves.png"
    plot_curves(records, out, title=args.paths[0].name)
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
