"""The data settings of a trained run, for every command that reads a checkpoint.

A checkpoint carries the flags of its run (`params`; the run's `params.json`
holds the same). A command that scores or shows a checkpoint takes every data
setting from there: a flag left off its command line gets the run's value. A
flag given that contradicts a setting which shapes the graphs (graph type,
dropped edge types, featurizer and backbone, caps, token source) is refused,
naming each one, unless `--override-checkpoint-config` asks for it; the
results then record what differs from training. Flags that choose which
images are scored (split sizes, seed, dataset folders) may differ freely, and
the results record those too.
"""

from __future__ import annotations

import argparse
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from data.cli import add_data_arguments
from data.sources import DataOptions
from train.config import explicit_flags, merge, read_config

# Settings that shape every graph the model sees: a contradicting flag is refused.
GRAPH_SETTINGS = (
    "graph_type",
    "drop_edge_types",
    "edge_schema",
    "featurizer",
    "backbone",
    "backbone_weights",
    "max_relations",
    "max_objects",
    "relations",
    "token_source",
    "maskrcnn_weights",
)
# Settings that only apply to some datasets: a run on another dataset never used them.
USED_BY = {
    "token_source": ("images",),
    "tokens_file": ("images",),
    "maskrcnn_weights": ("images",),
    "relations": ("coco",),
    "max_objects": ("coco", "images"),
    "world": ("synthetic",),
    "held_out_combinations": ("synthetic",),
}
# Settings that choose which images are scored: the run's by default, free to differ (and recorded).
SELECTION_SETTINGS = (
    "dataset",
    "seed",
    "train_size",
    "val_size",
    "coco_root",
    "split",
    "val_split",
    "vg_dir",
    "karpathy",
    "images",
    "captions",
    "val_fraction",
    "tokens_file",
    "world",
    "held_out_combinations",
)
# Settings of the computation only: the run's by default, never compared.
LOCAL_SETTINGS = ("cache_dir", "no_cache", "mmap", "workers", "on_bad_image", "batch_size")
FILE_SETTINGS = {"backbone_weights", "maskrcnn_weights"}  # equal when the bytes are, wherever they lie
PATH_SETTINGS = {"coco_root", "vg_dir", "karpathy", "images", "captions", "tokens_file", "cache_dir"}
OVERRIDE_FLAG = "--override-checkpoint-config"


@dataclass
class RunSettings:
    """The flags to evaluate with, and what in them differs from the run's own."""

    args: argparse.Namespace
    params: dict
    source: str
    differs: dict[str, dict] = field(default_factory=dict)  # {setting: {"run", "given", "shapes_graphs"}}
    override: bool = False

    def options(self) -> DataOptions:
        """The run's DataOptions with this command's flags on top (a command may have only some)."""
        options = options_from_params(self.params)
        flags = vars(self.args)
        for name in DataOptions.__dataclass_fields__:
            if name in flags:
                setattr(options, name, flags[name])
        if "no_cache" in flags:
            options.use_cache = not flags["no_cache"]
        if "on_bad_image" in flags:
            options.on_bad = flags["on_bad_image"]
        return options

    def record(self) -> dict:
        """What results files carry: the params they came from and every setting that differs."""
        return {
            "run_config": self.source,
            "override_checkpoint_config": self.override,
            "differs_from_run": {
                key: {"run": value["run"], "given": value["given"]} for key, value in self.differs.items()
            },
        }

    def report(self) -> str:
        """Lines to print before the results ('' when nothing differs)."""
        lines = []
        graph = {k: v for k, v in self.differs.items() if v["shapes_graphs"]}
        if graph:
            lines.append("OVERRIDDEN: scored on graphs unlike the run's (--override-checkpoint-config):")
            lines += [f"  {flag_name(k)} {show(v['given'])} (the run: {show(v['run'])})" for k, v in graph.items()]
        other = {k: v for k, v in self.differs.items() if not v["shapes_graphs"]}
        if other:
            lines.append(
                "differs from the run: "
                + ", ".join(f"{flag_name(k)} {show(v['given'])} (the run: {show(v['run'])})" for k, v in other.items())
            )
        return "\n".join(lines)


class ContradictsRun(ValueError):
    """A flag contradicts a graph-shaping setting of the checkpoint's run."""


def flag_name(setting: str) -> str:
    return "--" + setting.replace("_", "-")


def show(value) -> str:
    if value is None or value == []:
        return "(none)"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


