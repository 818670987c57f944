import pytest
import torch
from open_clip.model import CLIP

from models.text import TextEncoder, load_text_checkpoint, open_clip_text_config

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
        assert torch.allclose(encoder(tokens), clip.encode_text(tokens), atol=1e-6)
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
