"""Image-text retrieval: R@K, mean and median rank, in both directions.

For datasets with several captions per image (the COCO 5k protocol): a caption
retrieves correctly when its own image is in the top K; an image retrieves
correctly when any of its captions is in the top K.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from data.datasets import GraphDataset
from data.loader import GraphLoader

KS = (1, 5, 10)


def ranks_of_truth(similarity: Tensor, truth: Tensor) -> Tensor:
    """0-based rank of the best true candidate in each row.

    similarity [Q, C]; truth [Q, C] bool. Ties with a false candidate count
    against the query (the false candidate is ranked first).
    """
    best_true = similarity.masked_fill(~truth, float("-inf")).max(dim=1, keepdim=True).values
    return ((similarity >= best_true) & ~truth).sum(dim=1)


def retrieval_metrics(
    image_emb: Tensor, text_emb: Tensor, text_image: Tensor, ks: Sequence[int] = KS
) -> dict[str, float]:
    """Metrics from normalised embeddings; `text_image[t]` is the image index of caption t."""
    similarity = text_emb.float() @ image_emb.float().T  # [T, I]
    truth = torch.zeros_like(similarity, dtype=torch.bool)
    truth[torch.arange(len(text_image)), text_image] = True
    metrics = {}
    for direction, sim, hit in (("t2i", similarity, truth), ("i2t", similarity.T, truth.T)):
        ranks = ranks_of_truth(sim, hit)
        for k in ks:
            metrics[f"{direction}_R@{k}"] = (ranks < k).float().mean().item()
        metrics[f"{direction}_mean_rank"] = (ranks + 1).float().mean().item()
        metrics[f"{direction}_median_rank"] = (ranks + 1).float().median().item()
    return metrics


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
