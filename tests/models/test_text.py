import pickle

import pytest
import torch
from open_clip.model import CLIP

from models.text import TextEncoder, Tokenizer, load_text_checkpoint, open_clip_text_config, trim_padding

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