def add_run_data_arguments(parser: argparse.ArgumentParser) -> None:
    """The data flags of the trainer, defaulting to the run's, plus --seed and the override flag."""
    add_data_arguments(parser)
    for group in parser._action_groups:
        if group.title == "data":
            group.description = (
                "Every data flag defaults to the checkpoint's run (its params); the defaults shown apply only "
                "where the run recorded none. A flag that contradicts how the run built its graphs is refused."
            )
    if not any(action.dest == "seed" for action in parser._actions):
        parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic world (default: the run's)")
    add_override_argument(parser)


def add_graph_arguments(parser: argparse.ArgumentParser, settings: tuple[str, ...] = GRAPH_SETTINGS) -> None:
    """Some of the trainer's data flags (same names, types, choices and help), for a command without
    the whole data group; each defaults to the checkpoint's run."""
    donor = argparse.ArgumentParser(add_help=False)
    add_data_arguments(donor)
    group = parser.add_argument_group(
        "graphs",
        "How images become graphs; with a checkpoint each defaults to its run's, and a contradicting flag is refused.",
    )
    for action in donor._actions:
        if action.dest in settings:
            group._add_action(action)
    add_override_argument(parser)


def add_override_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        OVERRIDE_FLAG,
        action="store_true",
        help="score with flags that contradict how the checkpoint's run built its graphs; the output and the "
        "JSON record what differs from training",
    )


def options_from_params(params: dict) -> DataOptions:
    """The DataOptions a run's params describe (for code that has no command line of its own)."""
    names = set(DataOptions.__dataclass_fields__) - {"hard_negatives", "pixels"}
    options = DataOptions(**{k: v for k, v in params.items() if k in names})
    options.use_cache = not params.get("no_cache", False)
    options.on_bad = params.get("on_bad_image", options.on_bad)
    return options


def run_params(state: dict, checkpoint: str | Path) -> tuple[dict, str]:
    """(the run's params, where they came from): the checkpoint's own, else the run's params.json."""
    params = dict(state.get("params") or {})
    source = f"the params in {checkpoint}"
    if not params:
        path = Path(checkpoint).resolve().parents[1] / "params.json"
        if path.is_file():
            params, source = read_config(path), str(path)
    if "graph_type" not in params and state.get("graph_type"):
        params["graph_type"] = state["graph_type"]
    return params, source


def settings_from_run(
    parser: argparse.ArgumentParser,
    argv: list[str] | None,
    args: argparse.Namespace,
    params: dict,
    source: str,
    ignore: frozenset[str] = frozenset(),
) -> RunSettings:
    """Fill every data flag the command line left out from the run's params, and compare the rest.

    A graph-shaping flag that contradicts the run raises `ContradictsRun` listing each one, unless
    `--override-checkpoint-config` was given. Flags in `ignore` mean something else to the command.
    """
    explicit = explicit_flags(parser, argv)
    known = {action.dest for action in parser._actions} - set(ignore)
    run_dataset = params.get("dataset", "synthetic")
    compared = [k for k in (*GRAPH_SETTINGS, *SELECTION_SETTINGS) if k in known and k in params]
    given = {k: getattr(args, k) for k in compared if k in explicit}
    values = {
        k: params[k] for k in (*GRAPH_SETTINGS, *SELECTION_SETTINGS, *LOCAL_SETTINGS) if k in known and k in params
    }
    merge(parser, args, explicit, values, source)
    override = bool(getattr(args, "override_checkpoint_config", False))
    settings = RunSettings(args, params, source, override=override)
    for key, value in given.items():
        if run_dataset not in USED_BY.get(key, (run_dataset,)) or same_setting(key, params[key], value):
            continue
        settings.differs[key] = {"run": params[key], "given": value, "shapes_graphs": key in GRAPH_SETTINGS}
    refused = {k: v for k, v in settings.differs.items() if v["shapes_graphs"]}
    if refused and not override:
        lines = [
            f"  {flag_name(k)}: the run used {show(v['run'])}, given {show(v['given'])}" for k, v in refused.items()
        ]
        raise ContradictsRun(
            f"flags contradict how the checkpoint's run built its graphs ({source}):\n"
            + "\n".join(lines)
            + f"\nleave them out to score the run's own graphs, or pass {OVERRIDE_FLAG} to score anyway "
            "(the results then record what differs)"
        )
    return settings


def same_setting(key: str, run, given) -> bool:
    if run == given:
        return True
    if key == "drop_edge_types":
        return sorted(run or []) == sorted(given or [])
    if key in FILE_SETTINGS | PATH_SETTINGS and run and given:
        run_path, given_path = Path(run), Path(given)
        if run_path.resolve() == given_path.resolve():
            return True
        return (
            key in FILE_SETTINGS
            and run_path.is_file()
            and given_path.is_file()
            and (file_sha256(run_path) == file_sha256(given_path))
        )
    return False


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
