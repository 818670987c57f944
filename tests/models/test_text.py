import itertools
import pickle

import pytest
import torch
from open_clip.model import CLIP

from models.text import (
    TextEncoder,
    Tokenizer,
    length_buckets,
    load_text_checkpoint,
    open_clip_text_config,
    text_lengths,
    trim_padding,
)

TEXT_CFG = {"context_length": 32, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}


def test_text_tower_of_a_saved_clip_checkpoint_loads_back_exactly(tmp_path):
    torch.manual_seed(1)
    vision_cfg = {"image_size": 32, "patch_size": 16, "width": 32, "layers": 1, "head_width": 16}
    clip = CLIP(embed_dim=24, vision_cfg=vision_cfg, text_cfg=TEXT_CFG)
    torch.save(
        {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in clip.state_dict().items()}}, tmp_path / "clip.pt"
    )
    encoder = TextEncoder(TEXT_CFG, embed_dim=24)
    load_text_checkpoint(encoder, tmp_path / "clip.pt")
    tokens = encoder.tokenize(["a small red circle left of a blue square", "two shapes"])
    with torch.no_grad():
        full = torch.nn.functional.pad(tokens, (0, TEXT_CFG["context_length"] - tokens.shape[1]))
        assert torch.allclose(encoder(tokens), clip.encode_text(full), atol=1e-6)
    # and a bare text-tower state dict
    torch.save(encoder.tower.state_dict(), tmp_path / "tower.pt")
    other = TextEncoder(TEXT_CFG, embed_dim=24)
    load_text_checkpoint(other, tmp_path / "tower.pt")
    for key, value in encoder.tower.state_dict().items():
        assert torch.equal(value, other.tower.state_dict()[key]), key


def test_a_text_tower_of_another_shape_is_refused(tmp_path):
    torch.save(TextEncoder({**TEXT_CFG, "width": 64}, embed_dim=24).tower.state_dict(), tmp_path / "wide.pt")
    with pytest.raises(ValueError, match="does not fit the configured one"):
        load_text_checkpoint(TextEncoder(TEXT_CFG, embed_dim=24), tmp_path / "wide.pt")
    torch.save({"visual.proj": torch.zeros(2)}, tmp_path / "vision.pt")
    with pytest.raises(ValueError, match="no text tower found"):
        load_text_checkpoint(TextEncoder(TEXT_CFG, embed_dim=24), tmp_path / "vision.pt")


def test_open_clip_configs_by_name():
    assert open_clip_text_config("ViT-B-32")["width"] == 512
    with pytest.raises(ValueError, match="unknown open_clip model 'ViT-Z-99'"):
        open_clip_text_config("ViT-Z-99")


def test_tokens_are_cut_to_the_longest_text_and_the_tokenizer_pickles():
    tokenizer = pickle.loads(pickle.dumps(Tokenizer(32)))
    tokens = tokenizer(["two shapes", "a red circle"])
    # start token, the words, end token: "a red circle" is the longest at 5 positions
    assert tokens.shape == (2, 5)
    assert tokens[0].tolist()[-1] == 0 and tokens[1].tolist()[-1] == 49407 and tokens[0, 3].item() == 49407
    assert torch.equal(tokens, tokenizer.bpe(["two shapes", "a red circle"])[:, :5])
    assert trim_padding(torch.zeros(3, 8, dtype=torch.long)).shape == (3, 1)
    long = tokenizer(["a " * 40])  # truncated to the context, end token kept
    assert long.shape == (1, 32) and long[0, -1].item() == 49407


@pytest.mark.parametrize("pool_type", ["argmax", "last"])
def test_a_cut_text_embeds_as_the_full_length_text(pool_type):
    """A causal tower pooled at the end token gives the same embedding without the padding
    columns; a tower that reads them ('last' pooling) is given them back."""
    torch.manual_seed(0)
    encoder = TextEncoder({**TEXT_CFG, "layers": 2, "pool_type": pool_type}, embed_dim=24).eval()
    assert encoder.trims == (pool_type == "argmax")
    tokens = encoder.tokenize(["a small red circle left of a blue square", "two shapes", "an arrow"])
    assert tokens.shape[1] < TEXT_CFG["context_length"]
    full = torch.nn.functional.pad(tokens, (0, TEXT_CFG["context_length"] - tokens.shape[1]))
    with torch.no_grad():
        cut, whole = encoder(tokens), encoder.tower(full)
    assert torch.allclose(cut, whole, atol=1e-6)
    if pool_type == "argmax":  # and the gradient of the weights is the same
        encoder.zero_grad()
        encoder(tokens).square().sum().backward()
        cut_grads = [p.grad.clone() for p in encoder.parameters()]
        encoder.zero_grad()
        encoder.tower(full).square().sum().backward()
        for a, p in zip(cut_grads, encoder.parameters(), strict=True):
            assert (a - p.grad).norm() <= 1e-5 * p.grad.norm()
    with pytest.raises(ValueError, match="33 text positions"):
        encoder(torch.ones(1, 33, dtype=torch.long))


