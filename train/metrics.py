"""Image-text retrieval metrics: R@K, mean and median rank, in both directions.

The trainer scores its validation set with them after every epoch, and
`python -m evaluate.retrieval` scores a checkpoint with them.

For datasets with several captions per image (the COCO 5k protocol): a caption
retrieves correctly when its own image is in the top K; an image retrieves
correctly when any of its captions is in the top K.

Beside it, the seed paper's protocol (COCO val2017: 5,000 images, one caption
per image drawn at random): the same metrics on one caption per image drawn
with a fixed seed (default 0), named with the suffix `_1cap`
(`t2i_R@1_1cap` ... `i2t_median_rank_1cap`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from data.datasets import GraphDataset
from data.loader import GraphLoader

KS = (1, 5, 10)
ONE_CAPTION_SEED = 0
ONE_CAPTION_SUFFIX = "_1cap"


def ranks_of_truth(similarity: Tensor, truth: Tensor) -> Tensor:
    """0-based rank of the best true candidate in each row.

    similarity [Q, C]; truth [Q, C] bool. Ties with a false candidate count
    against the query (the false candidate is ranked first).
    """
    best_true = similarity.masked_fill(~truth, float("-inf")).max(dim=1, keepdim=True).values
    return ((similarity >= best_true) & ~truth).sum(dim=1)


def chunked_ranks(image_emb: Tensor, text_emb: Tensor, text_image: Tensor, chunk: int = 1024) -> tuple[Tensor, Tensor]:
    """(t2i ranks [T], i2t ranks [I]): `ranks_of_truth` of the [T, I] similarity and of its transpose,
    computed over blocks of `chunk` captions so that memory stays at chunk x I, not T x I (5k x 25k
    at COCO's 5k test). Every block is the same product `text_emb[a:b] @ image_emb.T`, made twice
    (once to find each image's best caption score, once to count what ties or beats it), so both
    directions rank the same numbers the whole matrix holds, ties included."""
    text, image = text_emb.float(), image_emb.float().T
    n_text, n_image = len(text_image), image.shape[1]
    t2i = torch.empty(n_text, dtype=torch.long)
    best_of_image = torch.full((n_image,), float("-inf"))
    blocks = [(a, min(a + chunk, n_text)) for a in range(0, n_text, chunk)]
    for a, b in blocks:
        similarity = text[a:b] @ image  # [c, I]
        owners = text_image[a:b]
        truth = torch.zeros_like(similarity, dtype=torch.bool)
        truth[torch.arange(b - a), owners] = True
        t2i[a:b] = ranks_of_truth(similarity, truth)
        best_of_image.scatter_reduce_(0, owners, similarity[torch.arange(b - a), owners], "amax")
    i2t = torch.zeros(n_image, dtype=torch.long)
    for a, b in blocks:
        similarity = text[a:b] @ image
        beaten = similarity >= best_of_image[None, :]
        beaten[torch.arange(b - a), text_image[a:b]] = False  # a true caption never counts against its image
        i2t += beaten.sum(dim=0)
    return t2i, i2t


def retrieval_metrics(
    image_emb: Tensor, text_emb: Tensor, text_image: Tensor, ks: Sequence[int] = KS, chunk: int = 1024
) -> dict[str, float]:
    """Metrics from normalised embeddings; `text_image[t]` is the image index of caption t.
    Ranks are computed over blocks of `chunk` captions (`chunked_ranks`): memory is chunk x I."""
    metrics = {}
    for direction, ranks in zip(("t2i", "i2t"), chunked_ranks(image_emb, text_emb, text_image, chunk), strict=True):
        for k in ks:
            metrics[f"{direction}_R@{k}"] = (ranks < k).float().mean().item()
        metrics[f"{direction}_mean_rank"] = (ranks + 1).float().mean().item()
        metrics[f"{direction}_median_rank"] = (ranks + 1).float().median().item()
    return metrics


def one_caption_per_image(text_image: Tensor, seed: int = ONE_CAPTION_SEED) -> Tensor:
    """Index of one caption for every image that has captions, images in order, each drawn
    uniformly among the image's captions by a generator seeded with `seed`."""
    captions_of: dict[int, list[int]] = {}
    for caption, image in enumerate(text_image.tolist()):
        captions_of.setdefault(image, []).append(caption)
    rng = np.random.default_rng(seed)
    return torch.tensor([captions_of[i][rng.integers(len(captions_of[i]))] for i in sorted(captions_of)])


def one_caption_metrics(
    image_emb: Tensor, text_emb: Tensor, text_image: Tensor, seed: int = ONE_CAPTION_SEED, ks: Sequence[int] = KS
) -> dict[str, float]:
    """The seed paper's protocol: retrieval between the images and one caption each (a square
    problem), keys suffixed `_1cap`."""
    chosen = one_caption_per_image(text_image, seed)
    metrics = retrieval_metrics(image_emb[text_image[chosen]], text_emb[chosen], torch.arange(len(chosen)), ks)
    return {f"{key}{ONE_CAPTION_SUFFIX}": value for key, value in metrics.items()}


def format_one_caption_table(metrics: dict[str, float], ks: Sequence[int] = KS) -> str:
    """format_table of the `_1cap` metrics."""
    plain = {k.removesuffix(ONE_CAPTION_SUFFIX): v for k, v in metrics.items() if k.endswith(ONE_CAPTION_SUFFIX)}
    return format_table(plain, ks)


@torch.no_grad()
def embed_dataset(model, dataset: GraphDataset, batch_size: int = 256, device: str | torch.device = "cpu"):
    """Embed every graph and every caption of a dataset.

    Returns (image_emb [I, D], text_emb [T, D], text_image [T]).
    """
    model.eval()
    image_embs, text_embs, text_image = [], [], []
    offset = 0
    for batch in GraphLoader(dataset, batch_size):
        batch = batch.to(device)
        image_embs.append(model.encode_graph(batch).float().cpu())
        captions = [caption for graph_captions in batch.captions for caption in graph_captions]
        owners = [offset + k for k, graph_captions in enumerate(batch.captions) for _ in graph_captions]
        tokens = model.text_encoder.tokenize(captions).to(device)
        text_embs.append(model.encode_text(tokens).float().cpu())
        text_image.extend(owners)
        offset += batch.num_graphs
    return torch.cat(image_embs), torch.cat(text_embs), torch.tensor(text_image)


def format_table(metrics: dict[str, float], ks: Sequence[int] = KS) -> str:
    """A small two-row table of R@K (in %) and mean/median rank."""
    header = "        " + "".join(f"R@{k:<6}" for k in ks) + "mean rank  median rank"
    rows = [header]
    for direction in ("t2i", "i2t"):
        cells = "".join(f"{100 * metrics[f'{direction}_R@{k}']:<8.1f}" for k in ks)
        rows.append(
            f"{direction:<8}{cells}{metrics[f'{direction}_mean_rank']:<11.1f}{metrics[f'{direction}_median_rank']:.0f}"
        )
    return "\n".join(rows)
