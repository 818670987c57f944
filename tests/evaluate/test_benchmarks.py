"""The real benchmarks' loaders, on small copies written in each original layout and format."""

import hashlib
import json
import random

import numpy as np
import pytest
import torch
from benchmark_files import HORSE, write_aro, write_order, write_sugarcrepe, write_winoground
from PIL import Image

import evaluate.order_perturbations as order_text
from evaluate.benchmarks import crop_box, describe_benchmark, load_benchmark
from evaluate.compositional import RefGraphs, score
from evaluate.order_perturbations import (
    REGEX_TOKENIZER_APPROXIMATION,
    STOP_WORD_APPROXIMATION,
    OrderPerturber,
    OrderText,
    pre_caption,
    regex_word_tokenize,
)


def fixed_tagger(tags: dict[str, str]):
    """A tagger that tags the words it is told about and X the rest (stands in for spaCy)."""
    return lambda text: [(w, tags.get(w, "X")) for w in text.split()]


def test_pre_caption_follows_aro():
    assert pre_caption('A man, riding "the" horse!  Now.') == "a man, riding the horse now"
    assert pre_caption("(a) cat*#:;~ sat\t on it.\n") == "a cat sat on it"
    assert pre_caption("A\tcat's mat, 2.") == "a\tcat's mat, 2"  # one tab is not a run; commas and ' stay
    long = " ".join(f"w{k}" for k in range(40))
    assert pre_caption(long) == " ".join(f"w{k}" for k in range(30))
    assert pre_caption(long, max_words=50) == long


def test_perturbations_shuffle_nouns_and_adjectives_each_in_its_class():
    caption = "small dog chases big red cat near old tree"
    tags = {"dog": "NN", "cat": "NN", "tree": "NN", "small": "JJ", "big": "JJ", "red": "JJ", "old": "JJ"}
    text = OrderText(fixed_tagger(tags), str.split, "fixed", "split")
    options = OrderPerturber(text, seed=3).options(caption)
    # the same draws, made by hand: numpy's legacy generator, then Python's random
    words = np.array(caption.split())
    numpy_rng, python_rng = np.random.RandomState(3), random.Random(3)
    nouns, adjectives = [1, 5, 8], [0, 3, 4, 7]
    first = words.copy()
    first[nouns] = numpy_rng.permutation(words[nouns])
    first[adjectives] = numpy_rng.permutation(words[adjectives])
    second = words.copy()
    second[[2, 6]] = numpy_rng.permutation(words[[2, 6]])
    groups = [caption.split()[k : k + 3] for k in range(0, 9, 3)]
    for group in groups:
        python_rng.shuffle(group)
    third = " ".join(" ".join(g) for g in groups)
    groups = [caption.split()[k : k + 3] for k in range(0, 9, 3)]
    python_rng.shuffle(groups)
    fourth = " ".join(" ".join(g) for g in groups)
    assert options == [caption, " ".join(first), " ".join(second), third, fourth]
    for k in nouns:
        assert options[1].split()[k] in {"dog", "cat", "tree"}
    for k in adjectives:
        assert options[1].split()[k] in {"small", "big", "red", "old"}


def test_without_spacy_the_stop_word_approximation_is_warned_and_recorded(tmp_path, monkeypatch):
    monkeypatch.setattr(order_text, "_spacy_tagger", lambda: None)
    monkeypatch.setattr(order_text, "_nltk_tokenizer", lambda: None)
    order_text.detect_order_text.cache_clear()
    try:
        with pytest.warns(UserWarning, match="stop-word list stand in for nouns and adjectives"):
            items = load_benchmark("coco-order", write_order(tmp_path, "coco"))
    finally:
        order_text.detect_order_text.cache_clear()
    assert describe_benchmark("coco-order", tmp_path, items)["approximations"] == [
        STOP_WORD_APPROXIMATION,
        REGEX_TOKENIZER_APPROXIMATION,
    ]


