"""python -m evaluate.compositional on benchmark folders in their original layout, and evaluate.plot
of its results."""

import hashlib
import json

import pytest
from benchmark_files import write_aro, write_sugarcrepe, write_winoground
from helpers import train_tiny
from PIL import Image

from evaluate.compositional import RefGraphs
from evaluate.compositional import main as compositional_main
from evaluate.plot import main as plot_main


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    train_tiny(root, root / "run")
    return root / "run" / "checkpoints" / "latest.pt"


def test_aro_images_are_cropped_as_pil_crops_them(tmp_path):
    class Model:
        class config:
            vision = None

    root = write_aro(tmp_path)
    graphs = RefGraphs(Model(), {"graph_type": "hetero", "token_source": "slic"}, root)
    ref = {"file": str(root / "images" / "0.jpg"), "box": [-3, 5, 30, 60]}
    image, _ = graphs.image_and_graph(ref)
    assert image.shape == (60, 30, 3) and (image[:, :3] == 0).all() and (image[35:] == 0).all()
    graph = graphs(ref)
    assert graph["image"].num_nodes == 1 and graph["object"].num_nodes >= 1


def test_cli_prints_a_table_per_benchmark_and_records_everything(checkpoint, tmp_path, capsys):
    aro = write_aro(tmp_path / "aro")
    data, images = write_sugarcrepe(tmp_path / "sugarcrepe", subsets=("add_obj", "swap_att"))
    output = tmp_path / "results.json"
    common = ["--checkpoint", str(checkpoint), "--token-source", "slic", "--output", str(output)]
    with pytest.raises(SystemExit, match="error: .*add_att.json does not exist"):
        compositional_main(
            common + ["--suite", "sugarcrepe", "--benchmark-root", str(data), "--image-root", str(images)]
        )
    capsys.readouterr()
    results = compositional_main(
        common
        + [
            "--suite",
            "sugarcrepe",
            "--benchmark-root",
            str(data),
            "--image-root",
            str(images),
            "--skip-missing-subsets",
        ]
    )
    out = capsys.readouterr().out
    assert out.startswith("sugarcrepe: 6 items; mean_of_subsets")
    assert "subsets skipped (--skip-missing-subsets): add_att, replace_obj" in out
    written = json.loads(output.read_text())
    assert written == json.loads(json.dumps(results))
    record = written[0]
    assert record["checkpoint"] == str(checkpoint) and set(record["subsets"]) == {"add_obj", "swap_att"}
    assert record["files"]["add_obj.json"] == hashlib.sha256((data / "add_obj.json").read_bytes()).hexdigest()
    assert record["approximations"] == [] and record["source"] == "RAIVNLab/sugar-crepe: main_eval.py"

    results = compositional_main(common + ["--suite", "aro-relation", "--benchmark-root", str(aro)])
    assert results[0]["headline"]["name"] == "macro_acc" and set(results[0]["subsets"]) == {
        "eating",
        "near",
        "on",
        "with",
    }
    first = output.with_name("first.json")
    output.rename(first)

    wino = write_winoground(tmp_path / "winoground")
    compositional_main(common + ["--suite", "winoground", "--benchmark-root", str(wino)])
    picture = plot_main([str(first), str(output), "--out", str(tmp_path / "bars.png")])
    assert Image.open(picture).size[0] >= 600


def test_a_missing_image_is_a_clean_error(checkpoint, tmp_path):
    root = write_winoground(tmp_path)
    (root / "images" / "ex_0_img_0.png").unlink()
    with pytest.raises(SystemExit, match=r"error: .*examples.jsonl:1: image .*ex_0_img_0.png does not exist"):
        compositional_main(["--checkpoint", str(checkpoint), "--suite", "winoground", "--benchmark-root", str(root)])
