"""One epoch of contrastive training, and the optimiser and schedule it uses."""

from __future__ import annotations

import math
import random
import time
from contextlib import nullcontext

import torch
from open_clip.loss import ClipLoss
from torch import nn
from tqdm.auto import tqdm

from data.loader import GraphLoader


def make_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with no weight decay on norms, biases, embeddings of types and the logit scale."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if param.ndim < 2 or "logit_scale" in name or "type_embedding" in name or "edge_bias" in name:
            no_decay.append(param)
        else:
            decay.append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98), eps=1e-6)


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


def train_epoch(
    model: nn.Module,
    loader: GraphLoader,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    device: torch.device,
    caption_rng: random.Random,
    precision: str = "fp32",
    grad_clip: float | None = 1.0,
    progress: bool = True,
    description: str = "train",
) -> dict[str, float]:
    """Train one pass over `loader`; one random caption of each graph per step.

    Returns the mean loss, samples/s and the share of time spent waiting for data.
    """
    model.train()
    loss_fn = ClipLoss()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
    total_loss, samples, data_wait = 0.0, 0, 0.0
    start = last = time.perf_counter()
    bar = tqdm(loader, desc=description, disable=not progress, leave=False, dynamic_ncols=True)
    for batch in bar:
        captions = [caption_rng.choice(graph_captions) for graph_captions in batch.captions]
        tokens = model.text_encoder.tokenize(captions)
        batch, tokens = batch.to(device), tokens.to(device)
        data_wait += time.perf_counter() - last
        with autocast:
            image_features, text_features, logit_scale = model(batch, tokens)
            loss = loss_fn(image_features, text_features, logit_scale)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        scheduler.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        total_loss += loss.item() * batch.num_graphs
        samples += batch.num_graphs
        last = time.perf_counter()
        bar.set_postfix(loss=f"{loss.item():.3f}", samples_s=f"{samples / (last - start):.0f}")
    elapsed = time.perf_counter() - start
    return {
        "train_loss": total_loss / max(samples, 1),
        "samples_per_s": samples / elapsed,
        "data_wait": data_wait / elapsed,
    }
