"""The trainer: one run, from its checked flags to its last validation metrics.

`train(args, checkpoint)` starts the processes, builds the data, the model and
the optimiser (`Trainer`), trains epoch after epoch, scores the validation set
after each, and writes the run directory (params.json, out.log, results.jsonl,
checkpoints/); bad input ends it with `error: ...`, not a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import torch
from open_clip.loss import ClipLoss
from torch.nn.parallel import DistributedDataParallel

from data import BadItem, open_dataset
from data.atomic import fault_point
from data.cli import data_options
from data.clusters import object_clusters
from data.loader import GraphLoader, epoch_generator
from data.sources import open_twins
from graphs import SCHEMA_VERSION
from models.checkpoint import check_state_fits, load_checkpoint
from train.distributed import World, barrier, close_world, device_from_flag, init_world
from train.loop import EpochTotals, Objectives, make_optimizer, train_epoch, warmup_cosine
from train.metrics import embed_dataset, format_table, one_caption_metrics, retrieval_metrics
from train.model_from_flags import build_model, uses_mim
from train.rng import rng_state, seed_everything, set_rng_state
from train.rundir import LOG, RunDir
from train.tensorboard_log import tensorboard_writer, write_record


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
        embed_open_predicates(self.model, self.train_set, self.val_set)
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
            twins=open_twins(options, self.train_set.store, self.progress, args.twins_per_scene)
            if args.hard_negative_images
            else None,
            tokenize=None if args.objective == "mim" or args.data_on_device else self.model.text_encoder.tokenizer,
            workers=args.loader_workers,
            pin_memory=self.device.type == "cuda",
            twin_caption_share=args.twin_caption_share if args.hard_negative_images else 0.0,
            twin_caption_mode=getattr(args, "twin_caption_mode", "replace"),
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
        texts = getattr(self.model.graph_encoder, "relation_texts", None)
        if texts is not None:  # the resumed table must be this tower's
            texts.expect(self.model.graph_encoder.relation_text)
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
            write_record(self.writer, record)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.run_dir:
            self.run_dir.close()


def embed_open_predicates(model, *datasets) -> None:
    """With text relation features, embed every predicate name outside the vocabulary that the
    datasets' graphs use, once, before training (else each is embedded the first time a batch holds it)."""
    texts = getattr(model.graph_encoder, "relation_texts", None)
    if texts is None:
        return
    names = sorted(
        {name for dataset in datasets if dataset is not None for name in dataset.store.all_open_predicates()}
    )
    if names:
        LOG.info("embedding %d predicate names outside the vocabulary with %s", len(names), texts.describe())
        texts.embed(names)


def train(args: argparse.Namespace, checkpoint: Path | None = None) -> dict:
    """Train with checked flags (train.run.parse_args), continuing from `checkpoint` when given;
    return the last validation metrics."""
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
