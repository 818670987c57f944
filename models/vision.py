"""An image model on pixels as the image side (`--vision timm:vit_small_patch16_224`).

The paper's baseline: a ViT trained on pixels in the same contrastive loop.
`--vision vit:paper` is the seed authors' own "ViT-S/16": width 512, 8
layers, 8 heads, MLP 2048, patches of 16 (timm's ViT-S/16 is 384 wide, 12
layers, 6 heads).
Its input is each graph's `image.pixels` ([1, 3, S, S] uint8, stored by the
dataset when a run asks for pixels), so a comparison with the graph encoder
differs only in what the image becomes.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.data import HeteroData

# `--vision vit:NAME`: timm ViTs of other sizes, as (timm base model, its overrides).
VIT_PRESETS: dict[str, tuple[str, dict]] = {
    "paper": ("vit_small_patch16_224", {"embed_dim": 512, "depth": 8, "num_heads": 8, "mlp_ratio": 4.0}),
}

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class PixelEncoder(nn.Module):
    """A timm image model (random init) projecting to the shared embedding.

    Args:
        spec: ``timm:NAME``, e.g. ``timm:vit_small_patch16_224``, or ``vit:paper``
            (the seed authors' baseline size, see `VIT_PRESETS`).
        embed_dim: the shared embedding size (the model's head outputs it).
        image_size: the side of the stored pixels; ViTs are built for it.
        overrides: further timm keyword arguments (``depth=1`` in tests).
    """

    def __init__(self, spec: str, embed_dim: int, image_size: int, **overrides) -> None:
        super().__init__()
        import timm

        library, _, name = spec.partition(":")
        if library == "vit":
            if name not in VIT_PRESETS:
                raise ValueError(f"--vision {spec!r}: no ViT preset {name!r}; presets: {', '.join(VIT_PRESETS)}")
            name, preset = VIT_PRESETS[name]
            overrides = {**preset, **overrides}
        elif library != "timm" or not name:
            raise ValueError(f"--vision {spec!r} must be timm:NAME (e.g. timm:vit_small_patch16_224) or vit:paper")
        if not timm.is_model(name):
            raise ValueError(f"timm has no model {name!r}")
        try:
            self.model = timm.create_model(
                name, pretrained=False, num_classes=embed_dim, img_size=image_size, **overrides
            )
        except TypeError:  # models without an img_size argument (CNNs)
            self.model = timm.create_model(name, pretrained=False, num_classes=embed_dim, **overrides)
        self.image_size = image_size
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, batch: HeteroData) -> Tensor:
        if "pixels" not in batch["image"]:
            raise ValueError("the graphs carry no image.pixels: build the dataset with pixels (--vision does)")
        pixels = batch["image"].pixels.float() / 255.0  # [B, 3, S, S]
        return self.model((pixels - self.mean) / self.std)
