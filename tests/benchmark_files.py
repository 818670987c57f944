"""Small copies of the real benchmarks, written in the layout and format their authors ship."""

import json
from pathlib import Path

import numpy as np
from PIL import Image

HORSE = "A man riding a brown horse along a sandy beach."


def photo(path: Path, seed: int, size: tuple[int, int] = (40, 50)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def write_aro(root: Path) -> Path:
    """ARO's VG-Relation and VG-Attribution: two JSON lists and images/ (vgr_vga_images.zip)."""
    for k in range(4):
        photo(root / "images" / f"{k}.jpg", k)
    relation = [
        {
            "image_id": k,
            "image_path": f"{k}.jpg",
            "bbox_x": -3,
            "bbox_y": 5,
            "bbox_w": 30,
            "bbox_h": 60,
            "true_caption": "the horse is eating the grass",
            "false_caption": "the grass is eating the horse",
            "relation_name": ("eating", "near", "on", "with")[k],
        }
        for k in range(4)
    ]
    (root / "visual_genome_relation.json").write_text(json.dumps(relation))
    attribution = [
        {
            "image_id": k % 4,
            "image_path": f"{k % 4}.jpg",
            "bbox_x": 0,
            "bbox_y": 0,
            "bbox_w": 50,
            "bbox_h": 40,
            "true_caption": "the white dog and the black cat",
            "false_caption": "the black dog and the white cat",
            "attributes": ["white", "black"] if k < 25 else ["red", "green"],
        }
        for k in range(28)
    ]
    (root / "visual_genome_attribution.json").write_text(json.dumps(attribution))
    return root


def write_order(root: Path, name: str) -> Path:
    """BLIP's Karpathy test file (coco_karpathy_test.json / flickr30k_test.json), images
    named relative to the root (val2014/..., flickr30k-images/...)."""
    folder, file_name = {
        "coco": ("val2014", "coco_karpathy_test.json"),
        "flickr": ("flickr30k-images", "flickr30k_test.json"),
    }[name]
    entries = []
    for k in range(2):
        image = f"{folder}/COCO_val2014_{k:012d}.jpg" if name == "coco" else f"{folder}/{1000 + k}.jpg"
        photo(root / image, k)
        entries.append({"image": image, "caption": [HORSE, "Two dogs play with a red ball on the grass.", "dog"]})
    (root / file_name).write_text(json.dumps(entries))
    return root


def write_sugarcrepe(
    root: Path, subsets=("add_obj", "add_att", "replace_obj", "replace_att", "replace_rel", "swap_obj", "swap_att")
) -> tuple[Path, Path]:
    """SugarCrepe's data/*.json ({"0": {filename, caption, negative_caption}}) and COCO val2017 images."""
    data, images = root / "data", root / "coco" / "images" / "val2017"
    data.mkdir(parents=True, exist_ok=True)
    for k in range(3):
        photo(images / f"{k:012d}.jpg", 20 + k)
    for subset in subsets:
        entries = {
            str(k): {"filename": f"{k:012d}.jpg", "caption": "A cat on a mat.", "negative_caption": "A mat on a cat."}
            for k in range(3)
        }
        (data / f"{subset}.json").write_text(json.dumps(entries, indent=4))
    return data, images


def write_winoground(root: Path) -> Path:
    """Winoground's data/examples.jsonl and the images of data/images.zip (PNG, named by image_0/1)."""
    examples = []
    tags = [("Object", "", 1), ("Relation", "Symbolic", 1), ("Relation", "", 2), ("Both", "Pragmatics", 2)]
    for k, (collapsed, secondary, preds) in enumerate(tags):
        for j in (0, 1):
            photo(root / "images" / f"ex_{k}_img_{j}.png", 10 * k + j)
        examples.append(
            {
                "id": k,
                "image_0": f"ex_{k}_img_0",
                "image_1": f"ex_{k}_img_1",
                "caption_0": "an old person kisses a young person",
                "caption_1": "a young person kisses an old person",
                "tag": "Noun" if collapsed == "Object" else "Verb",
                "secondary_tag": secondary,
                "num_main_preds": preds,
                "collapsed_tag": collapsed,
            }
        )
    (root / "examples.jsonl").write_text("".join(json.dumps(e) + "\n" for e in examples))
    return root
