import networkx as nx
import pytest
import skimage.data
from helpers import write_coco
from PIL import Image

from tools.inspect_graph import main


def test_inspect_a_synthetic_scene(tmp_path, capsys):
    paths = main(["--index", "3", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert "subject_of" in printed and "captions:" in printed
    graph = nx.read_graphml(paths["graphml"])
    assert any(key.startswith("relation:") for key in graph.nodes)
    assert Image.open(paths["png"]).size[0] > 300


def test_inspect_an_ablated_coco_item(tmp_path, capsys):
    write_coco(tmp_path / "coco")
    main(
        [
            "--dataset",
            "coco",
            "--coco-root",
            str(tmp_path / "coco"),
            "--split",
            "val2017",
            "--index",
            "0",
            "--drop-edge-types",
            "near",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    printed = capsys.readouterr().out
    assert "object:1      cat" in printed
    near_row = next(line for line in printed.splitlines() if "-> near ->" in line)
    assert near_row.split()[-1] == "0"


def test_inspect_a_single_photo(tmp_path):
    photo = tmp_path / "coffee.png"
    Image.fromarray(skimage.data.coffee()[::4, ::4]).save(photo)
    paths = main(["--image", str(photo), "--token-source", "slic", "--out", str(tmp_path / "out")])
    assert nx.read_graphml(paths["graphml"]).number_of_nodes() > 3


def test_inspect_errors_are_clear(tmp_path):
    with pytest.raises(SystemExit, match="missing.png does not exist"):
        main(["--image", str(tmp_path / "missing.png"), "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        main(["--drop-edge-types", "sideways", "--out", str(tmp_path)])


def test_inspect_a_twin(tmp_path, capsys):
    from data.negatives import twin_scene
    from data.synthetic import make_scene

    _, true, swapped = twin_scene(make_scene(0, "train", 6))
    main(["--index", "6", "--twin", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert f"captions:\n  {swapped}\n" in printed and true not in printed
    with pytest.raises(SystemExit, match="no relation can be reversed cleanly"):
        main(["--index", "2", "--twin", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="--twin shows the synthetic world"):
        main(["--dataset", "coco", "--coco-root", str(tmp_path), "--twin", "--out", str(tmp_path)])


def test_inspect_with_a_checkpoint_shows_the_runs_graph(tmp_path, capsys):
    """The run trained on world seed 2 with `related` dropped: its graph, unless told otherwise."""
    from helpers import train_tiny

    train_tiny(tmp_path, tmp_path / "run", "--drop-edge-types", "related", "--seed", "2")
    checkpoint = str(tmp_path / "run" / "checkpoints" / "latest.pt")
    capsys.readouterr()
    by_run = main(["--index", "3", "--checkpoint", checkpoint, "--out", str(tmp_path / "a")])
    shown = capsys.readouterr().out
    by_hand = main(["--index", "3", "--seed", "2", "--drop-edge-types", "related", "--out", str(tmp_path / "b")])
    assert shown.split("\n", 1)[1] == capsys.readouterr().out.replace(str(tmp_path / "b"), str(tmp_path / "a"))
    assert by_run["graphml"].read_text() == by_hand["graphml"].read_text()
    assert "0" in [line.split()[-1] for line in shown.splitlines() if "related" in line]
    with pytest.raises(SystemExit, match="--drop-edge-types: the run used related, given near"):
        main(["--index", "3", "--checkpoint", checkpoint, "--drop-edge-types", "near"])


def test_inspect_a_coco_export_with_one_bad_annotation(tmp_path, capsys):
    bad = {"id": 77, "image_id": 9, "category_id": 1, "segmentation": [[1, 1, 5, 1, 5, 5]]}
    write_coco(tmp_path / "coco", extra_annotations=[bad])
    argv = ["--dataset", "coco", "--coco-root", str(tmp_path / "coco"), "--split", "val2017", "--out", str(tmp_path)]
    with pytest.raises(SystemExit, match="instances_val2017.json: annotation 77 names unknown image 9"):
        main(argv)
    main([*argv, "--on-bad-image", "skip"])
    assert "object:1      cat" in capsys.readouterr().out
