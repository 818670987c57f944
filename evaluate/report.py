"""The real benchmarks scored with their authors' rules, as tables and as a results record.

`score_benchmark(name, items, scores)` takes one score array per item (choice
items: a score per option, in the item's option order; Winoground pairs:
s[caption][image], 2 x 2) and applies the benchmark's own rule:

- aro-relation, aro-attribution: right when numpy's argmax over [false, true]
  is the true caption, so a tie is wrong. Headline: the mean over relations
  without the "Replicate ARO" notebook's excluded relations / the mean over
  attribute pairs with at least 25 items (mertyg/vision-language-models-are-bows,
  dataset_zoo/aro_datasets.py and notebooks/).
- coco-order, flickr-order: right when argmax over [caption, 4 perturbations]
  is the caption; argmax takes the first maximum, so a tie is right. Headline:
  accuracy (Precision@1) over all test cases (aro_datasets.py).
- sugarcrepe: right when score(caption) > score(negative): a tie is wrong.
  Accuracy per subset (RAIVNLab/sugar-crepe, main_eval.py).
- winoground: text = s(c0,i0) > s(c1,i0) and s(c1,i1) > s(c0,i1); image =
  s(c0,i0) > s(c0,i1) and s(c1,i1) > s(c1,i0); group = both; means over
  examples, also per collapsed_tag, num_main_preds and secondary_tag value
  (facebook/winoground, statistics/compute_statistics.py).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from evaluate.benchmarks import describe_benchmark

# The relations the "Replicate ARO! VG-Relation, VG-Attribution" notebook of
# mertyg/vision-language-models-are-bows drops before VG-Relation's macro accuracy
# (its list named `symmetric`: symmetric or ambiguous relations).
ARO_RELATIONS_LEFT_OUT = frozenset(
    [
        "adjusting", "attached to", "between", "bigger than", "biting", "boarding", "brushing", "chewing",
        "cleaning", "climbing", "close to", "coming from", "coming out of", "contain", "crossing", "dragging",
        "draped over", "drinking", "drinking from", "driving", "driving down", "driving on", "eating from",
        "eating in", "enclosing", "exiting", "facing", "filled with", "floating in", "floating on", "flying",
        "flying above", "flying in", "flying over", "flying through", "full of", "going down", "going into",
        "going through", "grazing in", "growing in", "growing on", "guiding", "hanging from", "hanging in",
        "hanging off", "hanging over", "higher than", "holding onto", "hugging", "in between", "jumping off",
        "jumping on", "jumping over", "kept in", "larger than", "leading", "leaning over", "leaving", "licking",
        "longer than", "looking in", "looking into", "looking out", "looking over", "looking through",
        "lying next to", "lying on top of", "making", "mixed with", "mounted on", "moving", "on the back of",
        "on the edge of", "on the front of", "on the other side of", "opening", "painted on", "parked at",
        "parked beside", "parked by", "parked in", "parked in front of", "parked near", "parked next to",
        "perched on", "petting", "piled on", "playing", "playing in", "playing on", "playing with", "pouring",
        "reaching for", "reading", "reflected on", "riding on", "running in", "running on", "running through",
        "seen through", "sitting behind", "sitting beside", "sitting by", "sitting in front of", "sitting near",
        "sitting next to", "sitting under", "skiing down", "skiing on", "sleeping in", "sleeping on",
        "smiling at", "sniffing", "splashing", "sprinkled on", "stacked on", "standing against",
        "standing around", "standing behind", "standing beside", "standing in front of", "standing near",
        "standing next to", "staring at", "stuck in", "surrounding", "swimming in", "swinging", "talking to",
        "topped with", "touching", "traveling down", "traveling on", "tying", "typing on", "underneath",
        "wading in", "waiting for", "walking across", "walking by", "walking down", "walking next to",
        "walking through", "working in", "working on", "worn on", "wrapped around", "wrapped in", "by", "of",
        "near", "next to", "with", "beside", "on the side of", "around",
    ]
)  # fmt: skip
ARO_MIN_PAIR_ITEMS = 25  # VG_Attribution.evaluate_scores keeps attribute pairs with at least 25 items

DEFINITIONS = {
    "aro-relation": {
        "rule": "argmax over [false caption, true caption] must be the true one; a tie is wrong",
        "headline_definition": "macro_acc: mean accuracy over relations, the notebook's excluded relations left out",
        "source": "mertyg/vision-language-models-are-bows: dataset_zoo/aro_datasets.py (VG_Relation), "
        "notebooks/Replicate ARO! VG-Relation, VG-Attribution.ipynb",
    },
    "aro-attribution": {
        "rule": "argmax over [false caption, true caption] must be the true one; a tie is wrong",
        "headline_definition": f"macro_acc: mean accuracy over attribute pairs of {ARO_MIN_PAIR_ITEMS} items or more",
        "source": "mertyg/vision-language-models-are-bows: dataset_zoo/aro_datasets.py (VG_Attribution)",
    },
    "coco-order": {
        "rule": "argmax over [caption, 4 perturbations] must be the caption; the first maximum wins, a tie is right",
        "headline_definition": "acc: Precision@1 over every caption's test case",
        "source": "mertyg/vision-language-models-are-bows: dataset_zoo/aro_datasets.py (COCO_Order)",
    },
    "sugarcrepe": {
        "rule": "score(caption) > score(negative caption); a tie is wrong",
        "headline_definition": "acc per subset (main_eval.py reports the subsets; mean_of_subsets is our summary)",
        "source": "RAIVNLab/sugar-crepe: main_eval.py",
    },
    "winoground": {
        "rule": "text: s(c0,i0) > s(c1,i0) and s(c1,i1) > s(c0,i1); image: s(c0,i0) > s(c0,i1) and "
        "s(c1,i1) > s(c1,i0); group: both (strict: a tie fails)",
        "headline_definition": "text, image, group: means over examples; also by collapsed_tag, num_main_preds, "
        "secondary_tag",
        "source": "facebook/winoground: statistics/compute_statistics.py",
    },
}
DEFINITIONS["flickr-order"] = {
    **DEFINITIONS["coco-order"],
    "source": "mertyg/vision-language-models-are-bows: dataset_zoo/aro_datasets.py (Flickr30k_Order)",
}
HEADLINES = {
    "aro-relation": "macro_acc",
    "aro-attribution": "macro_acc",
    "coco-order": "acc",
    "flickr-order": "acc",
    "sugarcrepe": "mean_of_subsets",
    "winoground": "group",
}


def argmax_is_answer(scores: np.ndarray, answer: int) -> bool:
    """ARO's rule: numpy's argmax, which returns the first of equal maxima."""
    return int(np.argmax(scores)) == answer


def answer_strictly_best(scores: np.ndarray, answer: int) -> bool:
    """SugarCrepe's rule: the true option's score above every other's."""
    return bool(scores[answer] > np.delete(scores, answer).max())


