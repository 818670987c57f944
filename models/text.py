"""The text side: an open_clip text transformer and open_clip's BPE tokenizer (offline)."""

from __future__ import annotations

from pathlib import Path

import torch
from open_clip.model import CLIPTextCfg, _build_text_tower
from open_clip.tokenizer import SimpleTokenizer
from torch import Tensor, nn


class TextEncoder(nn.Module):
    """open_clip's text tower built from a `text_cfg` (the ``text_cfg`` of an
    open_clip model config), projecting to `embed_dim`.

    Args:
        text_cfg: fields of ``open_clip.model.CLIPTextCfg``.
        embed_dim: size of the shared embedding.
    """

    def __init__(self, text_cfg: dict, embed_dim: int) -> None:
        super().__init__()
        self.text_cfg = CLIPTextCfg(**text_cfg)
        self.tower = _build_text_tower(embed_dim, self.text_cfg)
        self.tokenizer = SimpleTokenizer(context_length=self.text_cfg.context_length)

    def tokenize(self, texts: list[str]) -> Tensor:
        """Texts -> token ids [T, context_length] (truncated, end token kept)."""
        return self.tokenizer(texts)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.tower(tokens)


def open_clip_text_config(name: str) -> dict:
    """The `text_cfg` of a named open_clip model config (no weights involved)."""
    import open_clip

    config = open_clip.get_model_config(name)
    if config is None:
        raise ValueError(f"unknown open_clip model {name!r}; see open_clip.list_models()")
    return dict(config["text_cfg"])


TEXT_PREFIXES = ("text_encoder.tower.", "text.", "")


def load_text_checkpoint(encoder: TextEncoder, path: str | Path) -> None:
    """Load a text tower from a local file: a whole open_clip CLIP checkpoint (text
    weights at the top level, or under ``text.``), a semgraph checkpoint, or a
    text-tower state dict. Shapes must match the configured tower exactly."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"text checkpoint {path} does not exist")
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    state = {k.removeprefix("module."): v for k, v in state.items()}
    expected = encoder.tower.state_dict()
    for prefix in TEXT_PREFIXES:
        found = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix) and k[len(prefix) :] in expected}
        if "token_embedding.weight" in found:
            break
    else:
        raise ValueError(
            f"{path}: no text tower found (no token_embedding.weight under {TEXT_PREFIXES[:2]} or top level)"
        )
    missing = sorted(expected.keys() - found.keys())
    reshaped = [k for k in found if found[k].shape != expected[k].shape]
    if missing or reshaped:
        raise ValueError(
            f"{path}: the text tower does not fit the configured one: missing {missing[:3]}, "
            f"other shapes {[(k, tuple(found[k].shape), tuple(expected[k].shape)) for k in reshaped[:3]]}"
        )
    encoder.tower.load_state_dict(found)


def predicate_text_table(
    names: list[str], text_cfg: dict, embed_dim: int, checkpoint: str | Path | None = None
) -> Tensor:
    """The text embedding of each predicate name, [len(names), embed_dim], each embedded once.

    The tower is built from `text_cfg` (e.g. open_clip's ViT-B-32 ``text_cfg``,
    the seed paper's relation tokens) and loaded from a local `checkpoint`;
    without one it is untrained (random), and a warning says so.
    """
    import warnings

    encoder = TextEncoder(text_cfg, embed_dim)
    if checkpoint is not None:
        load_text_checkpoint(encoder, checkpoint)
    else:
        warnings.warn(
            "--relation-features text without --relation-text-checkpoint: the text tower that embeds the "
            "predicate names is untrained (random weights)",
            stacklevel=2,
        )
    encoder.eval()
    with torch.no_grad():
        return encoder(encoder.tokenize(list(names))).float()
