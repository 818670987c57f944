import pytest
import torch
import torch.nn.functional as F

from train.metrics import (
    chunked_ranks,
    format_one_caption_table,
    format_table,
    one_caption_metrics,
    one_caption_per_image,
    ranks_of_truth,
    retrieval_metrics,
)


def brute_force(image_emb, text_emb, text_image, k):
    sim = text_emb @ image_emb.T
    t2i = sum(int(text_image[t] in sim[t].topk(k).indices.tolist()) for t in range(len(text_emb))) / len(text_emb)
    hits = 0
    for i in range(len(image_emb)):
        top = sim[:, i].topk(k).indices.tolist()
        hits += any(text_image[t] == i for t in top)
    return t2i, hits / len(image_emb)


def test_metrics_match_a_brute_force_count():
    torch.manual_seed(0)
    image_emb = F.normalize(torch.randn(20, 8), dim=1)
    text_image = torch.arange(20).repeat_interleave(3)
    text_emb = F.normalize(image_emb[text_image] + 0.9 * torch.randn(60, 8), dim=1)
    metrics = retrieval_metrics(image_emb, text_emb, text_image)
    for k in (1, 5, 10):
        t2i, i2t = brute_force(image_emb, text_emb, text_image, k)
        assert abs(metrics[f"t2i_R@{k}"] - t2i) < 1e-6
        assert abs(metrics[f"i2t_R@{k}"] - i2t) < 1e-6
    assert 0 < metrics["t2i_R@1"] < 1


def test_perfect_embeddings_rank_first():
    image_emb = torch.eye(4)
    text_image = torch.tensor([0, 0, 1, 2, 3])
    metrics = retrieval_metrics(image_emb, image_emb[text_image], text_image)
    assert metrics["t2i_R@1"] == 1.0 and metrics["i2t_R@1"] == 1.0
    assert metrics["t2i_mean_rank"] == 1.0 and metrics["i2t_median_rank"] == 1.0
    assert "R@1" in format_table(metrics)


def test_ties_count_against_the_query():
    similarity = torch.tensor([[0.5, 0.5, 0.1]])
    assert ranks_of_truth(similarity, torch.tensor([[True, False, False]])).item() == 1


def test_one_caption_per_image_is_drawn_once_per_image_with_a_fixed_seed():
    text_image = torch.tensor([0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3])
    chosen = one_caption_per_image(text_image, seed=0)
    assert text_image[chosen].tolist() == [0, 1, 2, 3]
    assert torch.equal(chosen, one_caption_per_image(text_image, seed=0))
    draws = {tuple(one_caption_per_image(text_image, seed=s).tolist()) for s in range(10)}
    assert len(draws) > 1 and all(d[3] == 15 for d in draws)


def test_one_caption_metrics_are_retrieval_between_the_images_and_the_drawn_captions():
    torch.manual_seed(1)
    image_emb = F.normalize(torch.randn(12, 8), dim=1)
    text_image = torch.arange(12).repeat_interleave(5)
    text_emb = F.normalize(image_emb[text_image] + 1.2 * torch.randn(60, 8), dim=1)
    metrics = one_caption_metrics(image_emb, text_emb, text_image, seed=4)
    chosen = one_caption_per_image(text_image, seed=4)
    square = text_emb[chosen] @ image_emb.T  # [12 captions, 12 images], caption k of image k
    for k in (1, 5):
        t2i = sum(int(t in square[t].topk(k).indices.tolist()) for t in range(12)) / 12
        i2t = sum(int(i in square[:, i].topk(k).indices.tolist()) for i in range(12)) / 12
        assert metrics[f"t2i_R@{k}_1cap"] == pytest.approx(t2i) and metrics[f"i2t_R@{k}_1cap"] == pytest.approx(i2t)
    assert set(metrics) == {f"{key}_1cap" for key in retrieval_metrics(image_emb, text_emb, text_image)}
    assert "R@1" in format_one_caption_table(metrics)


def whole_matrix_ranks(image_emb, text_emb, text_image):
    """The ranks from the whole [T, I] matrix and its bool truth (what retrieval_metrics built before)."""
    similarity = text_emb.float() @ image_emb.float().T
    truth = torch.zeros_like(similarity, dtype=torch.bool)
    truth[torch.arange(len(text_image)), text_image] = True
    return ranks_of_truth(similarity, truth), ranks_of_truth(similarity.T, truth.T)


@pytest.mark.parametrize("chunk", [1, 4, 7, 37, 1000])
def test_chunked_ranks_equal_the_whole_matrix_ranks_ties_included(chunk):
    generator = torch.Generator().manual_seed(3)
    # entries in {-1, 0, 1}: every dot product is exact, and equal scores (ties) are everywhere
    image = torch.randint(-1, 2, (11, 3), generator=generator).float()
    text = torch.randint(-1, 2, (37, 3), generator=generator).float()
    text_image = torch.randint(0, 9, (37,), generator=generator)  # images 9 and 10 have no caption
    t2i, i2t = chunked_ranks(image, text, text_image, chunk)
    whole_t2i, whole_i2t = whole_matrix_ranks(image, text, text_image)
    assert torch.equal(t2i, whole_t2i) and torch.equal(i2t, whole_i2t)
    assert (i2t[9:] == 37).all()  # an image without captions ranks below every caption


def test_metrics_do_not_depend_on_the_chunk():
    generator = torch.Generator().manual_seed(0)
    image = F.normalize(torch.randn(20, 8, generator=generator), dim=1)
    text = F.normalize(torch.randn(100, 8, generator=generator), dim=1)
    text_image = torch.arange(100) % 20
    assert retrieval_metrics(image, text, text_image, chunk=3) == retrieval_metrics(image, text, text_image)
