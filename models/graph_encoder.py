"""The graph encoder: typed tokens -> dense padded transformer with edge-type bias -> one embedding.

A collated batch of schema graphs (``HeteroData``) or of homogeneous graphs
(``Data``, from `graphs.ToHomogeneous`) becomes a padded token tensor
[B, N, C] with each graph's tokens in schema order, a key-padding mask, and a
[B, N, N] table of pair slots from which each layer looks up its bias.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn
from torch_geometric.data import Data, HeteroData

from graphs.schema import (
    DEFAULT_EDGE_SCHEMA,
    EDGE_TYPES,
    FEATURE_DIMS,
    HOMOGENEOUS_NODE,
    NODE_TYPES,
    PREDICATE_KEYS,
    PREDICATES,
    RELATION,
    flat_open_predicates,
    schema_edge_types,
    strength_order,
)
from models.attention import Block, MonotoneRankBias
from models.token_norm import make_token_norm

# Padded token counts on a GPU are multiples of this (SDPA's fused kernels like them);
# on the CPU a padded token is only extra work, and the longest graph sets the size.
PAD_MULTIPLE = 8
# How tokens become one embedding: a learned attention query, a masked mean, or
# a learned CLS token prepended to every graph (the seed paper's readout).
POOLS = ("attention", "mean", "cls")
RELATION_FEATURES = ("onehot", "text")


@dataclass
class GraphEncoderConfig:
    """Hyper-parameters of `GraphEncoder` (JSON-serialisable)."""

    node_dims: dict[str, int] = field(default_factory=lambda: dict(FEATURE_DIMS))
    width: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    embed_dim: int = 128
    edge_bias: str = "learned"
    edge_bias_init: str = "ranks"
    num_edge_types: int = len(EDGE_TYPES)
    edge_schema: str = DEFAULT_EDGE_SCHEMA  # which seven edge types the graphs carry (graphs.schema)
    # Relation tokens' predicate part: the graph's one-hot, or ("text") a fixed text embedding
    # of the predicate's name (a [len(PREDICATES), relation_text_dim] buffer, the seed paper's tokens).
    relation_features: str = "onehot"
    relation_text_dim: int = 0
    # Text features of names outside the vocabulary (graphs' `name_key`); a model saved before
    # open-vocabulary predicates read them as "other" and keeps doing so (models.checkpoint).
    open_vocabulary: bool = True
    box_frequencies: int = 6
    pool: str = "attention"
    token_norm: str = "none"
    mask_token: bool = False  # a learned token that hides object content (masked-token modelling)
    moto_entities: int = 8
    moto_temperature: float = 0.1

    def to_dict(self) -> dict:
        return asdict(self)


class BoxEncoding(nn.Module):
    """Fourier features of a token's box (cx, cy, w, h) projected to the token width."""

    def __init__(self, width: int, frequencies: int = 6) -> None:
        super().__init__()
        self.register_buffer("scales", math.pi * 2.0 ** torch.arange(frequencies), persistent=False)
        self.proj = nn.Linear(4 * 2 * frequencies, width)

    def forward(self, box: Tensor) -> Tensor:
        angles = (box[:, :, None] * self.scales).flatten(1)  # [n, 4 * F]
        return self.proj(torch.cat([angles.sin(), angles.cos()], dim=1))


class AttentionPool(nn.Module):
    """A learned query attends over the valid tokens of each graph (multi-head).

    Order-free like a mean, but it can weight the few informative tokens of a
    graph over many background ones (a patch grid is mostly background).
    """

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)

    def forward(self, x: Tensor, valid: Tensor) -> Tensor:
        """x [B, N, C], valid [B, N] -> [B, C]."""
        query = self.query.expand(x.size(0), -1, -1)
        pooled, _ = self.attn(query, x, x, key_padding_mask=~valid, need_weights=False)
        return pooled[:, 0]


