"""Train a graph-text CLIP model: `python train/run.py --graph-type hetero`.

The entry point is `main(argv) -> dict`, so a test can run a whole training
by calling it. A run writes its directory (params.json, out.log,
results.jsonl, checkpoints/) and returns the last validation metrics.
Several processes: `torchrun --nproc-per-node N train/run.py ...`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import time
import warnings
from pathlib import Path

# PyG scripts a few modules at import; torch 2.14 warns for each. Not ours to fix.
warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)

import numpy as np
import torch
from open_clip.loss import ClipLoss
from torch.nn.parallel import DistributedDataParallel

from data import BadItem, open_dataset
from data.atomic import fault_point
from data.cli import add_data_arguments, check_drop_edge_types, data_options
from data.clusters import object_clusters
from data.loader import GraphLoader, epoch_generator
from data.negatives import NEGATIVE_KINDS
from data.sources import open_twins
from graphs import SCHEMA_VERSION, encoder_inputs
from models import BIAS_MODES, DEFAULT_CONFIG, GraphCLIP, load_config
from models.attention import BIAS_INITS
from models.checkpoint import check_state_fits, load_checkpoint
from models.graph_encoder import POOLS, RELATION_FEATURES
from models.text import load_text_checkpoint, open_clip_text_config, predicate_text_table
from models.token_norm import TOKEN_NORMS
from train.config import explicit_flags, merge, read_config
from train.distributed import World, barrier, close_world, device_from_flag, init_world
from train.flags import validate
from train.loop import EpochTotals, Objectives, make_optimizer, train_epoch, warmup_cosine
from train.metrics import embed_dataset, format_table, one_caption_metrics, retrieval_metrics
from train.rundir import LOG, RunDir, read_results

# Flags a resumed run never takes from its params.json (the others come from it unless given again).
RUN_LOCAL_FLAGS = {"resume", "out", "config"}
# What params.json records beside the flags.
PARAMS_EXTRAS = {"model", "world_size", "schema_version"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train/run.py",
        description="Train an edge-biased graph transformer on image graphs against an open_clip text tower "
        "(contrastive, CLIP-style). The default trains the hetero model on the embedded synthetic world.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--config", type=Path, help="YAML/JSON file of flag values; command-line flags override it")
    add_data_arguments(parser)
    model = parser.add_argument_group("model")
    model.add_argument("--model-config", default=DEFAULT_CONFIG, help="a config name in models/configs or a JSON path")
    model.add_argument(
        "--edge-bias", choices=BIAS_MODES, default=None, help="attention bias mode (default: the config's)"
    )
    model.add_argument(
        "--edge-bias-init",
        choices=BIAS_INITS,
        default="ranks",
        help="where the learned bias starts: from the ranks (docs/design.md) or at zero",
    )
    model.add_argument(
        "--readout",
        choices=POOLS,
        default=None,
        help="how the graph's tokens become the embedding (config field `pool`, default: the config's): "
        "a learned attention query, a masked mean, or a learned CLS token prepended (the seed paper's)",
    )
    model.add_argument(
        "--relation-features",
        choices=RELATION_FEATURES,
        default="onehot",
        help="what a relation token says of its predicate: the one-hot of the vocabulary, or the text "
        "embedding of its name (the seed paper's), each predicate embedded once by --relation-text-model",
    )
    model.add_argument(
        "--relation-text-model",
        default="ViT-B-32",
        help="the open_clip model whose text tower embeds predicate names (config only; weights from "
        "--relation-text-checkpoint)",
    )
    model.add_argument(
        "--relation-text-checkpoint",
        type=Path,
        help="local weights of that text tower (a CLIP checkpoint or a text-tower state dict); "
        "without one the tower is untrained and a warning says so",
    )
    model.add_argument(
        "--token-norm",
        choices=TOKEN_NORMS,
        default="none",
        help="normalise each graph's tokens before the transformer: MoTo, layer, batch or none",
    )
    model.add_argument(
        "--vision",
        help="a pixel model as the image side: timm:NAME (e.g. timm:vit_small_patch16_224) or vit:paper "
        "(the seed authors' baseline: a ViT of width 512, 8 layers, 8 heads)",
    )
    model.add_argument("--vision-image-size", type=int, default=96, help="pixel side for --vision")
    model.add_argument("--text-model", help="an open_clip model name whose text tower to use (e.g. ViT-B-32)")
    model.add_argument(
        "--text-checkpoint", type=Path, help="local weights: a CLIP checkpoint or a text-tower state dict"
    )
    model.add_argument("--freeze-text", action="store_true", help="keep the text tower fixed")
    model.add_argument("--text-lr-scale", type=float, default=1.0, help="the text tower's learning rate, relative")
    optim = parser.add_argument_group("optimisation")
    optim.add_argument(
        "--objective",
        choices=("clip", "mim"),
        default="clip",
        help="clip: contrastive against captions; mim: masked-token pretraining (ClusterMIM)",
    )
    optim.add_argument(
        "--hard-negatives",
        type=negative_kinds,
        default=[],
        metavar="KINDS",
        help="comma-separated: relation,attribute,order: certainly-false captions made from each "
        "scene's graph, added as extra texts for its image (NegCLIP); synthetic world only",
    )
    optim.add_argument(
        "--hard-negative-images",
        action="store_true",
        help="add each scene's twin, re-drawn with one relation reversed (its arrow turned round, or two "
        "objects in each other's places), as an extra image with its own caption, so the image side is "
        "pushed too (Winoground's image score); synthetic world only",
    )
    optim.add_argument("--tokenprop-weight", type=float, default=0.0, help="TokenProp reconstruction loss weight")
    optim.add_argument("--mim-weight", type=float, default=0.0, help="masked-token loss weight beside the CLIP loss")
    optim.add_argument("--mim-clusters", type=int, default=64, help="K of the K-means token targets")
    optim.add_argument("--mim-ratio", type=float, default=0.75, help="share of object tokens hidden")
    optim.add_argument("--init-from", type=Path, help="start the graph encoder from a checkpoint (e.g. MIM-pretrained)")
    optim.add_argument("--epochs", type=int, default=20)
    optim.add_argument("--batch-size", type=int, default=256, help="graphs per step in each process")
    optim.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    optim.add_argument("--weight-decay", type=float, default=0.1)
    optim.add_argument("--warmup-steps", type=int, default=50, help="linear warm-up, then cosine decay")
    optim.add_argument("--grad-clip", type=float, default=1.0, help="clip the gradient norm (0: off)")
    run = parser.add_argument_group("run")
    run.add_argument("--seed", type=int, default=0, help="seed of the synthetic world and of training")
    run.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto picks CUDA when present")
    run.add_argument(
        "--precision",
        choices=("fp32", "bf16", "fp16"),
        default=None,
        help="autocast precision (default: bf16 on CUDA, fp32 on CPU); fp16 adds a grad scaler",
    )
    run.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the dense parts: the graph encoder's transformer blocks (tokens padded to a power "
        "of two, one compilation per size), the text tower, a --vision pixel model; gathers and scatters "
        "stay eager",
    )
    run.add_argument(
        "--loader-workers",
        type=non_negative,
        default=0,
        metavar="N",
        help="processes making the training batches (collation, captions, tokenization) in a DataLoader; "
        "0: the main process. The batches are the same whatever N",
    )
    run.add_argument(
        "--log-every",
        type=int,
        default=50,
        metavar="N",
        help="read the running losses from the device every N steps (the progress bar updates then); "
        "no other step waits for the device",
    )
    run.add_argument(
        "--data-on-device",
        action="store_true",
        help="keep every training graph and its tokenized captions on the device; batches are "
        "assembled there by index, with no per-graph Python work",
    )
    run.add_argument("--out", type=Path, default=None, help="run directory (default: runs/<graph-type>-<time>)")
    run.add_argument("--resume", help="'latest' (the run in --out) or a checkpoint path: continue exactly")
    run.add_argument("--save-every-steps", type=int, default=0, help="also checkpoint every N steps (0: per epoch)")
    run.add_argument(
        "--keep-step-checkpoints",
        type=non_negative,
        default=2,
        metavar="N",
        help="keep the newest N step_*.pt files of --save-every-steps, delete older ones (0: keep all); "
        "epoch checkpoints and latest.pt are always kept",
    )
    run.add_argument("--report-to", choices=("none", "tensorboard"), default="none", help="also log to TensorBoard")
    run.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    run.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    return parser


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, Path | None]:
    """Flags from defaults, --config, a resumed run's params.json and the command line."""
    parser = build_parser()
    args = parser.parse_args(argv)
    explicit = explicit_flags(parser, argv)
    try:
        if args.config:
            merge(parser, args, explicit, read_config(args.config), str(args.config), ignore={"config"} | PARAMS_EXTRAS)
        checkpoint = None
        if args.resume:
            checkpoint = resume_checkpoint(args)
            params_path = checkpoint.parents[1] / "params.json"
            params = read_config(params_path)
            saved = {k: v for k, v in params.items() if k in vars(args)}
            merge(parser, args, explicit | RUN_LOCAL_FLAGS, saved, str(params_path))
            args.out = checkpoint.parents[1]
            check_resume(args, params, params_path, checkpoint)
        try:
            args.drop_edge_types = check_drop_edge_types(args.drop_edge_types, args.edge_schema)
        except ValueError as error:
            raise ValueError(f"--drop-edge-types: {error}") from None
        if args.relation_features == "text" and args.graph_type == "homo":
            raise ValueError("--relation-features text reads each relation token's predicate: use hetero graphs")
        validate(args)
    except (FileNotFoundError, ValueError) as error:
        parser.error(str(error))
    return args, checkpoint


