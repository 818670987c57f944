"""Flags from three places: defaults < a config file (or a run's params.json) < the command line."""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import yaml


def explicit_flags(parser: argparse.ArgumentParser, argv: list[str] | None) -> set[str]:
    """The destinations the command line set itself (not left at their defaults)."""
    quiet = copy.deepcopy(parser)
    for action in quiet._actions:
        action.default = argparse.SUPPRESS
    for action in quiet._actions:
        action.required = False
    return set(vars(quiet.parse_args(argv)))


def read_config(path: Path) -> dict:
    """A YAML (or JSON) mapping of flag names to values; '-' and '_' both work in names."""
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    text = path.read_text()
    try:
        values = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise ValueError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'} ({error})") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of flag names to values")
    return {str(key).replace("-", "_"): value for key, value in values.items()}


def merge(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    explicit: set[str],
    values: dict,
    source: str,
    ignore: set[str] = frozenset(),
) -> argparse.Namespace:
    """Set every flag named in `values` that the command line did not set.

    Unknown names are an error naming `source` and listing nothing silently;
    each value passes through its flag's own type and choices.
    """
    actions = {action.dest: action for action in parser._actions}
    for key, value in values.items():
        if key in ignore:
            continue
        if key not in actions or key == "help":
            raise ValueError(f"{source}: unknown flag {key!r}")
        if key in explicit:
            continue
        action = actions[key]
        if value is not None and action.type is not None and isinstance(value, str):
            try:
                value = action.type(value)
            except (argparse.ArgumentTypeError, ValueError) as error:
                raise ValueError(f"{source}: {key}: {error}") from None
        if action.choices is not None and value is not None and value not in action.choices:
            raise ValueError(f"{source}: {key} must be one of {', '.join(map(str, action.choices))}, not {value!r}")
        setattr(args, key, value)
    return args