def pair_slots(dense_index: Tensor, edges: list[tuple[Tensor, int]], num_graphs: int, num_tokens: int) -> Tensor:
    """The bias slot of every token pair, [B, N, N] long.

    Args:
        dense_index: for every token in concatenated order, its flat position
            b * N + i in the padded batch.
        edges: (edge_index over concatenated token ids, rank) per edge type.
    The slot of (i, j) is the smallest over the edges between them: rank r
    from i to j gives 2r - 1, from j to i gives 2r; no edge gives 0.
    """
    total = num_graphs * num_tokens * num_tokens
    unset = 2 * max((rank for _, rank in edges), default=0) + 1  # above every slot an edge gives
    slots = torch.full((total,), unset, dtype=torch.long, device=dense_index.device)
    for edge_index, rank in edges:
        if edge_index.numel() == 0:
            continue
        src, dst = dense_index[edge_index[0]], dense_index[edge_index[1]]
        graph = src // num_tokens
        i, j = src % num_tokens, dst % num_tokens
        base = graph * num_tokens * num_tokens
        flat = torch.cat([base + i * num_tokens + j, base + j * num_tokens + i])
        value = torch.cat([torch.full_like(src, 2 * rank - 1), torch.full_like(src, 2 * rank)])
        slots.scatter_reduce_(0, flat, value, reduce="amin")
    slots.masked_fill_(slots == unset, 0)  # a fill, not a boolean-indexed write: no wait for the device
    return slots.view(num_graphs, num_tokens, num_tokens)


def pair_strengths(
    dense_index: Tensor, edges: list[tuple[Tensor, int]], num_graphs: int, num_tokens: int, num_ranks: int
) -> Tensor:
    """The strength of every (query, key) pair, [B, N, N] long: the strongest edge
    from the query to the key (rank r gives num_ranks + 1 - r), 0 for none.
    Direction matters: an edge j -> i gives (i, j) nothing (the `monotone` bias)."""
    strengths = torch.zeros(num_graphs * num_tokens * num_tokens, dtype=torch.long, device=dense_index.device)
    for edge_index, rank in edges:
        if edge_index.numel() == 0:
            continue
        src, dst = dense_index[edge_index[0]], dense_index[edge_index[1]]
        graph = src // num_tokens
        flat = graph * num_tokens * num_tokens + (src % num_tokens) * num_tokens + dst % num_tokens
        strengths.scatter_reduce_(0, flat, torch.full_like(src, num_ranks + 1 - rank), reduce="amax")
    return strengths.view(num_graphs, num_tokens, num_tokens)


def bucketed(dense: Tensor, slots: Tensor, key_padding: Tensor, shared_bias: Tensor | None) -> tuple:
    """Mark the batch dimension of the blocks' inputs dynamic and every other one (N among
    them) static for the compiler: one compilation per token bucket, whatever B."""
    for tensor in (dense, slots, key_padding, shared_bias):
        if tensor is not None:
            torch._dynamo.maybe_mark_dynamic(tensor, 0)
            for dim in range(1, tensor.dim()):
                torch._dynamo.mark_static(tensor, dim)
    return dense, slots, key_padding, shared_bias


