"""95 % intervals for suite figures, and the headline macro over subsets large enough to mean something.

- An accuracy (a subset's, all items', a Winoground-style text / image / group
  score) gets the Wilson score interval of its n items.
- The headline macro is the mean accuracy of the subsets with at least
  `min_items` items (50 unless told), the others left out and named. Its
  interval is the normal approximation of a mean of independent subset
  accuracies: the subsets share no item, so
  var(macro) = (1 / k²) Σ p_i (1 − p_i) / n_i, and macro ± 1.96 √var, clipped to
  [0, 1]. (A subset at exactly 0 or 1 adds no variance; with ≥ 50 items each
  this understates the width by little.)

As evaluate.report's records do, a result names its `headline` ({"name", "value",
"ci"}) and `headline_definition`, and marks each subset `in_headline`.
"""

from __future__ import annotations

import math

Z95 = 1.959963984540054  # the standard normal's 97.5 % quantile
MIN_HEADLINE_ITEMS = 50


def wilson(accuracy: float, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion `accuracy` of `n` items."""
    if n <= 0:
        return (0.0, 1.0)
    centre = (accuracy + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(accuracy * (1 - accuracy) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def headline_macro(subsets: dict[str, dict], key: str = "acc", min_items: int = MIN_HEADLINE_ITEMS) -> dict:
    """Mean of `key` over the subsets with at least `min_items` items, with its 95 % interval.

    `subsets` maps a name to {key: accuracy, "n": items}. The value is None when no
    subset qualifies."""
    used = {name: s for name, s in subsets.items() if s["n"] >= min_items}
    left_out = {name: s["n"] for name, s in subsets.items() if s["n"] < min_items}
    result: dict = {"min_items": min_items, "subsets": sorted(used), "left_out": left_out}
    if not used:
        return result | {"value": None, "ci": None}
    k = len(used)
    value = sum(s[key] for s in used.values()) / k
    variance = sum(s[key] * (1 - s[key]) / s["n"] for s in used.values()) / (k * k)
    half = Z95 * math.sqrt(variance)
    return result | {"value": value, "ci": [max(0.0, value - half), min(1.0, value + half)]}


def add_intervals(result: dict, min_items: int = MIN_HEADLINE_ITEMS) -> dict:
    """A suite result of evaluate.compositional.score with a 95 % interval ("ci") beside each
    accuracy and the headline macro (`headline_macro`) over subsets of at least `min_items`."""
    out = dict(result)
    if "pair_subsets" in result:
        for key in ("pair_subsets", "pair_predicates", "pair_held_out"):
            if key in result:
                out[key] = {
                    k: v | {f"{m}_ci": list(wilson(v[m], v["n"])) for m in ("text", "image", "group")}
                    for k, v in result[key].items()
                }
        n = sum(v["n"] for v in result["pair_subsets"].values())
        out.update({f"{m}_ci": list(wilson(result[m], n)) for m in ("text", "image", "group")})
        out["headline"] = {"name": "group", "value": result["group"], "ci": out["group_ci"]}
        out["headline_definition"] = "group: Winoground's group score over every pair (Wilson 95 % interval)"
    if "subsets" in result:
        out["subsets"] = {
            k: v | {"ci": list(wilson(v["acc"], v["n"])), "in_headline": v["n"] >= min_items}
            for k, v in result["subsets"].items()
        }
        if "held_out_kinds" in result:
            out["held_out_kinds"] = {
                k: v | {"ci": list(wilson(v["acc"], v["n"]))} for k, v in result["held_out_kinds"].items()
            }
        n = sum(v["n"] for v in result["subsets"].values())
        out["acc_ci"] = list(wilson(result["acc"], n))
        macro = out["headline_macro"] = headline_macro(result["subsets"], "acc", min_items)
        out["headline"] = {"name": "headline_macro", "value": macro["value"], "ci": macro["ci"]}
        out["headline_definition"] = (
            f"headline_macro: mean accuracy over subsets of {min_items} items or more "
            "(95 % interval: normal approximation over independent subsets)"
        )
    return out


def pair_rows(result: dict) -> list[tuple[str, dict]]:
    """A pair suite's subsets (by object count on world v4), then the same pairs by predicate, then
    (the held-out suite) by the kind of combination they hold out."""
    held_out = [(f"held-out {k}", v) for k, v in result.get("pair_held_out", {}).items()]
    return [*result["pair_subsets"].items(), *result.get("pair_predicates", {}).items(), *held_out]


def format_intervals(result: dict) -> list[str]:
    """Lines telling each headline of a result with its interval, and what the macro left out."""

    def pct(value: float, ci: list[float]) -> str:
        return f"{100 * value:.1f}% [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"

    lines = []
    if "headline_macro" in result:
        macro = result["headline_macro"]
        used = ", ".join(macro["subsets"]) or "none"
        told = "n/a" if macro["value"] is None else pct(macro["value"], macro["ci"])
        lines.append(f"  headline macro over subsets with >= {macro['min_items']} items ({used}): {told}")
        if macro["left_out"]:
            lines.append("  left out of the macro: " + ", ".join(f"{k} ({n})" for k, n in macro["left_out"].items()))
        lines.append(f"  all items: {pct(result['acc'], result['acc_ci'])}")
        for k, v in result.get("held_out_kinds", {}).items():
            lines.append(f"  held-out {k}: {pct(v['acc'], v['ci'])} (n {v['n']})")
    if "group_ci" in result:
        lines.append("  " + ", ".join(f"{m} {pct(result[m], result[f'{m}_ci'])}" for m in ("text", "image", "group")))
        for k, v in pair_rows(result):
            lines.append(f"  {k}: group {pct(v['group'], v['group_ci'])} (n {v['n']})")
    if lines:
        lines.insert(0, "  95% intervals (Wilson; the macro's: normal approximation over independent subsets)")
    return lines
