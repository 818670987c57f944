"""Graph-text CLIP: the graph encoder and the text encoder with a learnable temperature."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data, HeteroData

from models.graph_encoder import GraphEncoder, GraphEncoderConfig
from models.objectives import ClusterHead, TokenPropDecoder
from models.text import TextEncoder
from models.vision import PixelEncoder

DEFAULT_CONFIG = "semgraph-tiny"


@dataclass
class GraphCLIPConfig:
    """The whole model's hyper-parameters, as stored in models/configs/*.json."""

    embed_dim: int = 128
    graph: GraphEncoderConfig = field(default_factory=GraphEncoderConfig)
    text: dict = field(default_factory=dict)
    init_logit_scale: float = math.log(1 / 0.07)
    vision: str | None = None  # timm:NAME: a pixel model instead of the graph encoder
    vision_image_size: int = 96
    tokenprop: bool = False  # a TokenProp decoder (its loss weight is the trainer's)
    mim_clusters: int = 0  # K > 0: a mask token and a head predicting K-means cluster ids

    @classmethod
    def from_dict(cls, values: dict) -> GraphCLIPConfig:
        values = dict(values)
        graph = GraphEncoderConfig(**values.pop("graph", {}))
        return cls(graph=graph, **values)

    def to_dict(self) -> dict:
        return {
            "embed_dim": self.embed_dim,
            "graph": self.graph.to_dict(),
            "text": dict(self.text),
            "init_logit_scale": self.init_logit_scale,
            "vision": self.vision,
            "vision_image_size": self.vision_image_size,
            "tokenprop": self.tokenprop,
            "mim_clusters": self.mim_clusters,
        }


def load_config(name_or_path: str) -> GraphCLIPConfig:
    """A config by name (a file in models/configs) or by path to a JSON file."""
    path = Path(name_or_path)
    if path.suffix == ".json" or path.exists():
        if not path.exists():
            raise FileNotFoundError(f"model config {path} does not exist")
        text = path.read_text()
    else:
        known = sorted(p.name[:-5] for p in resources.files("models.configs").iterdir() if p.name.endswith(".json"))
        if name_or_path not in known:
            raise ValueError(f"unknown model config {name_or_path!r}; known: {', '.join(known)}")
        text = resources.files("models.configs").joinpath(f"{name_or_path}.json").read_text()
    return GraphCLIPConfig.from_dict(json.loads(text))


class GraphCLIP(nn.Module):
    """Embeds graphs and texts into one space; returns normalised features and the scale.

    The image side is the graph encoder, or with ``config.vision`` a pixel
    model reading each graph's stored pixels (the ViT baseline).
    """

    def __init__(self, config: GraphCLIPConfig) -> None:
        super().__init__()
        self.config = config
        config.graph.embed_dim = config.embed_dim
        config.graph.mask_token = config.mim_clusters > 0
        if config.vision:
            self.graph_encoder = PixelEncoder(config.vision, config.embed_dim, config.vision_image_size)
        else:
            self.graph_encoder = GraphEncoder(config.graph)
        self.text_encoder = TextEncoder(config.text, config.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(config.init_logit_scale))
        graph_side = not config.vision
        self.tokenprop = (
            TokenPropDecoder(config.graph.node_dims, config.graph.width) if graph_side and config.tokenprop else None
        )
        self.cluster_head = (
            ClusterHead(config.graph.width, config.mim_clusters) if graph_side and config.mim_clusters else None
        )

    def compile_dense(self, **options) -> None:
        """`torch.compile` what a compiler takes well: the graph encoder's transformer blocks
        (`GraphEncoder.compile_blocks`; its gathers and scatters stay eager), or a pixel
        model whole, and the text tower. `options` go to `torch.compile`."""
        if isinstance(self.graph_encoder, GraphEncoder):
            self.graph_encoder.compile_blocks(**options)
        else:
            self.graph_encoder.compile(**options)
        self.text_encoder.compile(**options)

    def encode_graph(self, batch: Data | HeteroData) -> Tensor:
        return F.normalize(self.graph_encoder(batch), dim=-1)

    def encode_text(self, tokens: Tensor) -> Tensor:
        return F.normalize(self.text_encoder(tokens), dim=-1)

    def forward(
        self,
        batch: Data | HeteroData,
        tokens: Tensor | None,
        hidden: Tensor | None = None,
        cluster_targets: Tensor | None = None,
        twins: Data | HeteroData | None = None,
    ) -> CLIPOutput:
        """Normalised image and text features, the scale, and the token objectives asked for.

        `hidden` (bool per object node) with `cluster_targets` (cluster id per
        hidden node) adds the masked-token loss, from a second pass with those
        tokens hidden; a TokenProp decoder adds its reconstruction loss.
        `twins`, a batch of hard-negative images, adds their features after
        those of `batch`.
        """
        aux: dict[str, Tensor] = {}
        if self.config.vision:
            image = F.normalize(self.graph_encoder(batch), dim=-1)
        else:
            encoder = self.graph_encoder
            dense, valid, index = encoder.encode_tokens(batch)
            image = F.normalize(encoder.pool_tokens(dense, valid), dim=-1)
            if self.tokenprop is not None:
                outputs = dense.reshape(-1, dense.size(-1))[index]
                inputs = [batch[t].x for t in encoder.node_types]
                aux["tokenprop"] = self.tokenprop(list(outputs.split([len(x) for x in inputs])), inputs)
            if hidden is not None and self.cluster_head is not None:
                masked, _, masked_index = encoder.encode_tokens(batch, hidden)
                objects = masked.reshape(-1, masked.size(-1))[masked_index[: len(hidden)]]
                aux["mim"], aux["mim_acc"] = self.cluster_head(objects[hidden], cluster_targets)
        if twins is not None and twins.num_graphs:
            image = torch.cat([image, self.encode_graph(twins)])
        text = F.normalize(self.text_encoder(tokens), dim=-1) if tokens is not None else None
        return CLIPOutput(image, text, self.logit_scale.exp().clamp(max=100), aux)


class CLIPOutput(NamedTuple):
    image: Tensor
    text: Tensor | None
    scale: Tensor
    aux: dict
