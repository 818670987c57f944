"""Every dataset honours every featurizer, or refuses it before building anything."""

import numpy as np
import pytest
import torch
from helpers import write_coco

from data.coco import CocoBuilder
from data.datasets import SyntheticBuilder
from data.images import ImageFolderBuilder, TokenSource
from data.synthetic import make_scene
from graphs.featurizers import BackboneFeaturizer, Featurizer
from graphs.schema import IMAGE, OBJECT

BACKBONE = "timm:resnet18"


@pytest.fixture(scope="module")
def backbone_weights(tmp_path_factory):
    """Random weights of a small timm model, in a file, so that two featurizers share them."""
    import timm

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("backbone") / "resnet18.pt"
    torch.save(timm.create_model("resnet18", pretrained=False, num_classes=0).state_dict(), path)
    return path


def coco_masks(root, image_id: int, height: int, width: int) -> np.ndarray:
    """The image's usable instance masks, largest first, rasterised by pycocotools itself."""
    import json

    from pycocotools import mask as mask_utils

    instances = json.loads((root / "annotations" / "instances_val2017.json").read_text())
    usable = [a for a in instances["annotations"] if a["image_id"] == image_id and not a["iscrowd"] and a["area"] > 0]
    masks = []
    for annotation in sorted(usable, key=lambda a: -a["area"]):
        segmentation = annotation["segmentation"]
        if isinstance(segmentation, list):
            segmentation = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
        masks.append(mask_utils.decode(segmentation).astype(bool))
    return np.stack(masks)


def test_coco_object_tokens_carry_the_backbone_features(tmp_path, backbone_weights):
    from PIL import Image

    names = write_coco(tmp_path)
    featurizer = Featurizer("backbone", BACKBONE, backbone_weights)
    builder = CocoBuilder(tmp_path, "val2017", featurizer=featurizer)
    graph, _ = builder.build(0)
    image = np.asarray(Image.open(tmp_path / "val2017" / names[1]).convert("RGB"))
    masks = coco_masks(tmp_path, 1, *image.shape[:2])
    objects, whole = BackboneFeaturizer(BACKBONE, backbone_weights)(image, masks)
    assert graph[OBJECT].x.shape == (2, 512)
    torch.testing.assert_close(graph[OBJECT].x, objects)
    torch.testing.assert_close(graph[IMAGE].x, whole)
    pixels, _ = CocoBuilder(tmp_path, "val2017").build(0)
    assert pixels[OBJECT].x.shape[1] != 512  # the default is still the pixel crops
    assert builder.fingerprint()["featurizer"]["kind"] == "backbone"
    assert builder.fingerprint() != CocoBuilder(tmp_path, "val2017").fingerprint()


def test_synthetic_object_tokens_carry_the_backbone_features(backbone_weights):
    builder = SyntheticBuilder("train", 2, featurizer=Featurizer("backbone", BACKBONE, backbone_weights))
    graph, _ = builder.build(1)
    scene = make_scene(0, "train", 1)
    objects, whole = BackboneFeaturizer(BACKBONE, backbone_weights)(scene.image, scene.masks)
    torch.testing.assert_close(graph[OBJECT].x, objects)
    torch.testing.assert_close(graph[IMAGE].x, whole)


def test_the_training_set_of_a_coco_run_holds_backbone_features(tmp_path, backbone_weights):
    from data.sources import DataOptions, open_dataset

    write_coco(tmp_path / "coco")
    options = DataOptions(
        dataset="coco",
        coco_root=str(tmp_path / "coco"),
        split="val2017",
        featurizer="backbone",
        backbone=BACKBONE,
        backbone_weights=str(backbone_weights),
        cache_dir=str(tmp_path / "cache"),
    )
    graphs = open_dataset(options, "train", progress=False)
    assert graphs[0][OBJECT].x.shape == (2, 512)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda root: SyntheticBuilder("train", 2, featurizer=Featurizer("precomputed")), "synthetic world has none"),
        (lambda root: CocoBuilder(root, "val2017", featurizer=Featurizer("precomputed")), "COCO has none"),
        (
            lambda root: ImageFolderBuilder(root / "val2017", root / "c.jsonl", featurizer=Featurizer("precomputed")),
            "token source felzenszwalb has none",
        ),
        (
            lambda root: SyntheticBuilder("train", 2, graph_type="patch", featurizer=Featurizer("backbone", BACKBONE)),
            "patch graphs have none",
        ),
        (
            lambda root: CocoBuilder(root, "val2017", graph_type="patch", featurizer=Featurizer("backbone", BACKBONE)),
            "patch graphs have none",
        ),
        (
            lambda root: ImageFolderBuilder(
                root / "val2017", root / "c.jsonl", TokenSource("slic"), Featurizer("backbone", BACKBONE), 20, "patch"
            ),
            "patch graphs have none",
        ),
    ],
)
def test_featurizers_a_dataset_cannot_honour_are_refused(tmp_path, make, message):
    write_coco(tmp_path)
    (tmp_path / "c.jsonl").write_text('{"file_name": "000000000001.jpg", "captions": ["a"]}\n')
    with pytest.raises(ValueError, match=message):
        make(tmp_path)
