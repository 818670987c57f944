import pytest

from data.negatives import NEGATIVE_KINDS, hard_negatives, statement_holds
from data.synthetic import make_scene


@pytest.fixture(scope="module")
def scenes():
    return [make_scene(0, "train", index) for index in range(150)]


def test_the_checker_reads_every_true_caption_as_true(scenes):
    for scene in scenes:
        for caption in scene.captions:
            assert statement_holds(scene, caption), caption


def test_negatives_are_false_for_their_scene_and_never_the_positive(scenes):
    made = {kind: 0 for kind in NEGATIVE_KINDS}
    for scene in scenes:
        for caption in scene.captions:
            for kind in NEGATIVE_KINDS:
                for negative in hard_negatives(scene, caption, (kind,)):
                    made[kind] += 1
                    assert negative != caption and negative not in scene.captions
                    assert not statement_holds(scene, negative), (caption, negative)
                    assert sorted(negative.split()) == sorted(caption.split()) or kind == "attribute"
    assert all(count > 100 for count in made.values()), made


def test_known_negatives_of_a_drawn_scene():
    import numpy as np

    from data.synthetic import SceneObject, render_scene

    objects = [
        SceneObject("circle", "red", "small", (20.0, 48.0)),
        SceneObject("square", "blue", "large", (70.0, 48.0)),
    ]
    scene = render_scene(objects, np.random.default_rng(0))
    caption = "a small red circle to the left of a large blue square"
    assert statement_holds(scene, caption)
    relation, attribute = hard_negatives(scene, caption, ("relation", "attribute"), seed=1)
    assert relation == "a large blue square to the left of a small red circle"
    assert attribute in (
        "a small blue circle to the left of a large red square",
        "a large red circle to the left of a small blue square",
    )


def test_unknown_kind_is_an_error():
    with pytest.raises(ValueError, match="unknown hard negative 'colour'"):
        hard_negatives(make_scene(0, "train", 0), "a small red circle", ("colour",))


def test_a_batch_with_hard_negatives_has_the_shapes_the_loss_expects():
    import torch
    import torch.nn.functional as F

    from data.datasets import GraphDataset, SyntheticBuilder
    from data.loader import GraphLoader
    from data.store import GraphStore
    from train.loop import hard_negative_clip_loss

    builder = SyntheticBuilder("train", 12, negatives=NEGATIVE_KINDS)
    store = GraphStore.from_graphs([builder.build(k)[0] for k in range(12)])
    assert len(store.negatives) == 12 and all(
        len(n) == len(c) for n, c in zip(store.negatives, store.captions, strict=True)
    )
    batch = next(iter(GraphLoader(GraphDataset(store), 6, shuffle=True, pick_caption=True)))
    assert len(batch.texts) == 6 and len(batch.negative_texts) >= 6
    image = F.normalize(torch.randn(6, 8), dim=1)
    text = F.normalize(torch.randn(6 + len(batch.negative_texts), 8), dim=1)
    loss = hard_negative_clip_loss(image, text, torch.tensor(10.0))
    assert loss.shape == () and torch.isfinite(loss)
    # a second way: with no negatives it is the plain symmetric CLIP loss
    from open_clip.loss import ClipLoss

    assert torch.isclose(
        hard_negative_clip_loss(image, text[:6], torch.tensor(10.0)), ClipLoss()(image, text[:6], torch.tensor(10.0))
    )


def test_training_with_hard_negatives(tmp_path):
    from helpers import train_tiny

    final = train_tiny(tmp_path, tmp_path / "run", "--hard-negatives", "relation,attribute")
    assert final["epoch"] == 1
