import numpy as np
import pytest

from data import SyntheticGraphs
from data.synthetic import make_scene
from evaluate.probe import probe_accuracy, run_probe
from evaluate.tcas import BACKGROUND, compare, region_masks, tcas_score


def test_tcas_of_perfectly_aligned_and_of_shared_tokens():
    classes = np.array([0, 0, 1, 1, 2, 2])
    aligned = tcas_score(classes, np.array([0, 0, 1, 1, 2, 2]), 3, 3)
    assert aligned["tcas"] == 0.0 and aligned["purity"] == 1.0 and aligned["nmi"] == pytest.approx(1.0)
    shared = tcas_score(classes, np.array([0, 1, 0, 1, 0, 1]), 3, 2)
    assert shared["tcas"] == pytest.approx(1.0) and shared["purity"] == pytest.approx(2 / 6)
    # a second way: two classes with token distributions (1, 1, 0) and (0, 1, 1) -> cosine 1/2
    half = tcas_score(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 2]), 2, 3)
    assert half["tcas"] == pytest.approx(0.5)


@pytest.mark.parametrize("kind", ["patches", "random"])
def test_partitions_cover_every_pixel_once(kind):
    scene = make_scene(0, "test", 0)
    masks = region_masks(kind, scene, np.random.default_rng(0))
    assert (masks.sum(axis=0) == 1).all()


def test_object_tokens_align_with_classes_better_than_a_random_partition():
    rows = {r["tokenizer"]: r for r in compare(count=40, ks=[16])}
    assert rows["objects"]["tcas"] < rows["patches"]["tcas"] < rows["random"]["tcas"]
    assert BACKGROUND == 5


def test_probe_learns_a_separable_label():
    import torch

    x = torch.cat([torch.randn(40, 3) + 4, torch.randn(40, 3) - 4])
    y = torch.tensor([0] * 40 + [1] * 40)
    assert probe_accuracy(x, y, x, y) == 1.0
    with pytest.raises(ValueError, match="at least two classes"):
        probe_accuracy(x, torch.zeros(80, dtype=torch.long), x, y)


def test_probe_of_a_trained_checkpoint(tmp_path):
    from helpers import train_tiny

    from models.checkpoint import load_checkpoint, model_from_checkpoint

    train_tiny(tmp_path, tmp_path / "run")
    model = model_from_checkpoint(load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt"))
    result = run_probe(model, SyntheticGraphs("train", 80), SyntheticGraphs("test", 40))
    assert set(result) == {"image_probe_acc", "image_majority", "object_probe_acc"}
    assert all(0 <= v <= 1 for v in result.values())
