"""Relation tokens from text: each predicate name embedded once by an open_clip text tower.

With `--relation-features text` the one-hot predicate of a relation token is
replaced by the text embedding of its name (the seed paper's relation tokens).
The vocabulary's names are embedded when the model is built and travel in the
model (`GraphEncoder.relation_text`, saved in checkpoints). A name outside the
vocabulary (open vocabulary: RAM, a tokens file, Visual Genome) travels with
its graph (`name_key`, `open_predicates`, see graphs.schema); `PredicateTexts`
embeds it with the same tower the first time it is needed and keeps it, so
each distinct name is embedded once per process.

Without a checkpoint the tower is untrained: its weights are drawn from a fixed
seed, so that evaluation rebuilds the very tower training used. A tower that
does not reproduce the model's vocabulary table (another checkpoint, another
model) is refused before it embeds anything.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import Tensor

from graphs.schema import PREDICATES, normalise_predicate, predicate_key
from models.text import TextEncoder, load_text_checkpoint

DEFAULT_RELATION_TEXT_MODEL = "ViT-B-32"  # the seed paper's
UNTRAINED_SEED = 0  # the weights of an untrained tower: the same in training and evaluation
CHUNK = 256  # names per forward pass of the tower


class PredicateTexts:
    """Text embeddings of predicate names by one open_clip text tower, each name embedded once.

    Args:
        model: an open_clip model config's name (its ``text_cfg`` and ``embed_dim``), e.g. ``ViT-B-32``,
            or a (``text_cfg``, ``embed_dim``) pair.
        checkpoint: a local file holding the tower's weights; None: untrained (seeded) weights.
        reference: the [len(PREDICATES), D] table a model was trained with; the tower must
            reproduce it before it embeds anything (None: not checked).
    """

    def __init__(
        self, model: str | tuple[dict, int], checkpoint: str | Path | None = None, reference: Tensor | None = None
    ) -> None:
        self.model = model
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        self.reference = None if reference is None else reference.detach().float().cpu()
        self._encoder: TextEncoder | None = None
        self._memo: dict[int, Tensor] = {}

    def describe(self) -> str:
        weights = f"from {self.checkpoint}" if self.checkpoint else f"untrained (seed {UNTRAINED_SEED})"
        name = self.model if isinstance(self.model, str) else "given"
        return f"the {name} text tower {weights}"

    def encoder(self) -> TextEncoder:
        """The tower, built (and checked against the reference) on first use."""
        if self._encoder is None:
            self._encoder = self._build()
            if self.reference is not None:
                self._check(self._encode(list(PREDICATES)))
        return self._encoder

    def _build(self) -> TextEncoder:
        if isinstance(self.model, str):
            import open_clip

            config = open_clip.get_model_config(self.model)
            if config is None:
                raise ValueError(f"relation text model: unknown open_clip model {self.model!r}")
            text_cfg, embed_dim = dict(config["text_cfg"]), config["embed_dim"]
        else:
            text_cfg, embed_dim = self.model
        with torch.random.fork_rng(devices=[]):  # the CPU generator only: seeded here, restored after
            torch.default_generator.manual_seed(UNTRAINED_SEED)
            encoder = TextEncoder(text_cfg, embed_dim)
        if self.checkpoint is not None:
            load_text_checkpoint(encoder, self.checkpoint)
        else:
            warnings.warn(
                "--relation-features text without --relation-text-checkpoint: the text tower that embeds the "
                f"predicate names is untrained (random weights, seed {UNTRAINED_SEED})",
                stacklevel=3,
            )
        return encoder.eval()

    def expect(self, table: Tensor) -> None:
        """The model's table is now `table` (loaded from another run): the tower must reproduce it."""
        self.reference = table.detach().float().cpu()
        if self._encoder is not None:
            self._check(self._encode(list(PREDICATES)))

    def _check(self, table: Tensor) -> None:
        if table.shape != self.reference.shape or not torch.allclose(table, self.reference, rtol=1e-3, atol=1e-4):
            difference = (
                f"max difference {float((table - self.reference).abs().max()):.3g}"
                if table.shape == self.reference.shape
                else f"shape {tuple(table.shape)} against {tuple(self.reference.shape)}"
            )
            raise ValueError(
                f"{self.describe()} does not reproduce the predicate table this model was trained with "
                f"({difference}): it cannot embed predicate names outside the vocabulary as training would have. "
                "The tower is the one the run's params name (relation_text_model, relation_text_checkpoint)"
            )

    def _encode(self, names: list[str]) -> Tensor:
        encoder = self._encoder
        with torch.no_grad():
            parts = [encoder(encoder.tokenize(names[k : k + CHUNK])).float() for k in range(0, len(names), CHUNK)]
        return torch.cat(parts)

    def embed(self, names: Iterable[str]) -> Tensor:
        """[len(names), D]: the embedding of each (normalised) name; names not seen before are embedded now."""
        names = [normalise_predicate(name) for name in names]
        keys = [predicate_key(name) for name in names]
        new = sorted({name for name, key in zip(names, keys, strict=True) if key not in self._memo})
        if new:
            self.encoder()
            for name, row in zip(new, self._encode(new), strict=True):
                self._memo[predicate_key(name)] = row
        if not keys:
            return torch.zeros(0, 0)
        return torch.stack([self._memo[key] for key in keys])

    def lookup(self, keys: Tensor, names: Iterable[str]) -> Tensor:
        """[len(keys), D]: the embedding of each name key; `names` holds the names of keys not embedded yet."""
        wanted = keys.tolist()
        by_key = {predicate_key(name): name for name in names}
        missing = {key for key in wanted if key not in self._memo}
        unnamed = missing - by_key.keys()
        if unnamed:
            raise ValueError(
                f"{len(unnamed)} relation token predicate(s) outside the vocabulary come without their names "
                "(the graphs' open_predicates): they cannot be embedded"
            )
        self.embed(by_key[key] for key in missing)
        return torch.stack([self._memo[key] for key in wanted]).to(keys.device)
