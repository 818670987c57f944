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
