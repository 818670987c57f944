"""Token-level objectives beside the contrastive loss.

- TokenProp ("What Makes for Good Tokenizers in Vision Transformer?"): a light
  decoder reconstructs every token's input features (layer-normalised) from
  the transformer's last output; lambda times the mean squared error joins the
  loss (`--tokenprop-weight`).
- Masked-token modelling in the form of ClusterMIM ("On the Role of Discrete
  Tokenization in Visual Representation Learning"): a fraction of the object
  tokens is hidden (their content replaced by a learned mask token, their type
  and box kept) and a head predicts each hidden token's K-means cluster id;
  cross-entropy averaged over the hidden tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class TokenPropDecoder(nn.Module):
    """One small MLP per node type from the output width back to the input features."""

    def __init__(self, node_dims: dict[str, int], width: int) -> None:
        super().__init__()
        self.decoders = nn.ModuleDict(
            {t: nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, d)) for t, d in node_dims.items()}
        )

    def forward(self, outputs: list[Tensor], inputs: list[Tensor]) -> Tensor:
        """Mean squared error over all tokens; outputs and inputs per node type, in the same order."""
        errors, count = [], 0
        for decoder, out, x in zip(self.decoders.values(), outputs, inputs, strict=True):
            if len(x):
                target = F.layer_norm(x, x.shape[-1:])
                errors.append(F.mse_loss(decoder(out), target, reduction="sum") / x.size(1))
                count += len(x)
        return torch.stack(errors).sum() / max(count, 1)


def choose_hidden(graph_ids: Tensor, ratio: float, generator: torch.Generator | None = None) -> Tensor:
    """Hide `ratio` of each graph's object tokens (rounded, at least one when it has any) -> bool [n]."""
    scores = torch.rand(len(graph_ids), generator=generator).to(graph_ids.device)
    order = torch.argsort(scores)
    order = order[torch.argsort(graph_ids[order], stable=True)]  # random order inside each graph
    counts = torch.bincount(graph_ids)
    starts = counts.cumsum(0) - counts
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order), device=graph_ids.device) - starts[graph_ids[order]]
    quota = (counts.float() * ratio).round().long().clamp(min=1)
    return rank < quota[graph_ids]


class ClusterHead(nn.Module):
    """Predicts the K-means cluster of hidden object tokens."""

    def __init__(self, width: int, clusters: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, clusters))

    def forward(self, hidden_outputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """(cross-entropy averaged over hidden tokens, accuracy)."""
        logits = self.proj(hidden_outputs)
        return F.cross_entropy(logits, targets), (logits.argmax(-1) == targets).float().mean()