def resume_checkpoint(args: argparse.Namespace) -> Path:
    if args.resume == "latest":
        if args.out is None:
            raise ValueError("--resume latest needs --out RUN_DIR (the run to continue)")
        path = Path(args.out) / "checkpoints" / "latest.pt"
    else:
        path = Path(args.resume)
    if not path.is_file():
        hint = ""
        if args.resume == "latest" and path.parent.is_dir():
            hint = f" (it stopped before its first checkpoint: run it again with another --out, or delete {args.out})"
        raise FileNotFoundError(f"no checkpoint to resume from at {path}{hint}")
    return path


def check_resume(args: argparse.Namespace, params: dict, params_path: Path, checkpoint: Path) -> None:
    """Refuse a resume whose position would mean other batches, or whose files are damaged.

    Batch k of epoch e is a slice of the epoch's order of `batch_size *
    world_size` graphs, cut into one share per process: another process count or
    batch size would continue from other graphs. The checkpoint must be
    readable and results.jsonl must be JSON lines (a torn last line is allowed;
    the run drops it).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if params.get("world_size", world_size) != world_size:
        raise ValueError(
            f"{params_path}: the run was trained by {params['world_size']} process(es) and this resume has "
            f"{world_size}; batch k of an epoch means other graphs in another world size: resume it with "
            f"{params['world_size']} process(es) (torchrun --nproc-per-node {params['world_size']})"
        )
    if params.get("batch_size", args.batch_size) != args.batch_size:
        raise ValueError(
            f"{params_path}: the run was trained with batch size {params['batch_size']} per process and this "
            f"resume asks for --batch-size {args.batch_size}; batch k of an epoch means other graphs with "
            "another batch size: leave --batch-size out to resume"
        )
    try:  # a damaged file is named here, before any data is built
        load_checkpoint(checkpoint, mmap=True)
    except ValueError as error:
        others = sorted(p.name for p in checkpoint.parent.glob("*.pt") if p != checkpoint)
        hint = f"; the run's other checkpoints: {', '.join(others)} (resume one with --resume PATH)" if others else ""
        raise ValueError(f"{error}{hint}") from None
    results = args.out / "results.jsonl"
    if results.is_file():
        read_results(results)


def non_negative(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {number}")
    return number


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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
    table = None
    if args.relation_features == "text" and not args.vision:
        table = relation_text_table(args.relation_text_model, args.relation_text_checkpoint)
        config.graph.relation_features, config.graph.relation_text_dim = "text", table.size(1)
    config.tokenprop = args.tokenprop_weight > 0
    config.mim_clusters = args.mim_clusters if uses_mim(args) else 0
    model = GraphCLIP(config)
    if table is not None:
        model.graph_encoder.relation_text.copy_(table)
    if args.init_from:
        init_graph_encoder(model, args.init_from)
    if args.text_checkpoint:
        load_text_checkpoint(model.text_encoder, args.text_checkpoint)
    if args.freeze_text:
        model.text_encoder.requires_grad_(False)
    return model


def relation_text_table(model_name: str, checkpoint: Path | None) -> torch.Tensor:
    """Every vocabulary predicate's name embedded once by an open_clip text tower, [P, D]."""
    import open_clip

    from graphs.schema import PREDICATES

    config = open_clip.get_model_config(model_name)
    if config is None:
        raise ValueError(f"--relation-text-model: unknown open_clip model {model_name!r}")
    return predicate_text_table(list(PREDICATES), dict(config["text_cfg"]), config["embed_dim"], checkpoint)


