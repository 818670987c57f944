"""Normalisation of the embedded tokens of each graph, before the transformer (`--token-norm`).

MoTo ("What Makes for Good Tokenizers in Vision Transformer?", Qian et al.,
TPAMI 2022) normalises each token by the statistics of its soft semantic
group and modulates it per group:

.. math::
    \\mathrm{MoTo}(X) = \\sum_{i=1}^{n} \\Big(\\frac{X - \\mu_i}{\\sigma_i + \\epsilon}\\,\\beta_i
        + \\alpha_i\\Big) \\odot L_i, \\qquad L = \\mathrm{softmax}(Z / \\tau),\\; Z = X W

with a soft layout L over n entities (default 8, temperature 0.1) computed
from the tokens. Here the tokens of one graph play the role of an image's
locations: mu_i and sigma_i are the L_i-weighted mean and standard deviation
over the graph's real tokens (padding excluded), per channel.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

TOKEN_NORMS = ("none", "layer", "batch", "moto")


class MoTo(nn.Module):
    """Modulation across tokens.

    Args:
        width: token width.
        entities: n, the number of soft semantic groups.
        temperature: tau of the layout softmax.
        eps: added to the standard deviation.
    """

    def __init__(self, width: int, entities: int = 8, temperature: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.layout = nn.Linear(width, entities)
        self.scale = nn.Parameter(torch.ones(entities, width))  # beta_i
        self.shift = nn.Parameter(torch.zeros(entities, width))  # alpha_i
        self.temperature, self.eps = temperature, eps

    def forward(self, x: Tensor, valid: Tensor) -> Tensor:
        """x [B, N, C], valid [B, N] -> [B, N, C]."""
        layout = torch.softmax(self.layout(x) / self.temperature, dim=-1)  # [B, N, n]
        weights = layout * valid.unsqueeze(-1).to(x.dtype)  # padding carries no weight
        total = weights.sum(1).clamp(min=1e-6).unsqueeze(-1)  # [B, n, 1]
        mean = torch.einsum("bnk,bnc->bkc", weights, x) / total  # [B, n, C]
        square = torch.einsum("bnk,bnc->bkc", weights, x * x) / total
        std = (square - mean * mean).clamp(min=0).sqrt()  # [B, n, C]
        normed = (x.unsqueeze(2) - mean.unsqueeze(1)) / (std.unsqueeze(1) + self.eps)  # [B, N, n, C]
        modulated = normed * self.scale + self.shift
        return (modulated * layout.unsqueeze(-1)).sum(2)


class MaskedBatchNorm(nn.Module):
    """BatchNorm over the real tokens of a batch (padding excluded)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(width)

    def forward(self, x: Tensor, valid: Tensor) -> Tensor:
        out = x.clone()
        out[valid] = self.norm(x[valid])
        return out


class LayerNormTokens(nn.LayerNorm):
    def forward(self, x: Tensor, valid: Tensor) -> Tensor:  # noqa: ARG002 - same call as the others
        return super().forward(x)


class NoNorm(nn.Module):
    def forward(self, x: Tensor, valid: Tensor) -> Tensor:  # noqa: ARG002
        return x


def make_token_norm(kind: str, width: int, entities: int = 8, temperature: float = 0.1) -> nn.Module:
    if kind not in TOKEN_NORMS:
        raise ValueError(f"unknown token norm {kind!r}; valid: {', '.join(TOKEN_NORMS)}")
    if kind == "moto":
        return MoTo(width, entities, temperature)
    if kind == "batch":
        return MaskedBatchNorm(width)
    if kind == "layer":
        return LayerNormTokens(width)
    return NoNorm()