def fewest_positions(lengths: list[int], buckets: int) -> int:
    """Brute force: every way to cut the sorted lengths into at most `buckets` runs."""
    ordered = sorted(lengths)
    best = None
    for runs in range(1, buckets + 1):
        for cuts in itertools.combinations(range(1, len(ordered)), runs - 1):
            edges = [0, *cuts, len(ordered)]
            cost = sum((b - a) * ordered[b - 1] for a, b in zip(edges, edges[1:], strict=False))
            best = cost if best is None else min(best, cost)
    return best


@pytest.mark.parametrize("buckets", [1, 2, 3, 4])
def test_length_buckets_leave_the_fewest_padding_positions(buckets):
    lengths = torch.tensor([7, 3, 12, 3, 20, 7, 5, 7, 12, 4])
    order, bounds = length_buckets(lengths, buckets)
    assert lengths[order].tolist() == sorted(lengths.tolist())
    assert order.tolist()[:2] == [1, 3]  # stable among equal lengths
    # contiguous runs covering every text, each cut to its own longest
    assert [b[0] for b in bounds] == [0, *[b[1] for b in bounds[:-1]]] and bounds[-1][1] == len(lengths)
    assert all(length == int(lengths[order[stop - 1]]) for start, stop, length in bounds)
    cost = sum((stop - start) * length for start, stop, length in bounds)
    assert len(bounds) <= buckets and cost == fewest_positions(lengths.tolist(), buckets)
    if buckets == 1:
        assert bounds == [(0, 10, 20)]
    if buckets == 3:  # (3, 3, 4, 5, 7, 7, 7) (12, 12) (20): 49 + 24 + 20
        assert cost == 93 and bounds == [(0, 7, 7), (7, 9, 12), (9, 10, 20)]


def test_text_lengths_count_to_the_end_token():
    tokens = Tokenizer(32)(["two shapes", "a red circle", "a " * 40])
    assert text_lengths(tokens).tolist() == [4, 5, 32]
    assert text_lengths(torch.zeros(2, 3, dtype=torch.long)).tolist() == [0, 0]


def test_texts_run_by_length_embed_and_train_as_the_whole_batch():
    """A host batch runs in groups of similar length: the same embeddings, in the texts'
    order, and the same gradients as the padded batch through open_clip's tower."""
    torch.manual_seed(0)
    encoder = TextEncoder({**TEXT_CFG, "layers": 2}, embed_dim=24)
    words = "a small red circle left of a blue square above the green triangle".split()
    texts = [" ".join(words[: 1 + (7 * k) % len(words)]) for k in range(13)] + ["a " * 40]
    tokens = encoder.tokenize(texts)
    assert tokens.shape == (14, 32) and len(length_buckets(text_lengths(tokens))[1]) == 4
    embedded = encoder(tokens)
    embedded.square().sum().backward()
    grads = [p.grad.clone() for p in encoder.parameters()]
    encoder.zero_grad()
    whole = encoder.tower(tokens)
    whole.square().sum().backward()
    assert torch.allclose(embedded, whole, atol=1e-6)
    for a, p in zip(grads, encoder.parameters(), strict=True):
        assert (a - p.grad).norm() <= 1e-5 * p.grad.norm()
    reversed_order = torch.arange(13, -1, -1)
    with torch.no_grad():
        assert torch.allclose(encoder(tokens[reversed_order]), embedded[reversed_order], atol=1e-6)


def test_tokens_off_the_host_are_run_whole(monkeypatch):
    """Running by length reads the lengths: only host tokens take that path (on a device
    it would wait for them). A model and tokens on the meta device stand in for a GPU."""
    encoder = TextEncoder(TEXT_CFG, embed_dim=24)
    tokens = encoder.tokenize(["a small red circle left of a blue square"] * 4 + ["two shapes"] * 6)
    calls = []
    monkeypatch.setattr(TextEncoder, "_by_length", lambda self, t: calls.append(t.device.type))
    encoder(tokens)
    assert calls == ["cpu"]
    embedded = encoder.to("meta")(tokens.to("meta"))
    assert calls == ["cpu"] and embedded.shape == (10, 24) and embedded.device.type == "meta"
