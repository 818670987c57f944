"""Rows trained once per seed: mean, spread and 95 % intervals (`evaluate.ablate --seeds`).

Each (row, seed) is a cell: one training run scored like a single-seed row,
kept in ROW/seed-S/row.json and reused when the command runs again. Per row and
metric the summary gives the mean over seeds, the sample standard deviation
and a 95 % t interval of the mean (Student's t with n - 1 degrees of freedom:
few seeds make wide intervals); against the reference row, the difference is
paired by seed (the seeds both rows finished), with its own t interval. A
difference whose interval excludes zero is marked ``*``. One seed gives a
mean and no interval (NaN).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


def parse_seeds(value: str) -> list[int]:
    """'0,1,2' -> [0, 1, 2]; duplicates or non-integers are a ValueError."""
    try:
        seeds = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--seeds {value!r}: give comma-separated integers, e.g. 0,1,2") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds {value!r}: give distinct comma-separated integers, e.g. 0,1,2")
    return seeds


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> dict[str, float]:
    """Mean, sample sd and the t interval of the mean of the finite `values` (NaNs dropped)."""
    finite = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    n = len(finite)
    nan = float("nan")
    if n == 0:
        return {"n": 0, "mean": nan, "sd": nan, "low": nan, "high": nan}
    mean = float(finite.mean())
    if n == 1:
        return {"n": 1, "mean": mean, "sd": nan, "low": nan, "high": nan}
    sd = float(finite.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return {"n": n, "mean": mean, "sd": sd, "low": mean - half, "high": mean + half}


def paired_difference(
    row: dict[int, float], reference: dict[int, float], confidence: float = CONFIDENCE
) -> dict[str, float]:
    """The row minus the reference, paired by seed over the seeds where both are finite,
    with its t interval and ``excludes_zero``."""
    seeds = [s for s in row if s in reference and _finite(row[s]) and _finite(reference[s])]
    summary = t_interval([row[s] - reference[s] for s in seeds], confidence)
    summary["excludes_zero"] = bool(summary["low"] > 0 or summary["high"] < 0)  # NaN compares False
    return summary


def relative_gain(
    row: dict[int, float], baseline: dict[int, float], confidence: float = CONFIDENCE
) -> dict[str, float]:
    """How far the row is above the baseline relative to it (row / baseline - 1, as the seed paper
    states "+47 % over a ViT"), over the seeds where both are finite and above zero: the t interval
    is taken on log(row / baseline) per seed and mapped back, so `mean` is the geometric mean ratio
    - 1 (a seed with a tiny baseline cannot outweigh the others) and the interval stays above -100 %.
    `excludes_zero` as for differences; `dropped` lists the seeds left out (a row or baseline <= 0)."""
    both = [s for s in row if s in baseline and _finite(row[s]) and _finite(baseline[s])]
    seeds = [s for s in both if row[s] > 0 and baseline[s] > 0]
    logs = t_interval([math.log(row[s] / baseline[s]) for s in seeds], confidence)
    summary = {"n": logs["n"], "sd_log": logs["sd"], "dropped": [s for s in both if s not in seeds]}
    summary |= {k: math.expm1(logs[k]) if math.isfinite(logs[k]) else logs[k] for k in ("mean", "low", "high")}
    summary["excludes_zero"] = bool(logs["low"] > 0 or logs["high"] < 0)
    return summary


def margins(
    cells: dict[str, dict[int, dict]], columns: Sequence[str], reference: str, baselines: Sequence[str]
) -> str:
    """The reference row's relative gain over each baseline row present, per column, as lines of text."""
    lines = []
    for name in baselines:
        if name not in cells:
            continue
        lines.append(
            f"{reference!r} over {name!r}, relative gain (reference / baseline - 1, geometric mean over seeds) "
            "[95 % interval]"
        )
        for column in columns:
            gain = relative_gain(
                {s: _value(c, column) for s, c in cells[reference].items()},
                {s: _value(c, column) for s, c in cells[name].items()},
            )
            mark = "*" if gain["excludes_zero"] else ""
            dropped = f"; left out, a value <= 0: seed {','.join(map(str, gain['dropped']))}" if gain["dropped"] else ""
            lines.append(
                f"  {column:<16}{_points(gain['mean'])} % [{_points(gain['low'])},{_points(gain['high'])}]{mark}"
                f" (n={gain['n']}{dropped})"
            )
    return "\n".join(lines)