def negative_kinds(value: str) -> list[str]:
    kinds = [kind.strip() for kind in value.split(",") if kind.strip()]
    unknown = [kind for kind in kinds if kind not in NEGATIVE_KINDS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown hard negatives {unknown}; valid: {', '.join(NEGATIVE_KINDS)}")
    return kinds


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


def rng_state() -> dict:
    numpy_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],
        "python": random.getstate(),
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), *rest))
    random.setstate(tuple(tuple(x) if isinstance(x, list) else x for x in state["python"]))


class Trainer:
    """The state of one run and what it writes; only rank 0 writes."""

    def __init__(self, args: argparse.Namespace, world: World, checkpoint: Path | None) -> None:
        self.args, self.world = args, world
        self.device = device_from_flag(args.device, world.local_rank)
        self.precision = args.precision or ("bf16" if self.device.type == "cuda" else "fp32")
        self.progress = not args.no_progress and world.is_main
        out = args.out or Path("runs") / f"{args.graph_type}-{time.strftime('%Y%m%d-%H%M%S')}"
        self.run_dir = (
            RunDir(out, resume=checkpoint is not None, keep_step_checkpoints=args.keep_step_checkpoints)
            if world.is_main
            else None
        )
        self.writer = None
        try:
            self.setup(checkpoint)
        except BaseException:
            self.close()
            raise

    def setup(self, checkpoint: Path | None) -> None:
        args, world = self.args, self.world
        seed_everything(args.seed)
        options = data_options(args)
        options.pixels = args.vision_image_size if args.vision else 0
        if world.is_main:  # one process builds the cache, the others then read it
            self.train_set = open_dataset(options, "train", self.progress)
        barrier(world)
        if not world.is_main:
            self.train_set = open_dataset(options, "train", False)
        self.val_set = open_dataset(options, "val", self.progress) if world.is_main else None
        self.model = build_model(args, self.train_set[0]).to(self.device)
        caption_tokens = None
        if args.data_on_device:
            caption_tokens = self.train_set.store.caption_tokens(self.model.text_encoder.tokenize, self.device)
            self.train_set.store = self.train_set.store.to(self.device)
        self.loader = GraphLoader(
            self.train_set,
            args.batch_size,
            shuffle=True,
            drop_last=True,
            seed=args.seed,
            rank=world.rank,
            world_size=world.size,
            pick_caption=True,
            caption_tokens=caption_tokens,
            twins=open_twins(options, self.train_set.store, self.progress) if args.hard_negative_images else None,
            tokenize=None if args.objective == "mim" or args.data_on_device else self.model.text_encoder.tokenizer,
            workers=args.loader_workers,
            pin_memory=self.device.type == "cuda",
        )
        if len(self.loader) == 0:
            raise ValueError(
                f"{len(self.train_set)} training graphs make no batch of {self.loader.global_batch_size}; "
                "lower --batch-size"
            )
        self.optimizer = make_optimizer(self.model, args.lr, args.weight_decay, args.text_lr_scale)
        total_steps = args.epochs * len(self.loader)
        self.scheduler = warmup_cosine(self.optimizer, min(args.warmup_steps, max(1, total_steps // 5)), total_steps)
        self.scaler = torch.amp.GradScaler(self.device.type) if self.precision == "fp16" else None
        self.loss_fn = ClipLoss(local_loss=False, gather_with_grad=True, rank=world.rank, world_size=world.size)
        self.objectives = Objectives(
            contrastive=args.objective == "clip",
            tokenprop_weight=args.tokenprop_weight,
            mim_weight=1.0 if args.objective == "mim" else args.mim_weight,
            mim_ratio=args.mim_ratio,
        )
        if uses_mim(args):
            self.objectives.centroids = object_clusters(
                self.train_set.store, args.mim_clusters, args.seed, args.cache_dir, self.device.type
            )
        self.epoch, self.batch_in_epoch, self.step = 0, 0, 0
        self.epoch_totals = EpochTotals()
        self.resumed_generator: torch.Tensor | None = None  # the MIM hiding generator of a resumed epoch
        if checkpoint is not None:
            self.restore(checkpoint)
        self.network = self.model
        if world.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.network = DistributedDataParallel(self.model, device_ids=ids)
        if args.compile:
            self.model.compile_dense()
        self.params = self.make_params()

    def make_params(self) -> dict:
        params = {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(self.args).items()}
        params["out"] = str(self.run_dir.path) if self.run_dir else None
        params.update(precision=self.precision, world_size=self.world.size, schema_version=SCHEMA_VERSION)
        params["model"] = self.model.config.to_dict()
        params["resume"] = None
        return params

    def restore(self, path: Path) -> None:
        state = load_checkpoint(path)
        check_state_fits(self.model.state_dict(), state["model"])
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.batch_in_epoch, self.step = state["epoch"], state["batch_in_epoch"], state["step"]
        set_rng_state(state["rng"])
        if self.batch_in_epoch:  # inside an epoch: continue its sums and its hiding draws
            if "epoch_totals" not in state:
                LOG.warning(
                    "%s predates carried epoch sums: epoch %d's train_loss will average only the batches "
                    "after the resume, and MIM hides other tokens than an uninterrupted run",
                    path,
                    self.epoch + 1,
                )
            else:
                self.epoch_totals = EpochTotals(**state["epoch_totals"])
                self.resumed_generator = state["mim_generator"]
        if self.run_dir:
            dropped = self.run_dir.truncate_results(self.step)
            LOG.info(
                "resumed %s at epoch %d, batch %d (step %d)%s",
                path,
                self.epoch + 1,
                self.batch_in_epoch,
                self.step,
                f"; dropped {dropped} results past that step" if dropped else "",
            )

    def state(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "step": self.step,
            "rng": rng_state(),
            "epoch_totals": self.epoch_totals.state(),
            "mim_generator": self.objectives.generator.get_state(),
            "model_config": self.model.config.to_dict(),
            "graph_type": self.args.graph_type,
            "schema_version": SCHEMA_VERSION,
            "params": self.params,
        }

    def after_step(self, batches_done: int) -> None:
        self.batch_in_epoch = batches_done
        self.step += 1
        every = self.args.save_every_steps
        if every and self.step % every == 0 and self.run_dir and batches_done < len(self.loader):
            self.run_dir.save_checkpoint(self.state(), f"step_{self.step}")

    def evaluate(self) -> dict:
        """Retrieval on the validation set: every caption (t2i_R@1 ...) and, the seed paper's
        protocol, one caption per image drawn with a fixed seed (t2i_R@1_1cap ...)."""
        fault_point("evaluate")
        embeddings = embed_dataset(self.model, self.val_set, self.args.batch_size, self.device)
        return retrieval_metrics(*embeddings) | one_caption_metrics(*embeddings)

    def fit(self) -> dict:
        args, metrics = self.args, {}
        if self.run_dir:
            self.run_dir.write_params(self.params)
            n_params = sum(p.numel() for p in self.model.parameters())
            LOG.info(
                "run directory %s; device %s (%s); %d process(es)",
                self.run_dir.path,
                self.device,
                self.precision,
                self.world.size,
            )
            LOG.info(
                "%d train / %d val graphs; model %.2fM parameters; %d steps per epoch",
                len(self.train_set),
                len(self.val_set),
                n_params / 1e6,
                len(self.loader),
            )
            if args.report_to == "tensorboard":
                self.writer = tensorboard_writer(self.run_dir.path)
        while self.epoch < args.epochs:
            started = time.perf_counter()
            self.loader.set_epoch(self.epoch)
            self.objectives.generator = epoch_generator(args.seed, self.epoch, 2)
            if self.resumed_generator is not None:
                self.objectives.generator.set_state(self.resumed_generator)
                self.resumed_generator = None
            stats = train_epoch(
                self.network,
                self.loader,
                self.optimizer,
                self.scheduler,
                self.loss_fn,
                self.device,
                precision=self.precision,
                scaler=self.scaler,
                grad_clip=args.grad_clip,
                start=self.batch_in_epoch,
                after_step=self.after_step,
                progress=self.progress,
                description=f"epoch {self.epoch + 1}/{args.epochs}",
                objectives=self.objectives,
                totals=self.epoch_totals,
                log_every=args.log_every,
            )
            self.epoch, self.batch_in_epoch, self.epoch_totals = self.epoch + 1, 0, EpochTotals()
            if self.world.is_main:
                metrics = self.evaluate()
                record = {"epoch": self.epoch, "step": self.step, "split": "val", **stats, **metrics}
                record["epoch_seconds"] = time.perf_counter() - started
                self.run_dir.append_result(record)  # before the checkpoint: a resume drops it if that never came
                self.run_dir.save_checkpoint(self.state(), f"epoch_{self.epoch}")
                self.report(record)
            barrier(self.world)
        if not metrics and self.world.is_main:  # resumed a finished run
            metrics = self.evaluate()
        final = {"epoch": self.epoch, "step": self.step, **metrics}
        if self.world.is_main:
            LOG.info("final: %s", json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in final.items()}))
        return final

    def report(self, record: dict) -> None:
        LOG.info(
            "epoch %d: loss %.4f, %.0f samples/s, data wait %.1f%%, %.1f s\n%s",
            record["epoch"],
            record["train_loss"],
            record["samples_per_s"],
            100 * record["data_wait"],
            record["epoch_seconds"],
            format_table(record),
        )
        if self.writer is not None:
            for key, value in record.items():
                if isinstance(value, float):
                    self.writer.add_scalar(key.replace("@", "_at_"), value, record["step"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.run_dir:
            self.run_dir.close()


def tensorboard_writer(path: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise SystemExit("--report-to tensorboard needs the tensorboard package: pip install tensorboard") from None
    return SummaryWriter(str(path / "tensorboard"))


def main(argv: list[str] | None = None) -> dict:
    """Train as the command line says; return the last validation metrics."""
    args, checkpoint = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    world = init_world("cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu")
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(logging.Formatter("%(message)s"))
    if world.is_main:
        LOG.addHandler(console)
    trainer = None
    try:
        try:
            trainer = Trainer(args, world, checkpoint)
        except (BadItem, ValueError, FileNotFoundError) as error:  # bad input: a message, not a traceback
            hint = "; --on-bad-image skip leaves such items out (counted)" if isinstance(error, BadItem) else ""
            raise SystemExit(f"error: {error}{hint}") from None
        return trainer.fit()
    finally:
        if trainer is not None:
            trainer.close()
        LOG.removeHandler(console)
        close_world(world)


def cli() -> None:
    main()


if __name__ == "__main__":
    main()