class GraphEncoder(nn.Module):
    """Edge-biased graph transformer over a batch of graphs -> [B, embed_dim].

    Each node type has its own input projection and type embedding; every
    token adds a Fourier encoding of its box; L pre-norm blocks attend over all
    tokens of a graph with the per-head edge-type bias of docs/design.md; the tokens
    are normalised, pooled (a learned attention query, or a masked mean) and
    projected to the embedding. No positional index enters, so the embedding
    does not depend on node order.

    Args:
        config: a `GraphEncoderConfig`. For homogeneous graphs give
            ``node_dims={"node": F}`` and ``num_edge_types=1``.
    """

    def __init__(self, config: GraphEncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.node_types = tuple(config.node_dims)
        input_dims = dict(config.node_dims)
        if config.relation_features not in RELATION_FEATURES:
            raise ValueError(
                f"unknown relation features {config.relation_features!r}; valid: {', '.join(RELATION_FEATURES)}"
            )
        if config.relation_features == "text":
            if RELATION not in input_dims or config.relation_text_dim <= 0:
                raise ValueError("text relation features need schema graphs and a relation_text_dim")
            # the one-hot predicate block is replaced by the predicate's text embedding
            input_dims[RELATION] += config.relation_text_dim - len(PREDICATES)
            self.register_buffer("relation_text", torch.zeros(len(PREDICATES), config.relation_text_dim))
            # the key of each vocabulary name: a token whose `name_key` differs has an open-vocabulary name
            self.register_buffer("vocabulary_keys", torch.tensor(PREDICATE_KEYS, dtype=torch.long), persistent=False)
        else:
            self.relation_text = None
        # Embeds predicate names outside the vocabulary (models.relation_text.PredicateTexts); set by
        # whoever builds or loads the model, never saved with it.
        self.relation_texts = None
        self.input_proj = nn.ModuleDict(
            {t: nn.Sequential(nn.LayerNorm(d), nn.Linear(d, config.width)) for t, d in input_dims.items()}
        )
        self.type_embedding = nn.Parameter(torch.zeros(len(self.node_types), config.width))
        nn.init.normal_(self.type_embedding, std=0.02)
        self.box_encoding = BoxEncoding(config.width, config.box_frequencies)
        self.mask_token = nn.Parameter(torch.randn(config.width) * 0.02) if config.mask_token else None
        self.edge_types = schema_edge_types(config.edge_schema)
        self.rank_bias = MonotoneRankBias(config.num_edge_types) if config.edge_bias == "monotone" else None
        self.token_norm = make_token_norm(
            config.token_norm, config.width, config.moto_entities, config.moto_temperature
        )
        self.blocks = nn.ModuleList(
            Block(
                config.width,
                config.heads,
                config.num_edge_types,
                config.edge_bias,
                config.mlp_ratio,
                config.dropout,
                config.edge_bias_init,
            )
            for _ in range(config.depth)
        )
        self.norm = nn.LayerNorm(config.width)
        if config.pool not in POOLS:
            raise ValueError(f"unknown pooling {config.pool!r}; valid: {', '.join(POOLS)}")
        self.pool = AttentionPool(config.width, config.heads) if config.pool == "attention" else None
        self.cls_token = nn.Parameter(torch.randn(config.width) * 0.02) if config.pool == "cls" else None
        self.head = nn.Linear(config.width, config.embed_dim)
        self.pad_power_of_two = False
        self.pad_multiple: int | None = None  # None: PAD_MULTIPLE on CUDA, 1 elsewhere
        self.compiled_blocks = None

    def _predicate_text(self, store, batch: HeteroData) -> Tensor:
        """The text embedding of each relation token's predicate: the vocabulary's from the table,
        an open-vocabulary name's from `relation_texts` (refused when there is none). A batch whose
        graphs list no open names (`open_predicates`) holds none: the table alone, no device read."""
        text = self.relation_text[store.predicate]
        names = flat_open_predicates(batch)
        # decided on the host: no wait for the device
        if "name_key" not in store or not names or not self.config.open_vocabulary:
            return text
        open_rows = (store.name_key != self.vocabulary_keys[store.predicate]).nonzero().squeeze(1)
        if open_rows.numel() == 0:
            return text
        if self.relation_texts is None:
            shown = ", ".join(repr(n) for n in names[:5])
            raise ValueError(
                f"{open_rows.numel()} relation tokens name predicates outside the vocabulary ({shown}) and this "
                "model has no text tower to embed them (models.relation_text.PredicateTexts; "
                "models.checkpoint.model_from_checkpoint gives it the tower its run's params name)"
            )
        found = self.relation_texts.lookup(store.name_key[open_rows], names)
        return text.index_copy(0, open_rows, found.to(text.dtype))

    def _typed_tokens(
        self, batch: Data | HeteroData, hidden: Tensor | None = None
    ) -> tuple[list[Tensor], list[Tensor], list[tuple[Tensor, int]]]:
        """Per node type: embedded tokens and graph ids; edges over concatenated ids with ranks.

        `hidden` (bool, one per node of the first node type) replaces those
        tokens' content by the mask token, keeping their type and box (MIM).
        """
        if isinstance(batch, HeteroData):
            if tuple(batch.edge_types) != self.edge_types:
                raise ValueError(
                    f"encoder built for the {self.config.edge_schema} edge schema {[et[1] for et in self.edge_types]}, "
                    f"got graphs with edge types {[et[1] for et in batch.edge_types]}"
                )
            stores = [batch[t] for t in NODE_TYPES]
            starts = [0]
            for store in stores[:-1]:
                starts.append(starts[-1] + store.num_nodes)
            offsets = dict(zip(NODE_TYPES, starts, strict=True))
            ranks = strength_order(self.config.edge_schema)
            edges = [  # host ints added on the device: no copy, no wait
                (
                    torch.stack([batch[et].edge_index[0] + offsets[et[0]], batch[et].edge_index[1] + offsets[et[2]]]),
                    ranks[et],
                )
                for et in self.edge_types
            ]
            if self.node_types != NODE_TYPES:
                raise ValueError(f"encoder built for node types {self.node_types}, got a schema graph")
        else:
            stores = [batch]
            edges = [(batch.edge_index, 1)]
            if self.node_types != (HOMOGENEOUS_NODE,):
                raise ValueError(f"encoder built for node types {self.node_types}, got a homogeneous graph")
        tokens, graph_ids = [], []
        for k, (node_type, store) in enumerate(zip(self.node_types, stores, strict=True)):
            x = store.x
            if node_type == RELATION and self.relation_text is not None:
                x = torch.cat([self._predicate_text(store, batch).to(x.dtype), x[:, len(PREDICATES) :]], dim=1)
            content = self.input_proj[node_type](x)
            if hidden is not None and k == 0:
                if self.mask_token is None:
                    raise ValueError("this encoder has no mask token (build it with mask_token=True)")
                content = torch.where(hidden.unsqueeze(-1), self.mask_token.to(content.dtype), content)
            tokens.append(content + self.type_embedding[k] + self.box_encoding(store.box))
            graph_ids.append(
                store.batch
                if "batch" in store
                else torch.zeros(store.num_nodes, dtype=torch.long, device=store.x.device)
            )
        return tokens, graph_ids, edges

    def encode_tokens(self, batch: Data | HeteroData, hidden: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """The transformer's output tokens: (dense [B, N, C], valid [B, N], dense_index [M]).

        `dense.view(-1, C)[dense_index]` lists the outputs in concatenated
        node-type order (the nodes of the first type first, as in the batch).
        With the ``cls`` readout, column 0 of every graph is its CLS token
        (valid, in no edge: rank 0 with every token).
        """
        tokens, graph_ids, edges = self._typed_tokens(batch, hidden)
        x = torch.cat(tokens)  # [M, C], concatenated by type
        graph = torch.cat(graph_ids)  # [M]
        num_graphs = int(batch.num_graphs) if hasattr(batch, "num_graphs") else 1
        order = torch.sort(graph, stable=True).indices  # tokens grouped by graph, schema order inside
        # A scatter, not bincount: CUDA's bincount reads the largest id back to size its output.
        counts = graph.new_zeros(num_graphs).scatter_add_(0, graph, torch.ones_like(graph))
        extra = 1 if self.cls_token is not None else 0
        multiple = self.pad_multiple or (PAD_MULTIPLE if x.device.type == "cuda" else 1)
        num_tokens = self.padded_tokens(self.longest_graph(batch, counts) + extra, multiple) - extra
        starts = counts.cumsum(0) - counts
        sorted_graph = graph[order]
        position = torch.arange(len(order), device=x.device) - starts[sorted_graph]
        dense_index = torch.empty_like(order)
        dense_index[order] = sorted_graph * num_tokens + position

        dense = x.new_zeros(num_graphs * num_tokens, x.size(1))
        dense[dense_index] = x
        dense = dense.view(num_graphs, num_tokens, -1)  # [B, N, C]
        valid = torch.zeros(num_graphs * num_tokens, dtype=torch.bool, device=x.device)
        valid.index_fill_(0, dense_index, True)  # not `valid[dense_index] = True`: that copies the host's True over
        valid = valid.view(num_graphs, num_tokens)  # [B, N]
        key_padding = torch.zeros(valid.shape, dtype=x.dtype, device=x.device)
        key_padding = key_padding.masked_fill(~valid, float("-inf"))[:, None, None, :]  # [B, 1, 1, N]
        slots = pair_slots(dense_index, edges, num_graphs, num_tokens)
        strengths = (
            pair_strengths(dense_index, edges, num_graphs, num_tokens, self.config.num_edge_types)
            if self.rank_bias is not None
            else None
        )

        dense = self.token_norm(dense, valid)
        if self.cls_token is not None:  # one more token in front of every graph, in no edge
            cls = self.cls_token.to(dense.dtype).expand(num_graphs, 1, -1)
            dense = torch.cat([cls, dense], dim=1)
            valid = torch.cat([valid.new_ones(num_graphs, 1), valid], dim=1)
            key_padding = torch.nn.functional.pad(key_padding, (1, 0))
            slots = torch.nn.functional.pad(slots, (1, 0, 1, 0))
            strengths = None if strengths is None else torch.nn.functional.pad(strengths, (1, 0, 1, 0))
            dense_index = dense_index + dense_index // num_tokens + 1
        shared_bias = self.rank_bias(strengths) if self.rank_bias is not None else None
        if self.compiled_blocks is not None:
            dense = self.compiled_blocks(*bucketed(dense, slots, key_padding, shared_bias))
        else:
            dense = self.run_blocks(dense, slots, key_padding, shared_bias)
        return self.norm(dense), valid, dense_index

    def run_blocks(self, dense: Tensor, slots: Tensor, key_padding: Tensor, shared_bias: Tensor | None) -> Tensor:
        """The transformer blocks on the padded tokens [B, N, C]: dense work only, what `compile_blocks` compiles."""
        for block in self.blocks:
            dense = block(dense, slots, key_padding, shared_bias)
        return dense

    def compile_blocks(self, **options) -> None:
        """`torch.compile` the blocks (not the gathers and scatters around them).

        N is padded to a power of two (at least `PAD_MULTIPLE`) from then on,
        and kept static while B may vary: one compilation per size bucket
        rather than one per batch. `options` go to `torch.compile` (e.g.
        ``backend="aot_eager"``).
        """
        self.pad_power_of_two = True
        self.compiled_blocks = torch.compile(self.run_blocks, **options)

    def padded_tokens(self, tokens: int, multiple: int = PAD_MULTIPLE) -> int:
        """The padded token count of a batch whose longest graph has `tokens` tokens: the next
        multiple of `multiple`, or once compiled the next power of two from `PAD_MULTIPLE`."""
        if tokens == 0:
            return 0
        if self.pad_power_of_two:
            return max(PAD_MULTIPLE, 1 << (tokens - 1).bit_length())
        return -(-tokens // multiple) * multiple

    @staticmethod
    def longest_graph(batch: Data | HeteroData, counts: Tensor) -> int:
        """The most tokens of one graph of the batch: the host int its collation left (`max_tokens`),
        or, for a batch made elsewhere, read from the device (one wait)."""
        longest = getattr(batch, "max_tokens", None)
        if longest is None:
            return int(counts.max()) if counts.numel() else 0
        return int(longest)

    def pool_tokens(self, dense: Tensor, valid: Tensor) -> Tensor:
        if self.cls_token is not None:  # the CLS token's output (already layer-normed)
            return self.head(dense[:, 0])
        if self.pool is not None:
            return self.head(self.pool(dense, valid))
        weights = valid.unsqueeze(-1).to(dense.dtype)
        return self.head((dense * weights).sum(1) / weights.sum(1).clamp(min=1))  # [B, D]

    def forward(self, batch: Data | HeteroData) -> Tensor:
        dense, valid, _ = self.encode_tokens(batch)
        return self.pool_tokens(dense, valid)
