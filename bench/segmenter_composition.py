"""Composition of one checkpoint with each token source: exact masks, felzenszwalb, slic, quickshift.

    python bench/segmenter_composition.py --checkpoint RUN/checkpoints/latest.pt \\
        --suite relation-swap --suite winoground-synthetic --count 500 \\
        --out bench/results/segmenter_composition.json

For each token source, evaluate.compositional scores the same synthetic suite
items (same --seed, --count and --world): `exact` keeps the drawn images'
exact masks, shape labels and triplets (what a run on the synthetic world
trained on); each segmenter tokenizes the same drawn images instead
(`--token-source NAME --override-checkpoint-config`), its regions becoming
object tokens with geometric relations between them: no labels, and no
`points at` (nothing detects arrows). Writes the JSON (every result as
evaluate.compositional gives it, per token source) and a markdown table
beside it (same name, .md).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.synthetic import WORLDS  # noqa: E402
from evaluate.compositional import main as compositional_main  # noqa: E402
from evaluate.suites import SYNTHETIC_SUITES  # noqa: E402
from graphs.tokens import SEGMENTERS  # noqa: E402

TOKEN_SOURCES = ("exact", *SEGMENTERS)


def score(
    checkpoint: Path,
    suites: list[str],
    sources: tuple[str, ...] = TOKEN_SOURCES,
    count: int | None = None,
    seed: int = 0,
    world: str | None = None,
    device: str = "auto",
) -> list[dict]:
    """One row per (token source, suite): evaluate.compositional's result with its token source."""
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for source in sources:
            argv = ["--checkpoint", str(checkpoint), "--seed", str(seed), "--device", device]
            argv += [flag for suite in suites for flag in ("--suite", suite)]
            argv += ["--count", str(count)] if count else []
            argv += ["--world", world] if world else []
            argv += [] if source == "exact" else ["--token-source", source, "--override-checkpoint-config"]
            argv += ["--output", str(Path(scratch) / f"{source}.json")]
            for result in compositional_main(argv):
                if result["token_source"] != source:
                    raise RuntimeError(f"{result['suite']} was scored with {result['token_source']}, not {source}")
                rows.append(result)
    return rows


def percent(value: float | None, ci: list[float] | None = None) -> str:
    if value is None:
        return "–"
    return f"{100 * value:.1f}" + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else "")


def format_rows(rows: list[dict]) -> str:
    lines = [
        "| token source | suite | items | object tokens / image | headline (95 % interval) | all items | per subset |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        headline = row.get("headline", {})
        if "subsets" in row:
            everything = f"acc {percent(row['acc'], row['acc_ci'])}"
            subsets = ", ".join(f"{k} {percent(v['acc'])} (n {v['n']})" for k, v in row["subsets"].items())
        else:
            everything = f"group {percent(row['group'], row['group_ci'])}"
            subsets = ", ".join(f"{k} {percent(v['group'])} (n {v['n']})" for k, v in row["pair_subsets"].items())
        value = headline.get("value")
        shown = "n/a (no subset of 50 items)" if value is None else percent(value, headline.get("ci"))
        tokens = row["object_tokens_per_image"]
        lines.append(
            f"| {row['token_source']} | {row['suite']} | {row['items']} | "
            f"{'–' if tokens is None else f'{tokens:.1f}'} | {headline.get('name', '')} {shown} | {everything} "
            f"| {subsets} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True, help="RUN/checkpoints/latest.pt")
    parser.add_argument(
        "--suite", action="append", choices=SYNTHETIC_SUITES, required=True, help="a synthetic suite; repeat"
    )
    parser.add_argument("--count", type=int, help="use the first N items of each suite")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic suites")
    parser.add_argument("--world", choices=tuple(WORLDS), help="world of the suites (default: the run's)")
    parser.add_argument(
        "--token-source",
        action="append",
        choices=TOKEN_SOURCES,
        help=f"repeat for several (default: all of {', '.join(TOKEN_SOURCES)})",
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--out", type=Path, help="JSON file for the rows (the table goes beside it, .md)")
    args = parser.parse_args(argv)
    sources = tuple(args.token_source or TOKEN_SOURCES)
    rows = score(args.checkpoint, args.suite, sources, args.count, args.seed, args.world, args.device)
    table = format_rows(rows)
    print(f"{args.checkpoint}: {', '.join(args.suite)} (seed {args.seed}, count {args.count or 'the suite default'})")
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        record = {"checkpoint": str(args.checkpoint), "suites": args.suite, "count": args.count, "seed": args.seed}
        args.out.write_text(json.dumps({**record, "world": args.world, "rows": rows}, indent=2) + "\n")
        args.out.with_suffix(".md").write_text(table + "\n")
        print(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    return rows


if __name__ == "__main__":
    main()
