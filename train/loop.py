"""One epoch of contrastive training, and the optimiser and schedule it uses."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from data.atomic import fault_point
from data.loader import GraphLoader
from models.objectives import choose_hidden

NO_DECAY = ("logit_scale", "type_embedding", "edge_bias", "query")


def make_optimizer(model: nn.Module, lr: float, weight_decay: float, text_lr_scale: float = 1.0) -> torch.optim.AdamW:
    """AdamW; no weight decay on norms, biases, embeddings of types, bias tables, the
    pooling query and the logit scale; the text tower's rate scaled by `text_lr_scale`.
    The fused update (one kernel over every tensor) where torch has one for the
    parameters' device (the CPU and CUDA): the same algorithm, 4x faster than the
    per-tensor loop on 2 CPU cores (BENCHMARKS.md)."""
    groups: dict[tuple[bool, bool], list] = {(d, t): [] for d in (True, False) for t in (True, False)}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        decay = param.ndim >= 2 and not any(key in name for key in NO_DECAY)
        groups[decay, "text_encoder" in name].append(param)
    return torch.optim.AdamW(
        [
            {
                "params": params,
                "weight_decay": weight_decay if decay else 0.0,
                "lr": lr * (text_lr_scale if text else 1),
            }
            for (decay, text), params in groups.items()
            if params
        ],
        lr=lr,
        betas=(0.9, 0.98),
        eps=1e-6,
        fused=fusable(model),
    )


def fusable(model: nn.Module) -> bool | None:
    """True where every trainable parameter is a float tensor on the CPU or a CUDA device
    (torch's fused AdamW runs there); None (torch's default) otherwise."""
    params = [p for p in model.parameters() if p.requires_grad]
    if params and all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params):
        return True
    return None


def warmup_cosine(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up to the base rate, then cosine decay to zero at `total_steps`."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def autocast_for(device: torch.device, precision: str):
    """bf16 / fp16 autocast, or nothing for fp32."""
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def train_epoch(
    model: nn.Module,
    loader: GraphLoader,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    loss_fn: nn.Module,
    device: torch.device,
    precision: str = "fp32",
    scaler: torch.amp.GradScaler | None = None,
    grad_clip: float | None = 1.0,
    start: int = 0,
    after_step: Callable[[int], None] | None = None,
    progress: bool = True,
    description: str = "train",
    objectives: Objectives | None = None,
    totals: EpochTotals | None = None,
    log_every: int = 50,
) -> dict[str, float]:
    """Train over `loader` from its `start`-th batch; call `after_step(batches_done)` after each step.

    `model` may be wrapped in DistributedDataParallel; its text encoder is
    reached through `.module` then. `totals` holds the sums of the epoch's
    batches before `start` (a resumed epoch); each step's losses join it on the
    device and are read on the host every `log_every` steps (the progress bar
    updates then) and whenever `totals.state()` is asked for (a checkpoint):
    no step waits for the device otherwise. Returns the epoch's mean loss (and
    auxiliary losses) over all its batches; samples/s and the share of time
    spent waiting for data (collation included) of the batches trained in
    this call.
    """
    core = getattr(model, "module", model)
    objectives = objectives or Objectives()
    totals = totals if totals is not None else EpochTotals()
    model.train()
    samples, data_wait, shown = 0, 0.0, start
    start_time = last = time.perf_counter()
    bar = tqdm(
        total=len(loader), initial=start, desc=description, disable=not progress, leave=False, dynamic_ncols=True
    )
    for done, batch in enumerate(loader.iterate(start), start + 1):
        twins = batch.twins.to(device, non_blocking=True) if "twins" in batch else None
        blocked = batch.blocked.to(device, non_blocking=True) if "blocked" in batch else None
        extra_owners = batch.extra_owners.to(device, non_blocking=True) if "extra_owners" in batch else None
        batch = batch.to(device, non_blocking=True)
        if not objectives.contrastive:
            tokens = None
        elif "text_tokens" in batch:  # tokenized by the loader (or resident with the graphs), moved with it
            tokens = batch.text_tokens
        else:
            texts = batch.texts + list(getattr(batch, "negative_texts", []))
            tokens = core.text_encoder.tokenize(texts).to(device, non_blocking=True)
        hidden, targets = objectives.hide(batch)
        data_wait += time.perf_counter() - last
        with autocast_for(device, precision):
            out = model(batch, tokens, hidden, targets, twins)
            loss = (
                contrastive_loss(out, loss_fn, blocked, extra_owners)
                if objectives.contrastive
                else out.image.new_zeros(())
            )
            if "tokenprop" in out.aux:
                loss = loss + objectives.tokenprop_weight * out.aux["tokenprop"]
            if "mim" in out.aux:
                loss = loss + objectives.mim_weight * out.aux["mim"]
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        fault_point("step")
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        scheduler.step()
        with torch.no_grad():
            core.logit_scale.clamp_(0, math.log(100))  # in place on the device: no read
        totals.push(loss, batch.num_graphs, out.aux)
        samples += batch.num_graphs
        last = time.perf_counter()
        if done % log_every == 0 or done == len(loader):
            totals.read()
            bar.update(done - shown)
            shown = done
            bar.set_postfix(
                loss=f"{totals.last_loss:.3f}",
                samples_s=f"{samples / (last - start_time):.0f}",
                data=f"{100 * data_wait / (last - start_time):.0f}%",
            )
        if after_step is not None:
            after_step(done)
    bar.close()
    totals.read()
    elapsed = max(time.perf_counter() - start_time, 1e-9)
    stats = {
        "train_loss": totals.loss / max(totals.graphs, 1),
        "samples_per_s": samples / elapsed,
        "data_wait": data_wait / elapsed,
    }
    stats.update({f"train_{key}": value / max(totals.graphs, 1) for key, value in totals.aux.items()})
    return stats


@dataclass
class EpochTotals:
    """Sums over the batches of an epoch so far: graph-weighted loss, graphs, and the
    graph-weighted auxiliary losses. A mid-epoch checkpoint carries them, so that a
    resumed epoch reports the means an uninterrupted one would.

    Steps `push` their losses as device tensors; `read` brings the pending ones
    to the host in one transfer and adds them in step order, each as its float
    value times its graph count: the same sums, to the bit, as reading every
    step would give."""

    loss: float = 0.0
    graphs: int = 0
    aux: dict[str, float] = field(default_factory=dict)
    last_loss: float = field(default=float("nan"), repr=False, compare=False)
    pending: list[tuple[torch.Tensor, int, tuple[str, ...]]] = field(
        default_factory=list, init=False, repr=False, compare=False
    )

    def add(self, loss: float, graphs: int, aux: dict[str, float]) -> None:
        self.loss += loss
        self.graphs += graphs
        for key, value in aux.items():
            self.aux[key] = self.aux.get(key, 0.0) + value

    def push(self, loss: torch.Tensor, graphs: int, aux: dict[str, torch.Tensor]) -> None:
        """A step's loss and auxiliary losses, kept on the device until `read`."""
        # float64 holds fp32, bf16 and fp16 values exactly: the host reads what .item() would give
        values = torch.stack([value.detach().to(torch.float64) for value in (loss, *aux.values())])
        self.pending.append((values, graphs, tuple(aux)))

    def read(self) -> None:
        """Add the pending steps to the sums (one wait for the device)."""
        if not self.pending:
            return
        rows = torch.cat([values for values, _, _ in self.pending]).tolist()
        position = 0
        for _, graphs, keys in self.pending:
            loss, *aux = rows[position : position + 1 + len(keys)]
            position += 1 + len(keys)
            self.add(loss * graphs, graphs, {key: value * graphs for key, value in zip(keys, aux, strict=True)})
            self.last_loss = loss
        self.pending.clear()

    def state(self) -> dict:
        """The sums a checkpoint carries (pending steps read first)."""
        self.read()
        return {"loss": self.loss, "graphs": self.graphs, "aux": dict(self.aux)}


