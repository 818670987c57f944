"""What a real export contains: every mask form, image mode and size, many instances,
Unicode names and duplicate ids, each handled or a clear, counted error."""

import json
import tracemalloc

import numpy as np
import pytest
import torch
from export_files import compressed, noise, polygon, rectangle, rectangle_rle, uncompressed, write_coco_folder
from PIL import Image
from pycocotools import mask as mask_utils

from data.cache import BadItem
from data.coco import CocoBuilder, load_image
from data.images import ImageFolderBuilder, TokenSource
from data.sources import DataOptions, open_dataset
from graphs import check_graph
from graphs.schema import OBJECT
from graphs.tokens import TokensFileError, read_tokens_file, rle_runs

# --- masks: polygons, compressed and uncompressed RLE in one file ---------------------------------------


def test_coco_reads_polygon_compressed_and_uncompressed_rle_in_one_file(tmp_path):
    height, width = 30, 40
    big, middle = rectangle(30, 40, 2, 3, 20, 25), rectangle(30, 40, 5, 30, 12, 8)
    write_coco_folder(
        tmp_path,
        [(1, "a.jpg", noise(width, height), width, height)],
        [
            {"image_id": 1, "area": 500.0, "segmentation": compressed(big), "category_id": 2},
            {"image_id": 1, "area": 96.0, "segmentation": uncompressed(middle)},
            {"image_id": 1, "area": 20.0, "segmentation": polygon(24, 1, 4, 5)},
        ],
    )
    builder = CocoBuilder(tmp_path, "val2017")
    masks, labels = builder.masks_of(1, height, width)
    assert labels == [2, 1, 1]
    assert np.array_equal(masks.dense()[0], big) and np.array_equal(masks.dense()[1], middle)
    written = mask_utils.decode(mask_utils.frPyObjects(rectangle_rle(30, 40, 5, 30, 12, 8), 30, 40))
    assert np.array_equal(written, middle)  # the test's own run writer, checked
    whole_polygon = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygon(24, 1, 4, 5), height, width)))
    assert np.array_equal(masks.dense()[2], whole_polygon.astype(bool))
    assert [crop.shape for crop in masks.crops[:2]] == [(20, 25), (12, 8)]  # cut to their boxes
    graph, _ = builder.build(0)
    check_graph(graph)
    assert graph[OBJECT].num_nodes == 3


@pytest.mark.parametrize(
    "segmentation, message",
    [
        ({"size": [30, 40], "counts": [5, 10, 3]}, "add up to 30x40"),
        ({"size": [20, 40], "counts": [800]}, "is 40x20, the image 40x30"),
        ({"size": [30, 40], "counts": "0"}, "do not describe 30x40 pixels"),
    ],
)
def test_a_malformed_coco_rle_is_a_bad_item_naming_the_annotation(tmp_path, segmentation, message):
    write_coco_folder(
        tmp_path,
        [(1, "a.jpg", noise(40, 30), 40, 30)],
        [{"image_id": 1, "segmentation": segmentation}],
    )
    with pytest.raises(BadItem, match=f"instances_val2017.json: annotation 1: mask .*{message}"):
        CocoBuilder(tmp_path, "val2017").build(0)


