"""The model a training run's flags describe: its config with the flags on top, and the weights
the flags name loaded into it (--init-from, --text-checkpoint, --relation-text-checkpoint)."""

from __future__ import annotations

import argparse
from pathlib import Path

from graphs import encoder_inputs
from graphs.schema import PREDICATES
from models import GraphCLIP, load_config
from models.checkpoint import check_state_fits, load_checkpoint
from models.relation_text import PredicateTexts
from models.text import load_text_checkpoint, open_clip_text_config
from train.rundir import LOG


def build_model(args: argparse.Namespace, sample_graph) -> GraphCLIP:
    config = load_config(args.model_config)
    config.graph.node_dims, config.graph.num_edge_types = encoder_inputs(sample_graph)
    if args.edge_bias is not None:
        config.graph.edge_bias = args.edge_bias
    config.graph.edge_bias_init = args.edge_bias_init
    config.graph.edge_schema = args.edge_schema
    if args.readout is not None:
        config.graph.pool = args.readout
    if args.text_model:
        config.text = open_clip_text_config(args.text_model)
    if args.vision:
        config.vision, config.vision_image_size = args.vision, args.vision_image_size
    config.graph.token_norm = args.token_norm
    table = texts = None
    if args.relation_features == "text" and not args.vision:
        texts = PredicateTexts(args.relation_text_model, args.relation_text_checkpoint)
        table = texts.embed(PREDICATES)
        config.graph.relation_features, config.graph.relation_text_dim = "text", table.size(1)
    config.tokenprop = args.tokenprop_weight > 0
    config.mim_clusters = args.mim_clusters if uses_mim(args) else 0
    model = GraphCLIP(config)
    if table is not None:
        model.graph_encoder.relation_text.copy_(table)
        model.graph_encoder.relation_texts = texts  # embeds open-vocabulary predicate names
    if args.init_from:
        init_graph_encoder(model, args.init_from)
        if texts is not None:  # the table is now the other run's: this run's tower must reproduce it
            texts.expect(model.graph_encoder.relation_text)
    if args.text_checkpoint:
        load_text_checkpoint(model.text_encoder, args.text_checkpoint)
    if args.freeze_text:
        model.text_encoder.requires_grad_(False)
    return model


def uses_mim(args: argparse.Namespace) -> bool:
    return args.objective == "mim" or args.mim_weight > 0


def init_graph_encoder(model: GraphCLIP, path: Path) -> None:
    """Load the graph encoder's weights of another run (MIM pretraining, say)."""
    state = load_checkpoint(path)["model"]
    found = {k.removeprefix("graph_encoder."): v for k, v in state.items() if k.startswith("graph_encoder.")}
    expected = model.graph_encoder.state_dict()
    check_state_fits(
        {k: v for k, v in expected.items() if k != "mask_token"}, {k: v for k, v in found.items() if k != "mask_token"}
    )
    model.graph_encoder.load_state_dict({**expected, **{k: v for k, v in found.items() if k in expected}})
    LOG.info("graph encoder initialised from %s", path)