def contrastive_loss(
    out, loss_fn: nn.Module, blocked: torch.Tensor | None = None, extra_owners: torch.Tensor | None = None
) -> torch.Tensor:
    """The CLIP loss of a step's output (`CLIPOutput`): hard negatives (more texts than images,
    or blocked pairs) by `hard_negative_clip_loss`, otherwise by `loss_fn` (open_clip's ClipLoss).

    The logits are computed in fp32 with autocast off, on fp32 copies of the
    normalised embeddings: under bf16 a logit of scale 100 moves in steps of 0.5."""
    if len(out.text) > len(out.image) or blocked is not None:
        return hard_negative_clip_loss(out.image, out.text, out.scale, blocked, extra_owners)
    with full_precision(out.image.device):
        return loss_fn(out.image.float(), out.text.float(), out.scale.float())


def full_precision(device: torch.device):
    """Autocast off (for the similarity logits)."""
    return torch.autocast(device.type, enabled=False)


def hard_negative_clip_loss(
    image: torch.Tensor,
    text: torch.Tensor,
    scale: torch.Tensor,
    blocked: torch.Tensor | None = None,
    extra_owners: torch.Tensor | None = None,
) -> torch.Tensor:
    """NegCLIP: each image against its caption, the other captions and every hard negative;
    each caption against the images (hard-negative images included).

    `image` holds P images, `text` their P captions first, then E extra captions
    (extra text e is true of image `extra_owners[e]`), then M hard-negative texts;
    `blocked` [P, P + E + M] marks pairs that must not count as negatives (a
    caption that may also hold for a hard-negative image, an extra caption for its
    own image). An extra caption is scored text-to-image only, its image the label.
    The logits are fp32, with autocast off (see `contrastive_loss`)."""
    count = len(image)
    extra = 0 if extra_owners is None else len(extra_owners)
    labels = torch.arange(count, device=image.device)
    text_labels = labels if extra_owners is None else torch.cat([labels, extra_owners])
    with full_precision(image.device):  # fp32 logits, whatever autocast is on outside
        image, text, scale = image.float(), text.float(), scale.float()
        image_to_text = scale * image @ text.T  # [P, P + E + M]
        text_to_image = scale * text[: count + extra] @ image.T  # [P + E, P]
        if blocked is not None:
            lowest = torch.finfo(image_to_text.dtype).min
            image_to_text = image_to_text.masked_fill(blocked, lowest)
            text_blocked = blocked[:, :count].T  # an extra caption's row blocks nothing
            if extra:
                text_blocked = torch.cat([text_blocked, text_blocked.new_zeros(extra, count)])
            text_to_image = text_to_image.masked_fill(text_blocked, lowest)
        return (F.cross_entropy(image_to_text, labels) + F.cross_entropy(text_to_image, text_labels)) / 2


@dataclass
class Objectives:
    """What a step optimises besides (or instead of) the contrastive loss.

    Args:
        contrastive: the CLIP loss against the captions (off for MIM pretraining).
        tokenprop_weight: lambda of the TokenProp reconstruction loss.
        mim_weight: weight of the masked-token loss; 0 hides nothing.
        mim_ratio: the share of each graph's object tokens hidden.
        centroids: K-means centroids [K, F] whose nearest one is a token's target.
    """

    contrastive: bool = True
    tokenprop_weight: float = 0.0
    mim_weight: float = 0.0
    mim_ratio: float = 0.75
    centroids: torch.Tensor | None = None
    generator: torch.Generator = field(default_factory=lambda: torch.Generator().manual_seed(0))

    def hide(self, batch) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Which object tokens to hide and their cluster targets, or (None, None)."""
        if not self.mim_weight or self.centroids is None or batch["object"].num_nodes == 0:
            return None, None
        hidden = choose_hidden(batch["object"].batch, self.mim_ratio, self.generator)
        centroids = self.centroids.to(batch["object"].x.device)
        return hidden, torch.cdist(batch["object"].x[hidden], centroids).argmin(1)
