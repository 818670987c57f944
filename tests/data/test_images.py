import json

import numpy as np
import pytest
import skimage.data
from PIL import Image
from skimage.transform import resize

from data.cache import BadItem
from data.images import ImageFolderBuilder, TokenSource, read_captions_file
from data.sources import DataOptions, in_validation, open_dataset
from graphs import check_graph


@pytest.fixture
def folder(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for name, photo in (
        ("astronaut.png", skimage.data.astronaut()),
        ("cat.jpg", skimage.data.chelsea()),
        ("coffee.png", skimage.data.coffee()),
    ):
        Image.fromarray((resize(photo, (64, 80)) * 255).astype(np.uint8)).save(images / name)
    captions = tmp_path / "captions.jsonl"
    captions.write_text(
        "\n".join(
            json.dumps({"file_name": n, "captions": [f"a photo of {n}", "a photo"]})
            for n in ("astronaut.png", "cat.jpg", "coffee.png")
        )
        + "\n"
    )
    return images, captions


def test_folder_of_photos_becomes_graphs(folder):
    builder = ImageFolderBuilder(*folder, TokenSource("slic"))
    assert len(builder) == 3
    for index in range(3):
        graph, name = builder.build(index)
        check_graph(graph)
        assert graph["object"].num_nodes >= 2 and graph.captions[0] == f"a photo of {name}"


def test_corrupt_photo_is_a_bad_item_and_skip_counts_it(folder, tmp_path):
    images, captions = folder
    (images / "cat.jpg").write_bytes(b"garbage")
    with pytest.raises(BadItem, match="cat.jpg cannot be decoded"):
        ImageFolderBuilder(images, captions, TokenSource("slic")).build(1)
    options = DataOptions(
        dataset="images",
        images=str(images),
        captions=str(captions),
        token_source="slic",
        val_fraction=0.0,
        on_bad="skip",
        cache_dir=str(tmp_path / "cache"),
    )
    dataset = open_dataset(options, "train", progress=False)
    assert len(dataset) == 2 and "cat.jpg" not in dataset.store.names


def test_captions_file_errors_name_the_line(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"file_name": "a.png", "captions": ["x"]}\n{"file_name": "b.png"}\n')
    with pytest.raises(ValueError, match="c.jsonl:2"):
        read_captions_file(path)
    path.write_text('{"file_name": "a.png", "captions": []}\n')
    with pytest.raises(ValueError, match="c.jsonl:1: a.png needs at least one non-empty caption"):
        read_captions_file(path)


def test_tokens_file_missing_an_image_is_a_bad_item(folder, tmp_path):
    tokens = tmp_path / "tokens.jsonl"
    tokens.write_text("")
    builder = ImageFolderBuilder(*folder, TokenSource("tokens", tokens_file=tokens))
    with pytest.raises(BadItem, match="no line for image astronaut.png"):
        builder.build(0)


def test_validation_hold_out_is_stable_and_disjoint():
    names = [f"img{k}.jpg" for k in range(400)]
    held = [n for n in names if in_validation(n, 0.1)]
    assert 20 <= len(held) <= 60
    assert held == [n for n in names if in_validation(n, 0.1)]


def test_a_tokens_line_without_features_is_a_bad_item_for_the_precomputed_featurizer(folder, tmp_path):
    from pycocotools import mask as mask_utils

    from graphs.featurizers import Featurizer

    mask = np.zeros((64, 80), dtype=np.uint8, order="F")
    mask[10:30, 10:40] = 1
    rle = mask_utils.encode(mask)
    rle["counts"] = rle["counts"].decode()
    lines = [
        {"file_name": "astronaut.png", "height": 64, "width": 80, "masks": [rle], "features": [[1.0, 2.0, 3.0]]},
        {"file_name": "cat.jpg", "height": 64, "width": 80, "masks": [rle]},
    ]
    tokens = tmp_path / "tokens.jsonl"
    tokens.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    builder = ImageFolderBuilder(*folder, TokenSource("tokens", tokens_file=tokens), Featurizer("precomputed"))
    graph, _ = builder.build(0)
    assert graph["object"].x.tolist() == [[1.0, 2.0, 3.0]]
    with pytest.raises(BadItem, match="tokens.jsonl: the line of cat.jpg has no features"):
        builder.build(1)