def test_rle_runs_parse_what_pycocotools_writes():
    rng = np.random.default_rng(1)
    for _ in range(40):
        height, width = (int(v) for v in rng.integers(1, 60, 2))
        mask = rng.random((height, width)) < rng.random()
        runs = rle_runs(mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"])
        assert runs.tolist() == uncompressed(mask)["counts"][: len(runs)]
        assert runs.sum() == height * width and runs[1::2].sum() == mask.sum()
    assert rle_runs(b"") is None and rle_runs(b"\x7f") is None


# --- image modes ------------------------------------------------------------------------------------------


def paletted():
    image = Image.new("P", (4, 3))
    image.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    image.putpixel((1, 1), 1)
    image.info["transparency"] = 0
    return image


@pytest.mark.parametrize(
    "make, suffix, pixel, expected",
    [
        (lambda: Image.new("L", (4, 3), 77), "png", (0, 0), (77, 77, 77)),
        (lambda: Image.new("1", (4, 3), 1), "png", (0, 0), (255, 255, 255)),
        (lambda: Image.new("LA", (4, 3), (90, 0)), "png", (0, 0), (90, 90, 90)),
        (lambda: Image.new("RGBA", (4, 3), (10, 20, 30, 0)), "png", (0, 0), (10, 20, 30)),
        (paletted, "png", (1, 1), (200, 100, 50)),
        (lambda: Image.fromarray(np.full((3, 4), 60000, np.uint16)), "png", (0, 0), (234, 234, 234)),
        (lambda: Image.new("CMYK", (4, 3), (0, 0, 0, 0)), "jpg", (0, 0), (255, 255, 255)),
        (lambda: Image.new("RGB", (4, 3), (1, 2, 3)), "tiff", (0, 0), (1, 2, 3)),
    ],
)
def test_every_image_mode_becomes_rgb_uint8(tmp_path, make, suffix, pixel, expected):
    path = tmp_path / f"picture.{suffix}"
    make().save(path)
    image = load_image(path)
    assert image.shape == (3, 4, 3) and image.dtype == np.uint8
    x, y = pixel
    tolerance = 2 if suffix == "jpg" else 0
    assert np.abs(image[y, x].astype(int) - expected).max() <= tolerance


def sixteen_bit_rgb_png(path, width, height, value):
    """A 16-bit-per-channel RGB PNG, written by hand (Pillow cannot write one)."""
    import struct
    import zlib

    row = b"\x00" + struct.pack(">" + "H" * 3 * width, *([value] * 3 * width))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    pixels = zlib.compress(row * height)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))


def test_sixteen_bit_rgb_keeps_its_top_byte_like_sixteen_bit_grey(tmp_path):
    sixteen_bit_rgb_png(tmp_path / "deep.png", 4, 3, 40000)
    assert load_image(tmp_path / "deep.png")[0, 0].tolist() == [40000 >> 8] * 3


def test_sixteen_bit_grey_keeps_its_range():
    """Pillow's convert("RGB") would clip 16-bit values to 255 (white); the top byte is kept."""
    from data.coco import to_rgb

    ramp = Image.fromarray(np.array([[0, 255, 256, 32768, 65535]], dtype=np.uint16))
    assert to_rgb(ramp)[0, :, 0].tolist() == [0, 0, 1, 128, 255]


def exif_rotated_jpeg(path, width, height, orientation=6):
    exif = Image.Exif()
    exif[0x0112] = orientation
    noise(width, height).save(path, exif=exif.tobytes())


def test_exif_orientation_is_not_applied_image_and_masks_stay_in_stored_pixels(tmp_path):
    (tmp_path / "val2017").mkdir()
    exif_rotated_jpeg(tmp_path / "val2017" / "portrait.jpg", 40, 24)
    assert load_image(tmp_path / "val2017" / "portrait.jpg").shape == (24, 40, 3)
    write_coco_folder(
        tmp_path,
        [(1, "portrait.jpg", None, 40, 24)],
        [{"image_id": 1, "segmentation": polygon(2, 30, 10, 6)}],
    )
    graph, _ = CocoBuilder(tmp_path, "val2017").build(0)
    np.testing.assert_allclose(graph[OBJECT].box[0].numpy(), [33 / 40, 7 / 24, 6 / 40, 10 / 24], atol=1e-6)
    # sizes given upright (rotated) do not match the stored pixels: an error that says why
    write_coco_folder(tmp_path, [(1, "portrait.jpg", None, 24, 40)], [])
    with pytest.raises(BadItem, match="is 40x24, annotations say 24x40 .*EXIF orientation 6"):
        CocoBuilder(tmp_path, "val2017").build(0)


def test_images_of_mixed_sizes_and_modes_build_in_one_coco_file(tmp_path):
    pictures = [
        (1, "grey.png", Image.new("L", (40, 30), 100), 40, 30),
        (2, "wide.png", Image.new("RGBA", (64, 20), (5, 6, 7, 128)), 64, 20),
        (3, "cmyk.jpg", Image.new("CMYK", (25, 50), (0, 50, 100, 0)), 25, 50),
        (4, "deep.png", Image.fromarray(np.full((16, 16), 40000, np.uint16)), 16, 16),
    ]
    annotations = [{"image_id": i, "segmentation": polygon(1, 1, 10, 10)} for i in range(1, 5)]
    builder = CocoBuilder(write_coco_folder(tmp_path, pictures, annotations), "val2017")
    for index in range(4):
        graph, _ = builder.build(index)
        check_graph(graph)
        assert graph[OBJECT].num_nodes == 1


