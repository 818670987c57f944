"""The text side: an open_clip text transformer and open_clip's BPE tokenizer (offline)."""

from __future__ import annotations

from pathlib import Path

import torch
from open_clip.model import CLIPTextCfg, _build_text_tower
from open_clip.tokenizer import SimpleTokenizer
from open_clip.transformer import text_global_pool
from torch import Tensor, nn
from torch.nn import functional as F


def trim_padding(tokens: Tensor) -> Tensor:
    """Token ids [T, C] without the trailing columns that are padding (id 0) in every text.

    With a causal text tower pooled at the end token, those columns cannot change any
    text's embedding (no earlier position attends to a later one), and a caption of
    the synthetic world fills about 20 of CLIP's 77 positions. Host tensors only (it
    reads the tensor's values)."""
    used = (tokens != 0).any(dim=0).nonzero()
    return tokens[:, : int(used.max()) + 1 if len(used) else 1]


LENGTH_BUCKETS = 4  # groups of texts of similar length a host batch is run in


def text_lengths(tokens: Tensor) -> Tensor:
    """Each text's length in positions [T]: its last non-padding (non-zero) position + 1."""
    positions = torch.arange(1, tokens.size(1) + 1, device=tokens.device)
    return ((tokens != 0) * positions).amax(dim=1)


def length_buckets(lengths: Tensor, buckets: int = LENGTH_BUCKETS) -> tuple[Tensor, list[tuple[int, int, int]]]:
    """The texts sorted by length (stable) and cut into at most `buckets` runs, each run
    to be cut to its longest text, chosen to leave the fewest padding positions (exact,
    by dynamic programming over the distinct lengths): (order [T], [(start, stop,
    longest length), ...] over the sorted order). Host tensors only."""
    order = torch.argsort(lengths, stable=True)
    values, counts = torch.unique(lengths.clamp(min=1), return_counts=True)
    values, counts = values.tolist(), counts.tolist()
    ends = [0]
    for count in counts:
        ends.append(ends[-1] + count)
    distinct = len(values)
    # best[k][j]: fewest positions for the j shortest distinct lengths in k runs; cut[k][j] its last run's start
    infinity = float("inf")
    best = [[infinity] * (distinct + 1) for _ in range(buckets + 1)]
    cut = [[0] * (distinct + 1) for _ in range(buckets + 1)]
    best[0][0] = 0
    for k in range(1, buckets + 1):
        for j in range(1, distinct + 1):
            for i in range(j):
                cost = best[k - 1][i] + (ends[j] - ends[i]) * values[j - 1]
                if cost < best[k][j]:
                    best[k][j], cut[k][j] = cost, i
    runs = min(range(1, buckets + 1), key=lambda k: (best[k][distinct], k)) if distinct else 0
    bounds: list[tuple[int, int, int]] = []
    j = distinct
    for k in range(runs, 0, -1):
        i = cut[k][j]
        bounds.append((ends[i], ends[j], values[j - 1]))
        j = i
    return order, bounds[::-1]


class Tokenizer:
    """open_clip's BPE tokenizer, its output cut to the longest text of each call
    (`trim_padding`). Picklable, for loader workers."""

    def __init__(self, context_length: int) -> None:
        self.context_length = context_length
        self.bpe = SimpleTokenizer(context_length=context_length)

    def __call__(self, texts: list[str]) -> Tensor:
        return trim_padding(self.bpe(texts))


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
        self.tokenizer = Tokenizer(self.text_cfg.context_length)
        tower = self.tower
        # Positions past the longest text can be left out only when nothing reads them:
        # a causal mask, no appended CLS, pooling at the end token, no token outputs.
        self.trims = (
            getattr(tower, "attn_mask", None) is not None
            and getattr(tower, "cls_emb", None) is None
            and not getattr(tower, "use_pad_mask", False)
            and getattr(tower, "pool_type", None) in ("argmax", "eos")
            and not getattr(tower, "output_tokens", False)
        )

    def tokenize(self, texts: list[str]) -> Tensor:
        """Texts -> token ids [T, L], L <= context_length the longest text's length
        (truncated, end token kept)."""
        return self.tokenizer(texts)

    def forward(self, tokens: Tensor) -> Tensor:
        """Token ids [T, L] (L <= context_length) -> text embeddings [T, embed_dim]."""
        length, context = tokens.shape[1], self.text_cfg.context_length
        if length > context:
            raise ValueError(f"{length} text positions, the text tower holds {context}")
        if self.trims and tokens.device.type == "cpu" and tokens.size(0) >= 2 * LENGTH_BUCKETS:
            return self._by_length(tokens)
        if length == context:
            return self.tower(tokens)
        if not self.trims:
            return self.tower(F.pad(tokens, (0, context - length)))
        return self._cut(tokens)

    def _by_length(self, tokens: Tensor, buckets: int = LENGTH_BUCKETS) -> Tensor:
        """`_cut` on at most `buckets` groups of texts of similar length, each cut to its own
        longest (`length_buckets`), the embeddings put back in the texts' order. Host tensors:
        it reads the lengths (a device would wait for them; padding costs it little)."""
        order, bounds = length_buckets(text_lengths(tokens), buckets)
        parts = []
        for start, stop, length in bounds:
            parts.append(self._cut(tokens[order[start:stop], :length]))
        return torch.cat(parts)[torch.argsort(order)]

    def _cut(self, tokens: Tensor) -> Tensor:
        """open_clip's TextTransformer.forward on the first `length` positions (trims)."""
        length = tokens.shape[1]
        tower = self.tower
        dtype = tower.transformer.get_cast_dtype()
        x = tower.token_embedding(tokens).to(dtype) + tower.positional_embedding[:length].to(dtype)
        x = tower.ln_final(tower.transformer(x, attn_mask=tower.attn_mask[:length, :length]))
        pooled = text_global_pool(x, tokens, pool_type=tower.pool_type, eos_token_id=getattr(tower, "eos_id", None))
        if tower.text_projection is None:
            return pooled
        if isinstance(tower.text_projection, nn.Linear):
            return tower.text_projection(pooled)
        return pooled @ tower.text_projection


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
