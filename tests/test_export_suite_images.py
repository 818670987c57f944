import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from export_suite_images import main as export_main  # noqa: E402
from export_suite_images import scene_of  # noqa: E402

from data.images import dense_masks  # noqa: E402
from evaluate.suites import read_suite, synthetic_suite  # noqa: E402
from graphs.schema import PREDICATES  # noqa: E402
from graphs.tokens import read_tokens_file  # noqa: E402


def test_an_exported_suite_holds_the_drawn_images_and_their_exact_tokens(tmp_path):
    counts = export_main(["--suite", "winoground-synthetic", "--world", "v4", "--count", "4", "--out", str(tmp_path)])
    original = synthetic_suite("winoground-synthetic", 4, world="v4")
    exported = read_suite(tmp_path / "suite.jsonl")
    assert counts == {"items": 4, "images": 8} and len(exported) == 4
    tokens = read_tokens_file(tmp_path / "tokens.jsonl")
    for before, after in zip(original, exported, strict=True):
        assert before["captions"] == after["captions"]
        for ref, file_ref in zip(before["images"], after["images"], strict=True):
            scene = scene_of(ref)
            assert np.array_equal(np.asarray(Image.open(tmp_path / file_ref["file"])), scene.image)
            line = tokens[file_ref["file"]]
            assert np.array_equal(dense_masks(line.masks), scene.masks) and line.labels == scene.labels
            assert line.triplets == [(s, PREDICATES[p], o) for s, p, o in scene.triplets]  # by name


def test_exporting_a_held_out_suite_outside_world_v4_is_an_error(tmp_path):
    import pytest

    with pytest.raises(SystemExit, match="needs world v4"):
        export_main(["--suite", "heldout-winoground", "--world", "v3", "--out", str(tmp_path)])
    assert not (tmp_path / "suite.jsonl").exists()
