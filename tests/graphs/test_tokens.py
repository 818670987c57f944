import json

import numpy as np
import pytest
import skimage.data
import torch
from pycocotools import mask as mask_utils
from skimage.transform import resize

from data.images import TokenSource
from data.synthetic import make_scene
from graphs import PREDICATES, build_graph, check_graph
from graphs.featurizers import BackboneFeaturizer, Featurizer, mask_pool
from graphs.schema import OBJECT, RELATION, predicate_id, relation_names
from graphs.tokens import SEGMENTERS, MaskRCNNSource, TokensFileError, read_tokens_file, segment_image


@pytest.fixture(scope="module")
def photo():
    return (resize(skimage.data.astronaut(), (96, 96)) * 255).astype(np.uint8)


@pytest.mark.parametrize("method", ["felzenszwalb", "slic", "quickshift"])
def test_segmenter_masks_are_disjoint_large_enough_and_build(photo, method):
    tokens = segment_image(photo, method, min_area=0.01, max_regions=12)
    masks = tokens.masks
    assert 2 <= len(masks) <= 12 and masks.shape[1:] == (96, 96)
    assert (masks.sum(axis=0) <= 1).all()  # a pixel belongs to one region at most
    assert masks.sum(axis=(1, 2)).min() >= 0.01 * 96 * 96
    assert list(masks.sum(axis=(1, 2))) == sorted(masks.sum(axis=(1, 2)), reverse=True)
    check_graph(build_graph(photo, masks))


@pytest.mark.parametrize("world", ["v3", "v4"])
def test_quickshift_finds_every_object_of_synthetic_scenes_whole(world):
    for index in range(4):
        scene = make_scene(0, "test", index, 96, world)
        regions = segment_image(scene.image, "quickshift").masks
        for mask in scene.masks:  # IoU counted pixel by pixel, each object against its best region
            best = max(np.logical_and(mask, r).sum() / np.logical_or(mask, r).sum() for r in regions)
            assert best > 0.9, (world, index)


def test_quickshift_merges_small_regions_and_keeps_the_largest():
    image = make_scene(0, "test", 4, 96, "v4").image  # six objects: about 17 regions of at least 0.5 %
    everything = segment_image(image, "quickshift").masks
    few = segment_image(image, "quickshift", min_area=0.03, max_regions=4).masks
    assert len(everything) > 4 and len(few) == 4 and (few.sum(axis=0) <= 1).all()
    assert few.sum(axis=(1, 2)).min() >= 0.03 * 96 * 96
    assert list(few.sum(axis=(1, 2))) == sorted(few.sum(axis=(1, 2)), reverse=True)


def test_unknown_segmenters_and_settings_are_refused_naming_the_valid_ones(photo):
    with pytest.raises(ValueError, match="unknown segmenter 'watershed'; valid: felzenszwalb, slic, quickshift"):
        segment_image(photo, "watershed")
    with pytest.raises(ValueError, match="slic has no setting scale; its settings: n_segments, compactness"):
        segment_image(photo, "slic", scale=100.0)
    with pytest.raises(ValueError, match="unknown token source 'watershed'; valid: felzenszwalb, slic, quickshift"):
        TokenSource("watershed")


def test_a_segmenter_token_source_keys_the_cache_by_its_settings(photo):
    keys = {kind: TokenSource(kind).fingerprint() for kind in SEGMENTERS}
    assert keys["quickshift"]["segmenter"] == {
        "kernel_size": 5,
        "max_dist": 10.0,
        "ratio": 0.5,
        "min_area": 0.005,
        "max_regions": 32,
    }
    assert len({json.dumps(key, sort_keys=True) for key in keys.values()}) == 3
    tokens = TokenSource("quickshift")("photo.png", photo)
    assert np.array_equal(tokens.masks, segment_image(photo, "quickshift", kernel_size=5, max_dist=10, ratio=0.5).masks)


def rle(mask):
    encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": encoded["size"], "counts": encoded["counts"].decode()}


def square(x0, y0, side, size=32):
    mask = np.zeros((size, size), dtype=bool)
    mask[y0 : y0 + side, x0 : x0 + side] = True
    return mask


def write_lines(path, entries):
    path.write_text("\n".join(e if isinstance(e, str) else json.dumps(e) for e in entries) + "\n")


def good_entry(name="a.png"):
    return {
        "file_name": name,
        "height": 32,
        "width": 32,
        "masks": [rle(square(2, 2, 8)), rle(square(20, 4, 8))],
        "labels": [3, 4],
        "scores": [0.9, 0.8],
        "features": [[1.0, 2.0], [3.0, 4.0]],
        "triplets": [[0, "Holding", 1], [1, "left of", 0], [0, "Grazing on", 1], [1, 2, 0]],
    }