def _finite(value) -> bool:
    return value is not None and math.isfinite(value)


def summarise(cells: dict[str, dict[int, dict]], columns: Sequence[str], reference: str) -> list[dict]:
    """Per row (the reference first, then the others in the order of `cells`): for each column its
    `t_interval` over seeds and, except for the reference row, its `paired_difference` to the reference."""
    base = {c: {s: _value(cell, c) for s, cell in cells[reference].items()} for c in columns}
    out = []
    for name in [reference, *(n for n in cells if n != reference)]:
        by_seed = cells[name]
        entry = {"row": name, "seeds": sorted(by_seed), "columns": {}}
        for column in columns:
            values = {s: _value(cell, column) for s, cell in by_seed.items()}
            column_summary = {"value": t_interval(list(values.values()))}
            if name != reference:
                column_summary["delta"] = paired_difference(values, base[column])
            entry["columns"][column] = column_summary
        out.append(entry)
    return out


def _value(cell: dict, column: str) -> float:
    value = cell.get(column)
    return float("nan") if value is None else float(value)


def _points(x: float) -> str:
    return "nan" if not math.isfinite(x) else f"{100 * x:.1f}"


def format_cell(column_summary: dict, seeds: int | None = None) -> str:
    """'62.3±1.2 [59.4,65.2]' and, against the reference, ' Δ+3.1 [0.4,5.8]*' (points). Given the
    row's number of `seeds`, a mean or difference over fewer of them (a cell without the metric)
    says over how many: '(n=2)'."""
    value = column_summary["value"]
    text = f"{_points(value['mean'])}±{_points(value['sd'])} [{_points(value['low'])},{_points(value['high'])}]"
    if seeds is not None and value["n"] != seeds:
        text += f" (n={value['n']})"
    delta = column_summary.get("delta")
    if delta is not None:
        sign = "+" if math.isfinite(delta["mean"]) and delta["mean"] >= 0 else ""
        mark = "*" if delta["excludes_zero"] else ""
        text += f" Δ{sign}{_points(delta['mean'])} [{_points(delta['low'])},{_points(delta['high'])}]{mark}"
        if seeds is not None and delta["n"] != seeds:
            text += f" (paired n={delta['n']})"
    return text


def table(summary: list[dict], columns: Sequence[str]) -> str:
    """One line per row and metric: mean ± sd [95 % interval], and the paired difference to the reference."""
    reference = summary[0]["row"]
    lines = [
        f"mean ± sd [95 % t interval] over seeds, in points; Δ = paired difference to {reference!r} "
        "[95 % interval], * = the interval excludes zero"
    ]
    width = max([16, *(len(column) + 2 for column in columns)])  # 'wino_group:5 objects' and its value apart
    for entry in summary:
        lines.append(f"{entry['row']}  (seeds {','.join(map(str, entry['seeds']))})")
        seeds = len(entry["seeds"])
        lines.extend(f"  {column:<{width}}{format_cell(entry['columns'][column], seeds)}" for column in columns)
    return "\n".join(lines)


