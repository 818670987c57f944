"""The contrastive logits are fp32 under bf16 autocast (a scale of 100 times bf16 similarities
moves in steps of 0.5)."""

import math

import pytest
import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss

from models.clip import CLIPOutput
from train.loop import contrastive_loss, hard_negative_clip_loss


def embeddings(images: int, texts: int):
    generator = torch.Generator().manual_seed(0)
    image = F.normalize(torch.randn(images, 64, generator=generator), dim=-1)
    text = F.normalize(image.repeat(2, 1)[:texts] + 0.3 * torch.randn(texts, 64, generator=generator), dim=-1)
    return image, text, torch.tensor(math.log(100.0)).exp()


def reference(image, text, scale, blocked=None):
    """Both directions' cross-entropy, in fp64 from the same embeddings."""
    image, text, scale = image.double(), text.double(), scale.double()
    count = len(image)
    logits = scale * image @ text.T
    back = scale * text[:count] @ image.T
    if blocked is not None:
        logits = logits.masked_fill(blocked, -torch.inf)
        back = back.masked_fill(blocked[:, :count].T, -torch.inf)
    labels = torch.arange(count)
    return ((F.cross_entropy(logits, labels) + F.cross_entropy(back, labels)) / 2).item()


@pytest.mark.parametrize("negatives", [0, 6])
def test_the_loss_under_bf16_autocast_is_the_fp32_loss(negatives):
    image, text, scale = embeddings(16, 16 + negatives)
    blocked = None
    if negatives:
        blocked = torch.zeros(16, 16 + negatives, dtype=torch.bool)
        blocked[3, 5] = True
    exact = reference(image, text, scale, blocked)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = contrastive_loss(CLIPOutput(image, text, scale, {}), ClipLoss(), blocked)
        naive = ClipLoss()(image, text, scale) if not negatives else None
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(exact, rel=1e-6)
    if naive is not None:  # the logits left to autocast (bf16): off by far more than the tolerance
        assert abs(naive.item() - exact) > 1e-4 * exact


def test_hard_negative_loss_takes_bf16_embeddings_to_fp32():
    image, text, scale = embeddings(8, 12)
    exact = reference(image.bfloat16(), text.bfloat16(), scale)  # the embeddings a bf16 model gives
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = hard_negative_clip_loss(image.bfloat16(), text.bfloat16(), scale)
        naive_logits = scale * image.bfloat16() @ text.bfloat16().T
    # fp32 logits of about 100 round at ~1e-5; rel 1e-6 held on one CPU, not on an AMD EPYC (1.05e-6 off)
    assert loss.dtype == torch.float32 and loss.item() == pytest.approx(exact, rel=1e-5)
    assert naive_logits.dtype == torch.bfloat16
    assert (naive_logits.float() - scale * image.bfloat16().float() @ text.bfloat16().float().T).abs().max() > 0.05