def test_tokens_file_reads_masks_labels_features_and_triplets(tmp_path):
    path = tmp_path / "tokens.jsonl"
    write_lines(path, [good_entry("a.png"), "", good_entry("b.png")])
    tokens = read_tokens_file(path)
    assert list(tokens) == ["a.png", "b.png"]
    a = tokens["a.png"]
    assert len(a.masks) == 2 and (a.masks.height, a.masks.width) == (32, 32)
    assert np.array_equal(a.masks.dense()[0], square(2, 2, 8))
    assert a.labels == [3, 4] and a.scores == [0.9, 0.8] and a.features.shape == (2, 2)
    # names are kept (normalised), inside the vocabulary or not; ids stay ids
    assert a.triplets == [(0, "holding", 1), (1, "left of", 0), (0, "grazing on", 1), (1, 2, 0)]
    graph = build_graph(np.zeros((32, 32, 3), np.uint8), a.masks, a.labels, a.triplets, object_x=a.features)
    assert graph[OBJECT].x.tolist() == [[1.0, 2.0], [3.0, 4.0]] and graph[RELATION].num_nodes == 4
    assert relation_names(graph) == ["holding", "left of", "grazing on", PREDICATES[2]]
    assert graph[RELATION].predicate[2] == predicate_id("other") and graph.open_predicates == ["grazing on"]


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda e: e["triplets"].append([0, "on", 5]), "triplet 4 object 5 points at a missing mask"),
        (lambda e: e["triplets"].append([0, " ", 1]), "triplet 4 predicate ' ' is neither a name nor an id"),
        (lambda e: e.pop("height"), "missing key 'height'"),
        (lambda e: e["masks"].append({"size": [32, 32], "counts": "@@@"}), "mask 2"),
        (lambda e: e["masks"].append(rle(np.zeros((32, 32), bool))), "mask 2 is empty"),
        (lambda e: e["labels"].pop(), "1 labels for 2 masks"),
        (lambda e: e["masks"].__setitem__(0, rle(np.ones((16, 16), bool))), "mask 0 is 16x16"),
    ],
)
def test_tokens_file_errors_name_the_line(tmp_path, change, message):
    bad = good_entry("b.png")
    change(bad)
    path = tmp_path / "tokens.jsonl"
    write_lines(path, [good_entry(), bad])
    with pytest.raises(TokensFileError, match=f"tokens.jsonl:2: {message}"):
        read_tokens_file(path)


def test_tokens_file_rejects_broken_json_and_duplicates(tmp_path):
    path = tmp_path / "t.jsonl"
    write_lines(path, [good_entry(), "{not json"])
    with pytest.raises(TokensFileError, match="t.jsonl:2: not valid JSON"):
        read_tokens_file(path)
    write_lines(path, [good_entry(), good_entry()])
    with pytest.raises(TokensFileError, match="t.jsonl:2: a.png already appeared"):
        read_tokens_file(path)
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        read_tokens_file(tmp_path / "missing.jsonl")


def test_maskrcnn_refuses_without_local_weights(tmp_path):
    with pytest.raises(ValueError, match="needs a local weights file"):
        MaskRCNNSource(None)
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        MaskRCNNSource(tmp_path / "nope.pth")


def test_mask_pool_matches_a_manual_average():
    feature_map = torch.arange(2 * 4 * 4, dtype=torch.float).view(2, 4, 4)
    masks = np.zeros((1, 8, 8), dtype=bool)
    masks[0, :4, :4] = True  # the top-left 2x2 cells
    expected = feature_map[:, :2, :2].mean(dim=(1, 2))
    assert torch.allclose(mask_pool(feature_map, masks)[0], expected)


def test_backbone_featurizer_warns_without_weights_and_pools(photo):
    with pytest.warns(UserWarning, match="RANDOM"):
        featurizer = BackboneFeaturizer("timm:resnet18", image_size=64)
    masks = segment_image(photo, "slic").masks
    objects, image = featurizer(photo, masks)
    assert objects.shape == (len(masks), 512) and image.shape == (1, 512)
    assert torch.isfinite(objects).all()


def test_featurizer_choices_are_checked():
    with pytest.raises(ValueError, match="unknown featurizer 'clip'"):
        Featurizer("clip")
    with pytest.raises(ValueError, match="needs --backbone"):
        Featurizer("backbone")
    with pytest.raises(ValueError, match="needs per-mask features"):
        Featurizer("precomputed")(np.zeros((4, 4, 3), np.uint8), np.zeros((0, 4, 4), bool))


@pytest.mark.slow
def test_maskrcnn_loads_a_local_weights_file_and_segments(tmp_path, photo):
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    torch.save(maskrcnn_resnet50_fpn(weights=None, weights_backbone=None).state_dict(), tmp_path / "maskrcnn.pth")
    source = MaskRCNNSource(tmp_path / "maskrcnn.pth", score_threshold=0.0, max_objects=5)
    tokens = source(photo)
    assert tokens.masks.ndim == 3 and tokens.masks.shape[1:] == photo.shape[:2] and len(tokens.masks) <= 5
    assert len(tokens.labels) == len(tokens.scores) == len(tokens.masks)
    assert all(mask.any() for mask in tokens.masks)
