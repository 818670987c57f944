"""Self-attention with a per-head bias chosen by the edge type linking a pair.

.. math::
    \\mathrm{attn}(i, j) = \\mathrm{softmax}_j\\Big(\\frac{q_i^\\top k_j}{\\sqrt{d}}
        + B_{h, t(i, j)} + \\mathrm{pad}(j)\\Big)

where :math:`t(i, j)` is the bias slot of the pair (see `pair_slots`): 0 for
no edge, :math:`2(r - 1) + 1` for an edge of rank :math:`r` from i to j and
:math:`2(r - 1) + 2` for one from j to i. See docs/design.md, "The attention bias".

The ``monotone`` mode is the seed paper's instead: one learned vector w of
one entry per rank, the bias of a pair whose strongest edge from query i to
key j has strength k (T for the strongest type down to 1) is
:math:`\\sum_{m \\le k} e^{w_m}`, 0 for none, the same for every head and
layer (`MonotoneRankBias`, held once by the encoder). Only edges from the
query to the key count: a pair linked the other way gets what its own edges give.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

BIAS_MODES = ("learned", "ranked", "monotone", "none")
BIAS_INITS = ("ranks", "zero")


def pair_bias(table: Tensor, index: Tensor, segmented: bool | None = None) -> Tensor:
    """Column `index[b, i, j]` of a small table [H, S] for every pair -> [B, H, N, N]
    (a table [S] gives [B, 1, N, N]).

    On CUDA through `F.embedding`, whose gradient sums the duplicates in segments:
    the gradient of advanced indexing (`table[:, index]`), a million pairs onto some
    fifteen columns, accumulates serially per column there (7.3 ms against 0.64 ms
    per lookup at batch 1024 on an H200; it made eager training 16x slower:
    BENCHMARKS.md, "The GPU path"). On the CPU advanced indexing, 2-3x faster there
    (and the summation order, so the figures, of every earlier CPU run). Same values.
    `segmented` forces the CUDA way (True) or the CPU way (False).
    """
    if index.is_cuda if segmented is None else segmented:
        return F.embedding(index, table.view(-1, table.size(-1)).t()).permute(0, 3, 1, 2)
    if table.dim() == 1:
        return table[index].unsqueeze(1)
    return table[:, index].permute(1, 0, 2, 3)


def num_bias_slots(num_edge_types: int) -> int:
    """`none` plus a forward and a reverse slot per edge type."""
    return 1 + 2 * num_edge_types


def rank_bias(num_edge_types: int, heads: int) -> Tensor:
    """The bias table initialised from the ranks, [heads, slots].

    Rank r gets (T + 1 - r) / T in the forward direction (1 for rank 1) and
    half of that in reverse, `none` gets 0: monotone in rank, direction visible.
    """
    forward = torch.arange(num_edge_types, 0, -1, dtype=torch.float) / num_edge_types
    table = torch.zeros(num_bias_slots(num_edge_types))
    table[1::2] = forward
    table[2::2] = forward / 2
    return table.expand(heads, -1).clone()


class EdgeTypeBias(nn.Module):
    """Per-head additive attention bias looked up from pair slots.

    Args:
        num_edge_types: the number of ranked edge types (7 in the schema).
        heads: attention heads.
        mode: ``learned`` (trainable, initialised from the ranks), ``ranked``
            (fixed rank table) or ``none`` (no bias).
        init: where ``learned`` starts: ``ranks`` (docs/design.md) or ``zero``.
    """

    def __init__(self, num_edge_types: int, heads: int, mode: str = "learned", init: str = "ranks") -> None:
        super().__init__()
        if mode not in BIAS_MODES:
            raise ValueError(f"unknown edge bias mode {mode!r}; valid: {', '.join(BIAS_MODES)}")
        if init not in BIAS_INITS:
            raise ValueError(f"unknown edge bias start {init!r}; valid: {', '.join(BIAS_INITS)}")
        self.mode = mode
        table = rank_bias(num_edge_types, heads)
        if mode == "learned":
            self.table = nn.Parameter(table if init == "ranks" else torch.zeros_like(table))
        else:
            self.register_buffer("table", table if mode == "ranked" else torch.zeros_like(table))

    def forward(self, slots: Tensor) -> Tensor:
        """Pair slots [B, N, N] -> bias [B, H, N, N]."""
        return pair_bias(self.table, slots)


class MonotoneRankBias(nn.Module):
    """The seed paper's bias: w ~ N(0, 1) of size `num_ranks`; strength k -> cumsum(exp(w))[k - 1], 0 -> 0.

    Positive and strictly increasing in strength whatever w is; one vector for
    the whole model.
    """

    def __init__(self, num_ranks: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_ranks))

    def values(self) -> Tensor:
        """The bias of strength 0..num_ranks, [num_ranks + 1]."""
        return torch.cat([self.weight.new_zeros(1), self.weight.exp().cumsum(0)])

    def forward(self, strengths: Tensor) -> Tensor:
        """Pair strengths [B, N, N] (0..num_ranks) -> bias [B, 1, N, N], the same for every head."""
        return pair_bias(self.values(), strengths)


class BiasedSelfAttention(nn.Module):
    """Multi-head self-attention over padded token sets with an additive float mask.

    Args:
        width: token width.
        heads: attention heads; `width` must divide by it.
        dropout: attention dropout during training.
    """

    def __init__(self, width: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} does not divide into {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.dropout = dropout

    def forward(self, x: Tensor, attn_mask: Tensor) -> Tensor:
        """x [B, N, C], attn_mask [B, H, N, N] (bias plus -inf at padded keys)."""
        batch, tokens, width = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.heads, width // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each [B, H, N, hs]
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask.to(q.dtype), dropout_p=self.dropout if self.training else 0.0
        )
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, width))


class Mlp(nn.Module):
    def __init__(self, width: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, width)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.act(self.fc1(x))))


class Block(nn.Module):
    """Pre-norm transformer block with edge-biased attention."""

    def __init__(
        self,
        width: int,
        heads: int,
        num_edge_types: int,
        bias_mode: str = "learned",
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        bias_init: str = "ranks",
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        # `monotone` is shared by every block: the encoder holds it and passes its bias in.
        self.edge_bias = None if bias_mode == "monotone" else EdgeTypeBias(num_edge_types, heads, bias_mode, bias_init)
        self.attn = BiasedSelfAttention(width, heads, dropout)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = Mlp(width, int(width * mlp_ratio), dropout)

    def forward(self, x: Tensor, slots: Tensor, key_padding: Tensor, shared_bias: Tensor | None = None) -> Tensor:
        """x [B, N, C]; slots [B, N, N]; key_padding [B, 1, 1, N] (0 or -inf);
        shared_bias [B, 1, N, N], the bias of a `monotone` encoder (used instead of slots)."""
        if self.edge_bias is None:
            if shared_bias is None:
                raise ValueError("a monotone-bias block needs the encoder's shared bias")
            bias = shared_bias
        else:
            bias = self.edge_bias(slots)
        attn_mask = bias + key_padding  # [B, H or 1, N, N]
        x = x + self.attn(self.norm1(x), attn_mask)
        return x + self.mlp(self.norm2(x))