# --- very large images ------------------------------------------------------------------------------------


def test_pillows_decompression_bomb_guard_is_a_clear_error(tmp_path, monkeypatch):
    Image.new("RGB", (40, 40)).save(tmp_path / "warned.png")  # 1600 pixels: over the limit, under twice it
    Image.new("RGB", (100, 100)).save(tmp_path / "refused.png")  # over twice the limit: Pillow's own error
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    for name in ("warned.png", "refused.png"):
        with pytest.raises(BadItem, match=f"{name} is too large to decode safely"):
            load_image(tmp_path / name)


def test_rle_masks_of_a_large_image_hold_only_their_boxes(tmp_path):
    """Six RLE objects on 8000x6000: decoded one at a time and cut to their boxes,
    never six full frames (48 MB each) at once."""
    height, width = 6000, 8000
    annotations = [
        {"image_id": 1, "area": 100.0 - k, "segmentation": rectangle_rle(height, width, 500 * k, 700 * k, 50, 60)}
        for k in range(6)
    ]
    builder = CocoBuilder(write_coco_folder(tmp_path, [(1, "huge.png", None, width, height)], annotations), "val2017")
    tracemalloc.start()
    masks, _ = builder.masks_of(1, height, width)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [crop.shape for crop in masks.crops] == [(50, 60)] * 6
    assert masks.bounds[3].tolist() == [1500, 1550, 2100, 2160]
    assert peak < 2 * height * width  # one decoded frame (and its slice) at a time


@pytest.mark.slow
def test_a_large_blank_image_builds(tmp_path):
    height, width = 6000, 8000
    pictures = [(1, "huge.png", Image.new("L", (width, height)), width, height)]
    annotations = [
        {"image_id": 1, "segmentation": polygon(100, 200, 300, 400)},
        {"image_id": 1, "segmentation": rectangle_rle(height, width, 5000, 7000, 800, 900)},
    ]
    graph, _ = CocoBuilder(write_coco_folder(tmp_path, pictures, annotations), "val2017").build(0)
    check_graph(graph)
    assert graph[OBJECT].num_nodes == 2


# --- many instances ---------------------------------------------------------------------------------------


