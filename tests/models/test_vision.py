import pytest
import torch
from helpers import train_tiny

from data import SyntheticGraphs
from data.datasets import SyntheticBuilder
from data.loader import GraphLoader
from data.store import GraphStore
from evaluate.retrieval import main as retrieval_main
from models.vision import PixelEncoder


def pixel_graphs(count=4, size=32):
    builder = SyntheticBuilder("val", count, pixels=size)
    return GraphStore.from_graphs([builder.build(k)[0] for k in range(count)])


def test_graphs_carry_square_pixels_when_asked():
    store = pixel_graphs()
    assert store[0]["image"].pixels.shape == (1, 3, 32, 32) and store[0]["image"].pixels.dtype == torch.uint8
    batch = store.collate([0, 2, 3])
    assert batch["image"].pixels.shape == (3, 3, 32, 32)
    assert "pixels" not in SyntheticGraphs("val", 2).store[0]["image"]


def test_vit_small_on_pixels_embeds_a_batch():
    encoder = PixelEncoder("timm:vit_small_patch16_224", embed_dim=24, image_size=32).eval()
    assert encoder.model.embed_dim == 384 and len(encoder.model.blocks) == 12
    out = encoder(pixel_graphs().collate([0, 1]))
    assert out.shape == (2, 24) and torch.isfinite(out).all()


def test_pixel_encoder_errors():
    with pytest.raises(ValueError, match="must be timm:NAME"):
        PixelEncoder("vit_small", 8, 32)
    with pytest.raises(ValueError, match="timm has no model 'vit_nonsense'"):
        PixelEncoder("timm:vit_nonsense", 8, 32)
    encoder = PixelEncoder("timm:resnet10t", 8, 32)
    with pytest.raises(ValueError, match="carry no image.pixels"):
        encoder(next(iter(GraphLoader(SyntheticGraphs("val", 2), 2))))


def test_the_vit_baseline_trains_and_evaluates_in_the_same_loop(tmp_path):
    out = tmp_path / "vit"
    final = train_tiny(tmp_path, out, "--vision", "timm:vit_tiny_patch16_224", "--vision-image-size", "32")
    assert final["epoch"] == 1
    metrics = retrieval_main(["--checkpoint", str(out / "checkpoints" / "latest.pt"), "--val-size", "8"])
    assert 0 <= metrics["t2i_R@1"] <= 1


def test_the_seed_authors_vit_preset_passes_the_flag_check_and_trains(tmp_path):
    # `--vision vit:paper` (the recipes study's "vit paper" row) was refused as "must be timm:NAME"
    out = tmp_path / "vit-paper"
    final = train_tiny(tmp_path, out, "--vision", "vit:paper", "--vision-image-size", "32")
    assert final["epoch"] == 1
    state = torch.load(out / "checkpoints" / "latest.pt", map_location="cpu", weights_only=False)
    widths = {v.shape[-1] for k, v in state["model"].items() if k.endswith("pos_embed")}
    assert widths == {512}  # the authors' width, not timm's ViT-S/16 384