def winoground_correct(s: np.ndarray) -> tuple[bool, bool, bool]:
    """(text, image, group) of one example from s[caption][image]."""
    text = s[0, 0] > s[1, 0] and s[1, 1] > s[0, 1]
    image = s[0, 0] > s[0, 1] and s[1, 1] > s[1, 0]
    return bool(text), bool(image), bool(text and image)


def item_scores(items: list[dict], images: dict, texts: dict) -> list[np.ndarray]:
    """Cosine scores of every item from embeddings keyed by image REF (JSON) and caption."""
    scores = []
    for item in items:
        captions = torch.stack([texts[c] for c in item["captions"]]).float()
        refs = item["images"] if "images" in item else [item["image"]]
        pictures = torch.stack([images[json.dumps(ref, sort_keys=True)] for ref in refs]).float()
        s = (captions @ pictures.T).numpy()  # [captions, images]
        scores.append(s if "images" in item else s[:, 0])
    return scores


def _accuracy_by_subset(items: list[dict], correct: list[bool], in_file_order: bool = False) -> dict:
    groups: dict[str, list[bool]] = defaultdict(list)
    for item, right in zip(items, correct, strict=True):
        groups[item.get("subset", "all")].append(right)
    names = list(groups) if in_file_order else sorted(groups)
    return {name: {"acc": float(np.mean(groups[name])), "n": len(groups[name])} for name in names}