def test_coco_image_with_120_instances_keeps_the_largest_and_counts_the_rest(tmp_path):
    sides = [2 + k % 11 for k in range(120)]
    annotations = [
        {"image_id": 1, "area": float(side * side), "segmentation": polygon(k // 12 * 15, k % 12 * 15, side, side)}
        for k, side in enumerate(sides)
    ]
    write_coco_folder(tmp_path, [(1, "crowded.jpg", noise(180, 150), 180, 150)], annotations)
    builder = CocoBuilder(tmp_path, "val2017", max_objects=30)
    assert builder.problems["beyond --max-objects 30 (smallest first)"] == 90
    graph, _ = builder.build(0)
    assert graph[OBJECT].num_nodes == 30
    areas = sorted((graph[OBJECT].area.numpy() * 150 * 180).round().astype(int).tolist(), reverse=True)
    assert areas == sorted((s * s for s in sides), reverse=True)[:30]


def tokens_line(name, height, width, masks, **extra):
    entry = {"file_name": name, "height": height, "width": width, "masks": masks, **extra}
    return json.dumps(entry, ensure_ascii=False)


def test_tokens_file_with_120_masks_keeps_the_largest_and_remaps_triplets(tmp_path):
    sides = [2 + k % 11 for k in range(120)]
    masks = [compressed(rectangle(150, 180, k // 12 * 15, k % 12 * 15, s, s)) for k, s in enumerate(sides)]
    largest = sorted(range(120), key=lambda k: -sides[k])[:30]
    kept = sorted(largest)
    dropped = next(k for k in range(120) if k not in largest)
    triplets = [[kept[0], "holding", kept[5]], [kept[5], "on", dropped], [kept[7], "left of", kept[2]]]
    path = tmp_path / "tokens.jsonl"
    path.write_text(tokens_line("crowded.png", 150, 180, masks, labels=list(range(120)), triplets=triplets) + "\n")
    source = TokenSource("tokens", path, max_objects=30)
    assert source.beyond == (1, 90, 1)
    tokens = source("crowded.png", np.zeros((150, 180, 3), np.uint8))
    assert len(tokens.masks) == 30 and tokens.labels == kept
    assert tokens.triplets == [(0, "holding", 5), (7, "left of", 2)]  # names kept
    assert TokenSource("tokens", path).beyond == (0, 0, 0)


# --- tokens files: mask forms and memory ------------------------------------------------------------------


def test_tokens_file_reads_polygons_compressed_and_uncompressed_rle_on_one_line(tmp_path):
    a, b = rectangle(30, 40, 2, 3, 10, 12), rectangle(30, 40, 15, 20, 8, 9)
    path = tmp_path / "tokens.jsonl"
    path.write_text(tokens_line("x.png", 30, 40, [compressed(a), uncompressed(b), polygon(20, 2, 6, 7)]) + "\n")
    masks = read_tokens_file(path)["x.png"].masks.dense()
    expected = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygon(20, 2, 6, 7), 30, 40)))
    assert np.array_equal(masks[0], a) and np.array_equal(masks[1], b) and np.array_equal(masks[2], expected)


@pytest.mark.parametrize(
    "mask, message",
    [
        ({"size": [30, 40], "counts": [5, 10, 3]}, "mask 0 uncompressed RLE counts must .* add up to 30x40"),
        ({"size": [30, 40], "counts": "0"}, "mask 0 compressed RLE counts do not describe 30x40"),
        ([[1, 2, 3, 4]], "mask 0 every polygon needs at least 3 points"),
        ([[1, 2, 3, 4, 5, "x"]], "mask 0 every polygon needs"),
        ("PPYo0", "mask 0 expected COCO RLE"),
    ],
)
def test_tokens_file_refuses_malformed_masks_by_line(tmp_path, mask, message):
    path = tmp_path / "tokens.jsonl"
    path.write_text(tokens_line("x.png", 30, 40, [mask]) + "\n")
    with pytest.raises(TokensFileError, match=f"tokens.jsonl:1: {message}"):
        read_tokens_file(path)


def test_tokens_file_keeps_masks_compressed_until_an_image_is_built(tmp_path):
    """60 masks of 1000x1000 would be 60 MB decoded; read, the file holds their RLE only."""
    mask = compressed(rectangle(1000, 1000, 100, 200, 300, 400))
    path = tmp_path / "tokens.jsonl"
    path.write_text("\n".join(tokens_line(f"{k}.png", 1000, 1000, [mask] * 6) for k in range(10)) + "\n")
    tracemalloc.start()
    tokens = read_tokens_file(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(tokens) == 10 and peak < 5_000_000
    masks = tokens["3.png"].masks
    assert len(masks) == 6 and masks.crops[0].shape == (300, 400) and masks.bounds[0].tolist() == [100, 400, 200, 600]


# --- names and ids ----------------------------------------------------------------------------------------


def test_unicode_file_names_round_trip_through_coco_and_the_cache(tmp_path):
    name = "café_東京_ñ.jpg"
    write_coco_folder(
        tmp_path / "coco",
        [(7, name, noise(40, 30), 40, 30)],
        [{"image_id": 7, "segmentation": polygon(2, 2, 10, 10)}],
    )
    graph, stored = CocoBuilder(tmp_path / "coco", "val2017").build(0)
    assert stored == name and graph[OBJECT].num_nodes == 1
    images = tmp_path / "images"
    images.mkdir()
    noise(40, 30).save(images / name)
    captions = tmp_path / "captions.jsonl"
    captions.write_text(json.dumps({"file_name": name, "captions": ["ein Café"]}, ensure_ascii=False) + "\n")
    tokens = tmp_path / "tokens.jsonl"
    tokens.write_text(tokens_line(name, 30, 40, [polygon(2, 2, 10, 10), polygon(15, 20, 8, 8)]) + "\n")
    options = DataOptions(
        dataset="images",
        images=str(images),
        captions=str(captions),
        token_source="tokens",
        tokens_file=str(tokens),
        val_fraction=0.0,
        cache_dir=str(tmp_path / "cache"),
    )
    for _ in range(2):  # built, then read back from the cache
        dataset = open_dataset(options, "train", progress=False)
        assert dataset.store.names == [name] and len(dataset.store[0][OBJECT].box) == 2


def test_duplicate_coco_image_ids_are_an_error_naming_the_id_or_a_counted_skip(tmp_path):
    pictures = [
        (1, "first.jpg", noise(40, 30), 40, 30),
        (5, "second.jpg", noise(40, 30, 1), 40, 30),
        (5, "third.jpg", noise(40, 30, 2), 40, 30),
    ]
    annotations = [
        {"image_id": 5, "segmentation": polygon(2, 2, 10, 10)},
        {"image_id": 1, "segmentation": polygon(2, 2, 10, 10)},
    ]
    write_coco_folder(tmp_path, pictures, annotations)
    message = r"instances_val2017.json: image id 5 appears 2 times \(second.jpg, third.jpg\)"
    with pytest.raises(ValueError, match=message):
        CocoBuilder(tmp_path, "val2017")
    builder = CocoBuilder(tmp_path, "val2017", on_bad="skip")
    assert builder.image_ids == [1] and builder.problems["of a left-out image entry"] == 1


def test_a_tokens_file_size_disagreeing_with_an_exif_rotated_image_says_why(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    exif_rotated_jpeg(images / "phone.jpg", 40, 24)
    captions = tmp_path / "captions.jsonl"
    captions.write_text(json.dumps({"file_name": "phone.jpg", "captions": ["a phone photo"]}) + "\n")
    tokens = tmp_path / "tokens.jsonl"
    tokens.write_text(tokens_line("phone.jpg", 40, 24, [polygon(2, 2, 10, 10)]) + "\n")  # given upright
    builder = ImageFolderBuilder(images, captions, TokenSource("tokens", tokens))
    with pytest.raises(BadItem, match="tokens.jsonl:1: masks of phone.jpg are 24x40, the image 40x24 .*EXIF"):
        builder.build(0)


def test_a_name_in_the_other_unicode_normal_form_finds_its_file(tmp_path):
    """Names composed in the JSON (NFC), decomposed on disk (NFD, as macOS exports them)."""
    import unicodedata

    composed = "café.jpg"
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    noise(40, 30).save(tmp_path / decomposed)
    assert load_image(tmp_path / composed).shape == (30, 40, 3)
    with pytest.raises(BadItem, match="cafe.jpg does not exist"):
        load_image(tmp_path / "cafe.jpg")


def test_incomplete_coco_image_entries_are_an_error_or_a_counted_skip(tmp_path):
    write_coco_folder(
        tmp_path,
        [(1, "good.jpg", noise(40, 30), 40, 30), (2, "sizeless.jpg", noise(40, 30), None, 30)],
        [{"image_id": 2, "segmentation": polygon(2, 2, 10, 10)}],
    )
    with pytest.raises(ValueError, match="instances_val2017.json: image 2 lacks a file_name or a positive integer"):
        CocoBuilder(tmp_path, "val2017")
    builder = CocoBuilder(tmp_path, "val2017", on_bad="skip")
    assert builder.image_ids == [1] and builder.problems["of a left-out image entry"] == 1


@pytest.mark.parametrize(
    "change, message",
    [
        ({"height": "tall"}, "height 'tall' and width 40 must be positive integers"),
        ({"masks": {"size": [30, 40]}}, "masks must be a list"),
        ({"labels": ["dog"]}, "labels must be integer category ids"),
        ({"features": [["x", 1.0]]}, "scores and features must be numbers"),
        ({"features": [[float("nan"), 1.0]]}, "features must be a list of equal-length vectors of finite numbers"),
        ({"triplets": [[0, 3.5, 1]]}, "triplet 0 predicate 3.5 is neither a name nor an id"),
    ],
)
def test_tokens_file_refuses_wrong_types_by_line(tmp_path, change, message):
    entry = {"file_name": "x.png", "height": 30, "width": 40, "masks": [polygon(2, 2, 10, 10)], **change}
    if "triplets" in change:
        entry["masks"].append(polygon(15, 15, 10, 10))
    path = tmp_path / "tokens.jsonl"
    path.write_text(json.dumps(entry) + "\n")
    with pytest.raises(TokensFileError, match=f"tokens.jsonl:1: {message}"):
        read_tokens_file(path)


def test_a_tokens_file_sent_to_workers_carries_an_index_not_its_features(tmp_path):
    """40 images x 7 masks x 512 features would be 573 kB as float32 in every cache-build worker."""
    import pickle

    rng = np.random.default_rng(0)
    masks = [polygon(2 + k, 2 + 4 * k, 3, 3) for k in range(7)]
    lines = [
        tokens_line(f"{i}.png", 30, 40, masks, features=rng.normal(size=(7, 512)).round(3).tolist()) for i in range(40)
    ]
    path = tmp_path / "tokens.jsonl"
    path.write_text("\n".join(lines) + "\n")
    source = TokenSource("tokens", path)
    assert len(pickle.dumps(source)) < 40_000
    tokens = pickle.loads(pickle.dumps(source))("17.png", np.zeros((30, 40, 3), np.uint8))
    assert tokens.features.shape == (7, 512) and np.allclose(tokens.features, json.loads(lines[17])["features"])
    path.write_text("\n".join(lines[1:]) + "\n")  # changed after it was read
    with pytest.raises(TokensFileError, match="tokens.jsonl:18: the file changed since it was read"):
        source("17.png", np.zeros((30, 40, 3), np.uint8))


def test_mask_pooling_from_boxes_equals_area_interpolation_of_full_frames():
    """The backbone featurizer pools `Masks` without making them full-frame: same weights."""
    from graphs.featurizers import mask_cell_weights, mask_pool
    from graphs.masks import Masks

    rng = np.random.default_rng(3)
    for height, width, h, w in ((37, 53, 7, 7), (64, 48, 8, 6), (10, 90, 7, 7), (5, 5, 7, 7)):
        dense = np.zeros((4, height, width), dtype=bool)
        for k in range(4):
            top, left = int(rng.integers(0, height)), int(rng.integers(0, width))
            dense[k, top : top + int(rng.integers(1, height)), left : left + int(rng.integers(1, width))] = True
            dense[k] &= rng.random((height, width)) < 0.7
            dense[k, top, left] = True
        masks = Masks.from_dense(dense)
        expected = torch.nn.functional.interpolate(torch.from_numpy(dense).float()[:, None], size=(h, w), mode="area")
        assert torch.allclose(mask_cell_weights(masks, h, w), expected[:, 0], atol=1e-6)
        feature_map = torch.from_numpy(rng.normal(size=(16, h, w))).float()
        assert torch.allclose(mask_pool(feature_map, masks), mask_pool(feature_map, dense), atol=1e-5)


def test_a_tokens_file_feeds_the_backbone_featurizer_its_boxed_masks(tmp_path):
    from graphs.featurizers import BackboneFeaturizer, Featurizer

    images = tmp_path / "images"
    images.mkdir()
    noise(64, 48).save(images / "a.png")
    captions = tmp_path / "captions.jsonl"
    captions.write_text(json.dumps({"file_name": "a.png", "captions": ["a picture"]}) + "\n")
    tokens = tmp_path / "tokens.jsonl"
    tokens.write_text(tokens_line("a.png", 48, 64, [polygon(2, 2, 20, 30), polygon(25, 30, 15, 20)]) + "\n")
    with pytest.warns(UserWarning, match="RANDOM"):
        featurizer = Featurizer("backbone", "timm:resnet18")
        builder = ImageFolderBuilder(images, captions, TokenSource("tokens", tokens), featurizer)
        graph, _ = builder.build(0)
        image, dense = builder.image_and_masks(0)
        reference = BackboneFeaturizer("timm:resnet18")
    reference.model.load_state_dict(featurizer._model.model.state_dict())
    expected, _ = reference(image, dense)
    assert graph[OBJECT].x.shape == (2, 512) and torch.allclose(graph[OBJECT].x, expected, atol=1e-5)


def test_a_captions_file_with_one_caption_per_line_combines_them(tmp_path, caplog):
    import logging

    from data.images import read_captions_file

    path = tmp_path / "captions.jsonl"
    rows = [("a.jpg", "first"), ("b.jpg", ["other"]), ("a.jpg", "second"), ("a.jpg", ["third", "fourth"])]
    path.write_text("".join(json.dumps({"file_name": n, "captions": c}) + "\n" for n, c in rows))
    with caplog.at_level(logging.INFO, logger="semgraph"):
        captions = read_captions_file(path)
    assert captions == {"a.jpg": ["first", "second", "third", "fourth"], "b.jpg": ["other"]}
    assert "1 file names appear on more than one line" in caplog.text
