"""Reading checkpoints back: the model they hold, refused when they do not fit this code."""

from __future__ import annotations

from pathlib import Path

import torch

from graphs.schema import SCHEMA_VERSION
from models import GraphCLIP, GraphCLIPConfig
from models.relation_text import DEFAULT_RELATION_TEXT_MODEL, PredicateTexts


def load_checkpoint(path: str | Path, mmap: bool = False) -> dict:
    """A checkpoint written by train/run.py, loaded with weights_only=True; `mmap` maps its
    tensors instead of reading them (a quick check that the file is whole)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as error:  # truncated or foreign files fail in many ways
        raise ValueError(f"{path}: not a readable checkpoint ({type(error).__name__}: {error})") from None
    missing = {"model", "model_config", "schema_version"} - set(state)
    if missing:
        raise ValueError(f"{path}: not a semgraph checkpoint (lacks {', '.join(sorted(missing))})")
    if state["schema_version"] != SCHEMA_VERSION:
        raise ValueError(
            f"{path}: written for graph schema version {state['schema_version']}, this code uses {SCHEMA_VERSION}"
        )
    return state


def model_from_checkpoint(state: dict) -> GraphCLIP:
    """Rebuild the model a checkpoint was trained as and load its weights.

    A model with text relation features gets the text tower its run named (the
    checkpoint's params), built only if a graph holds a predicate outside the
    vocabulary, and refused then unless it reproduces the model's own table. A model saved
    before open-vocabulary predicates keeps reading such a name as "other", as it was trained.
    """
    config = GraphCLIPConfig.from_dict(state["model_config"])
    if "open_vocabulary" not in state["model_config"].get("graph", {}):
        config.graph.open_vocabulary = False  # trained before open-vocabulary predicates: it read them as "other"
    model = GraphCLIP(config)
    check_state_fits(model.state_dict(), state["model"])
    model.load_state_dict(state["model"])
    encoder = model.graph_encoder
    if getattr(encoder, "relation_text", None) is not None and config.graph.open_vocabulary:
        params = state.get("params") or {}
        encoder.relation_texts = PredicateTexts(
            params.get("relation_text_model", DEFAULT_RELATION_TEXT_MODEL),
            params.get("relation_text_checkpoint"),
            reference=encoder.relation_text,
        )
    return model.eval()


def check_state_fits(expected: dict, found: dict) -> None:
    """Raise ValueError saying which weights are missing, unexpected or of another shape."""
    missing = sorted(expected.keys() - found.keys())
    unexpected = sorted(found.keys() - expected.keys())
    reshaped = [
        f"{k} {tuple(found[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in found and found[k].shape != v.shape
    ]
    if missing or unexpected or reshaped:
        parts = []
        for label, names in (("missing", missing), ("unexpected", unexpected), ("of another shape", reshaped)):
            if names:
                more = f" and {len(names) - 3} more" if len(names) > 3 else ""
                parts.append(f"{len(names)} weights {label} ({', '.join(names[:3])}{more})")
        raise ValueError("the checkpoint does not fit this model: " + "; ".join(parts))