def test_with_spacy_its_tags_are_used_and_nothing_is_approximated(tmp_path, monkeypatch):
    tags = {"man": "NN", "horse": "NN", "beach": "NN", "brown": "JJ", "sandy": "JJ"}
    monkeypatch.setattr(order_text, "_spacy_tagger", lambda: (fixed_tagger(tags), "spaCy en_core_web_sm test"))
    monkeypatch.setattr(order_text, "_nltk_tokenizer", lambda: str.split)
    order_text.detect_order_text.cache_clear()
    try:
        items = load_benchmark("coco-order", write_order(tmp_path, "coco"))
    finally:
        order_text.detect_order_text.cache_clear()
    assert describe_benchmark("coco-order", tmp_path, items)["approximations"] == []
    words = items[0]["captions"][1].split()  # "a man riding a brown horse along a sandy beach", shuffled
    assert sorted(words[k] for k in (1, 5)) == ["horse", "man"] and sorted(words[k] for k in (4, 8)) == [
        "brown",
        "sandy",
    ]
    assert [words[k] for k in (0, 2, 3, 6, 7, 9)] == ["a", "riding", "a", "along", "a", "beach"]
    mixed = items[:1] + [dict(items[1], approximations=[STOP_WORD_APPROXIMATION])]
    with pytest.raises(ValueError, match="different approximations"):
        describe_benchmark("coco-order", tmp_path, mixed)


def test_regex_tokenizer_splits_like_nltk():
    assert regex_word_tokenize('A man\'s dog, "running" fast... isn\'t it?') == [
        "A", "man", "'s", "dog", ",", "``", "running", "''", "fast", "...", "is", "n't", "it", "?",
    ]  # fmt: skip


@pytest.mark.parametrize("name", ["coco", "flickr"])
def test_order_reads_the_original_files_one_case_per_caption(tmp_path, name):
    root = write_order(tmp_path, name)
    items = load_benchmark(f"{name}-order", root)
    assert len(items) == 6  # 2 images x 3 captions, none dropped
    folder = "val2014" if name == "coco" else "flickr30k-images"
    assert items[0]["image"]["file"].startswith(str(root / folder))
    horse = items[0]["captions"]
    assert horse[0] == pre_caption(HORSE) == "a man riding a brown horse along a sandy beach"
    assert all(sorted(p.split()) == sorted(horse[0].split()) for p in horse[1:])
    one_word = items[2]["captions"]
    assert one_word == ["dog"] * 5  # perturbations that cannot differ still make a test case


def test_order_refuses_another_layout_naming_the_file(tmp_path):
    (tmp_path / "karpathy_test.json").write_text("[]")
    with pytest.raises(FileNotFoundError, match="coco_karpathy_test.json does not exist"):
        load_benchmark("coco-order", tmp_path)


def test_aro_keeps_the_original_option_order_and_box(tmp_path):
    root = write_aro(tmp_path)
    items = load_benchmark("aro-relation", root)
    assert [i["subset"] for i in items] == ["eating", "near", "on", "with"]
    assert items[0]["captions"] == ["the grass is eating the horse", "the horse is eating the grass"]
    assert items[0]["answer"] == 1 and items[0]["image"]["box"] == [-3, 5, 30, 60]
    attribution = load_benchmark("aro-attribution", root)
    assert {i["subset"] for i in attribution} == {"white_black", "red_green"}


@pytest.mark.parametrize(
    "box", [[-3, 5, 30, 60], [2.4, 3.5, 20.2, 10.5], [45, 35, 10, 10], [-10, -10, 80, 70], [0, 0, 50, 40]]
)
def test_crop_box_is_pils_crop_with_padding(box):
    pixels = np.random.default_rng(0).integers(1, 255, (40, 50, 3), dtype=np.uint8)
    x, y, w, h = box
    expected = np.asarray(Image.fromarray(pixels).crop((x, y, x + w, y + h)))
    np.testing.assert_array_equal(crop_box(pixels, box), expected)
    mask = pixels[..., 0] > 128
    np.testing.assert_array_equal(crop_box(mask, box), np.asarray(Image.fromarray(mask).crop((x, y, x + w, y + h))))


