"""Graph transformer with edge-typed attention bias, the text tower and the CLIP wrapper."""

from models.attention import BIAS_MODES, EdgeTypeBias
from models.clip import DEFAULT_CONFIG, GraphCLIP, GraphCLIPConfig, load_config
from models.graph_encoder import GraphEncoder, GraphEncoderConfig
from models.text import TextEncoder

__all__ = [
    "BIAS_MODES",
    "DEFAULT_CONFIG",
    "EdgeTypeBias",
    "GraphCLIP",
    "GraphCLIPConfig",
    "GraphEncoder",
    "GraphEncoderConfig",
    "TextEncoder",
    "load_config",
]
