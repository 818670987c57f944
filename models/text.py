"""The text side: an open_clip text transformer and open_clip's BPE tokenizer (offline)."""

from __future__ import annotations

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

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device