def write_csv(summary: list[dict], columns: Sequence[str], path: Path) -> None:
    """One line per (row, metric): n, mean, sd, interval; the paired difference and its mark."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["row", "metric", "n", "mean", "sd", "ci_low", "ci_high", "delta_n", "delta", "delta_low", "delta_high",
             "delta_excludes_zero"]
        )  # fmt: skip
        for entry in summary:
            for column in columns:
                value = entry["columns"][column]["value"]
                delta = entry["columns"][column].get("delta")
                numbers = [value["mean"], value["sd"], value["low"], value["high"]]
                differences = (
                    [delta["n"], *(f"{delta[k]:.4f}" for k in ("mean", "low", "high")), int(delta["excludes_zero"])]
                    if delta is not None
                    else ["", "", "", "", ""]
                )
                writer.writerow([entry["row"], column, value["n"], *(f"{x:.4f}" for x in numbers), *differences])


def chart(summary: list[dict], columns: Sequence[str], path: Path, title: str) -> None:
    """Paired difference to the reference per metric and row, with its 95 % interval as an error
    bar; bars whose interval excludes zero are drawn solid, the others hatched."""
    from matplotlib.figure import Figure

    others = summary[1:]
    fig = Figure(figsize=(max(8, len(others) * 1.1), 4.8), dpi=110)
    ax = fig.subplots()
    width = 0.8 / len(columns)
    for k, column in enumerate(columns):
        deltas = [entry["columns"][column]["delta"] for entry in others]
        x = [i + (k - (len(columns) - 1) / 2) * width for i in range(len(others))]
        means = np.array([100 * d["mean"] for d in deltas])
        errors = np.array([[100 * (d["mean"] - d["low"]), 100 * (d["high"] - d["mean"])] for d in deltas]).T
        bars = ax.bar(x, means, width, label=column, yerr=np.nan_to_num(errors), capsize=2)
        for bar, delta in zip(bars, deltas, strict=True):
            if not delta["excludes_zero"]:
                bar.set_alpha(0.45)
                bar.set_hatch("//")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(range(len(others)), [entry["row"] for entry in others], rotation=30, ha="right")
    ax.set_ylabel(f"paired change against {summary[0]['row']!r} (points, 95 % interval)")
    ax.set_title(f"{title}; solid = interval excludes 0")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


def run_cells(
    rows: dict[str, list[str]],
    seeds: Sequence[int],
    run_cell: Callable[[str, list[str], int, Path], dict],
    folder: Callable[[str], Path],
) -> dict[str, dict[int, dict]]:
    """Every row once per seed: `run_cell(name, flags, seed, cell_folder)` scores one cell
    (and reuses it when it is already done); cells live in folder(name)/seed-S."""
    cells: dict[str, dict[int, dict]] = {}
    for name, flags in rows.items():
        cells[name] = {}
        for seed in seeds:
            print(f"== {name} (seed {seed})", flush=True)
            cells[name][seed] = run_cell(name, flags, seed, folder(name) / f"seed-{seed}")
    return cells


def _json_numbers(value):
    """`value` with every non-finite float as None (JSON has no NaN: strict parsers refuse it)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_numbers(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_numbers(v) for v in value]
    return value


def empty_columns(summary: list[dict], columns: Sequence[str]) -> list[str]:
    """The metrics with no finite value in any row and seed."""
    return [c for c in columns if not any(entry["columns"][c]["value"]["n"] for entry in summary)]


def write_outputs(
    summary: list[dict],
    columns: Sequence[str],
    out: Path,
    stem: str,
    title: str,
    charted: Sequence[str],
    appendix: str = "",
) -> str:
    """OUT/STEM-seeds.{txt,csv,json,png} (the chart shows the `charted` metrics); returns the text,
    the table then `appendix` (the margins). A metric no cell has a value for (a suite subset this
    world does not have) is left out, and named."""
    out.mkdir(parents=True, exist_ok=True)
    empty = empty_columns(summary, columns)
    columns = [c for c in columns if c not in empty]
    charted = [c for c in charted if c not in empty]
    summary = [{**entry, "columns": {c: entry["columns"][c] for c in columns}} for entry in summary]
    text = table(summary, columns)
    if empty:
        text += f"\nleft out, no value in any cell: {', '.join(empty)}"
    if appendix:
        text += "\n" + appendix
    (out / f"{stem}-seeds.txt").write_text(text + "\n")
    write_csv(summary, columns, out / f"{stem}-seeds.csv")
    (out / f"{stem}-seeds.json").write_text(json.dumps(_json_numbers(summary), indent=2) + "\n")
    chart(summary, charted, out / f"{stem}-seeds.png", title)
    return text