def _choice_result(name: str, items: list[dict], scores: list[np.ndarray]) -> dict:
    rule = answer_strictly_best if name == "sugarcrepe" else argmax_is_answer
    correct = [rule(s, item["answer"]) for item, s in zip(items, scores, strict=True)]
    subsets = _accuracy_by_subset(items, correct, in_file_order=name == "sugarcrepe")
    result = {"acc": float(np.mean(correct)), "subsets": subsets}

    def mean_of(names: list[str]) -> float | None:  # None: no subset qualifies (a small --count)
        return float(np.mean([subsets[k]["acc"] for k in names])) if names else None

    if name == "aro-relation":
        kept = [k for k in subsets if k not in ARO_RELATIONS_LEFT_OUT]
        for k, v in subsets.items():
            v["in_headline"] = k in kept
        result.update(macro_acc=mean_of(kept), macro_acc_all_relations=mean_of(list(subsets)))
    elif name == "aro-attribution":
        kept = [k for k, v in subsets.items() if v["n"] >= ARO_MIN_PAIR_ITEMS]
        for k, v in subsets.items():
            v["in_headline"] = k in kept
        result.update(macro_acc=mean_of(kept), macro_acc_all_pairs=mean_of(list(subsets)))
    elif name == "sugarcrepe":
        result["mean_of_subsets"] = mean_of(list(subsets))
    return result


def _pair_means(rows: list[tuple[bool, bool, bool]]) -> dict:
    return {m: float(np.mean([r[k] for r in rows])) for k, m in enumerate(("text", "image", "group"))} | {
        "n": len(rows)
    }


def _winoground_result(items: list[dict], scores: list[np.ndarray]) -> dict:
    rows = [winoground_correct(s) for s in scores]
    result = _pair_means(rows)
    for tag in ("collapsed_tag", "num_main_preds", "secondary_tag"):
        groups: dict[str, list] = defaultdict(list)
        for item, row in zip(items, rows, strict=True):
            value = item.get("tags", {}).get(tag)
            if value not in (None, ""):  # compute_statistics.py filters on a tag's exact value
                groups[str(value)].append(row)
        result[f"by_{tag}"] = {value: _pair_means(v) for value, v in sorted(groups.items())}
    return result


def score_benchmark(name: str, items: list[dict], scores: list[np.ndarray]) -> dict:
    """Every figure of benchmark `name` from one score array per item."""
    if not items:
        raise ValueError(f"{name}: no items to score")
    if name not in DEFINITIONS:
        raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(DEFINITIONS)}")
    body = _winoground_result(items, scores) if name == "winoground" else _choice_result(name, items, scores)
    headline = HEADLINES[name]
    return {
        "benchmark": name,
        "items": len(items),
        "headline": {"name": headline, "value": body[headline]},
        **DEFINITIONS[name],
        **body,
    }


def benchmark_result(name: str, items: list[dict], images: dict, texts: dict, root: str | Path) -> dict:
    """The results record of a benchmark: every figure, its definitions, its files' sha256
    and the approximations used, from embeddings keyed as `item_scores` reads them."""
    result = score_benchmark(name, items, item_scores(items, images, texts))
    return {"suite": name, **result, **describe_benchmark(name, root, items)}


def _percent(value: float | None) -> str:
    return "    n/a" if value is None else f"{100 * value:6.1f}%"


def format_benchmark(result: dict) -> str:
    """One table: the headline first, then the subsets."""
    name, headline = result["benchmark"], result["headline"]
    lines = [f"{name}: {result['items']} items; {headline['name']} {_percent(headline['value']).strip()}"]
    if name == "winoground":
        lines.append(f"  {'':<28}{'n':>6}{'text':>8}{'image':>8}{'group':>8}")
        rows = [("all", result)] + [
            (f"{tag.removeprefix('by_')}={value}", v)
            for tag in ("by_collapsed_tag", "by_num_main_preds", "by_secondary_tag")
            for value, v in result[tag].items()
        ]
        for label, v in rows:
            lines.append(
                f"  {label:<28}{v['n']:>6}" + "".join(f"{_percent(v[m]):>8}" for m in ("text", "image", "group"))
            )
    else:
        summary = ("macro_acc", "macro_acc_all_relations", "macro_acc_all_pairs", "mean_of_subsets", "acc")
        for key in [headline["name"]] + [k for k in summary if k in result and k != headline["name"]]:
            lines.append(f"  {key:<28}{_percent(result[key])}")
        if list(result["subsets"]) != [name]:
            lines.append(f"  {'subset':<28}{'n':>6}{'acc':>8}")
            for k, v in result["subsets"].items():
                mark = "" if v.get("in_headline", True) else "  (not in headline)"
                lines.append(f"  {k:<28}{v['n']:>6}{_percent(v['acc']):>8}{mark}")
    if result.get("approximations"):
        lines += [f"  approximation: {a}" for a in result["approximations"]]
    if result.get("missing_subsets"):
        lines.append(f"  subsets skipped (--skip-missing-subsets): {', '.join(result['missing_subsets'])}")
    return "\n".join(lines)