def test_crop_box_refuses_an_empty_box():
    with pytest.raises(ValueError, match="empty"):
        crop_box(np.zeros((4, 4)), [1, 1, 0.2, 3])


def test_sugarcrepe_reads_data_and_coco_images(tmp_path):
    data, images = write_sugarcrepe(tmp_path)
    items = load_benchmark("sugarcrepe", data, image_root=images)
    assert len(items) == 21 and items[0]["subset"] == "add_obj"
    assert items[0]["captions"] == ["A cat on a mat.", "A mat on a cat."] and items[0]["answer"] == 0
    assert items[0]["image"]["file"] == str(images / "000000000000.jpg")


def test_sugarcrepe_stops_at_a_missing_subset_unless_told(tmp_path):
    data, images = write_sugarcrepe(tmp_path, subsets=("add_obj", "swap_att"))
    with pytest.raises(FileNotFoundError, match="add_att.json does not exist"):
        load_benchmark("sugarcrepe", data, image_root=images)
    items = load_benchmark("sugarcrepe", data, image_root=images, skip_missing_subsets=True)
    assert {i["subset"] for i in items} == {"add_obj", "swap_att"}
    assert describe_benchmark("sugarcrepe", data, items)["missing_subsets"] == [
        "add_att", "replace_obj", "replace_att", "replace_rel", "swap_obj",
    ]  # fmt: skip
    with pytest.raises(FileNotFoundError, match="give --image-root"):
        load_benchmark("sugarcrepe", data)


def test_benchmark_images_become_graphs_and_score(tmp_path):
    root = write_aro(tmp_path)

    class Model:
        class config:
            vision = None

    graphs = RefGraphs(Model(), {"graph_type": "hetero", "token_source": "slic"}, root)
    item = load_benchmark("aro-relation", root)[0]
    graph = graphs(item["image"])
    assert graph["image"].num_nodes == 1 and graph["object"].num_nodes >= 1
    assert graph["object"].box[:, :2].max() <= 1.0  # boxes of the crop, normalised
    true, false = item["captions"][item["answer"]], item["captions"][1 - item["answer"]]
    images = {json.dumps(item["image"], sort_keys=True): torch.tensor([1.0, 0.0])}
    texts = {true: torch.tensor([1.0, 0.0]), false: torch.tensor([0.0, 1.0])}
    assert score([item], images, texts)["acc"] == 1.0


def test_winoground_items_keep_their_tags(tmp_path):
    items = load_benchmark("winoground", write_winoground(tmp_path))
    assert len(items) == 4 and items[1]["images"][1]["file"] == str(tmp_path / "images" / "ex_1_img_1.png")
    assert items[3]["tags"] == {
        "tag": "Verb",
        "secondary_tag": "Pragmatics",
        "num_main_preds": 2,
        "collapsed_tag": "Both",
    }


@pytest.mark.parametrize(
    "name, write, missing",
    [
        ("aro-relation", write_aro, "images/2.jpg"),
        ("coco-order", lambda root: write_order(root, "coco"), "val2014/COCO_val2014_000000000001.jpg"),
        ("flickr-order", lambda root: write_order(root, "flickr"), "flickr30k-images/1000.jpg"),
        ("winoground", write_winoground, "images/ex_2_img_1.png"),
    ],
)
def test_a_missing_image_is_named(tmp_path, name, write, missing):
    root = write(tmp_path)
    (root / missing).unlink()
    with pytest.raises(FileNotFoundError, match=f"image {root / missing} does not exist"):
        load_benchmark(name, root)


def test_sugarcrepe_missing_image_is_named(tmp_path):
    data, images = write_sugarcrepe(tmp_path)
    (images / "000000000002.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="add_obj.json: entry 2: image .*000000000002.jpg does not exist"):
        load_benchmark("sugarcrepe", data, image_root=images)


def test_described_files_carry_their_sha256(tmp_path):
    root = write_winoground(tmp_path)
    described = describe_benchmark("winoground", root, load_benchmark("winoground", root))
    assert described["files"] == {"examples.jsonl": hashlib.sha256((root / "examples.jsonl").read_bytes()).hexdigest()}
