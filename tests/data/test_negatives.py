import pytest

from data.negatives import NEGATIVE_KINDS, hard_negatives, statement_holds
from data.synthetic import make_scene
from graphs.schema import PREDICATES


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


def test_twins_reverse_one_relation_and_are_checked_both_ways(scenes):
    from data.negatives import twin_scene
    from data.synthetic import describe_triplet

    kinds = {"arrow": 0, "spatial": 0, "none": 0}
    for scene in scenes:
        made = twin_scene(scene)
        if made is None:
            kinds["none"] += 1
            continue
        twin, true, swapped = made
        assert statement_holds(scene, true) and not statement_holds(twin, true)
        assert statement_holds(twin, swapped) and not statement_holds(scene, swapped)
        assert sorted(true.split()) == sorted(swapped.split()) and true != swapped
        assert sorted(o.phrase for o in twin.objects) == sorted(o.phrase for o in scene.objects)
        if " pointing at " in true:  # the same picture with the arrow turned round
            kinds["arrow"] += 1
            assert [o.centre for o in twin.objects] == [o.centre for o in scene.objects]
            assert twin.arrows == [scene.arrows[0][::-1]]
            (tail, head) = scene.arrows[0]
            assert true == describe_triplet(scene, (tail, PREDICATES.index("points at"), head))
        else:  # two objects in each other's places, the others where they were
            kinds["spatial"] += 1
            moved = [k for k, (a, b) in enumerate(zip(scene.objects, twin.objects, strict=True)) if a != b]
            assert len(moved) == 2
            a, b = moved
            assert twin.objects[a].centre == scene.objects[b].centre
            assert twin.objects[b].centre == scene.objects[a].centre
    assert kinds["arrow"] > 30 and kinds["spatial"] > 30 and kinds["none"] < 0.3 * len(scenes), kinds


def test_a_batch_with_twins_blocks_exactly_the_pairs_that_may_hold():
    from data.datasets import GraphDataset, SyntheticBuilder, SyntheticTwinBuilder
    from data.loader import GraphLoader, Twins
    from data.negatives import twin_scene
    from data.store import GraphStore

    size = 16
    builder, twin_builder = SyntheticBuilder("train", size, negatives=["relation"]), SyntheticTwinBuilder("train", size)
    store = GraphStore.from_graphs(*zip(*(builder.build(k) for k in range(size)), strict=True))
    made = {k: twin_scene(make_scene(0, "train", k)) for k in range(size)}
    made = {k: v for k, v in made.items() if v is not None}
    twin_graphs = [twin_builder.build(k) for k in made]
    twins = Twins.align(GraphStore.from_graphs(*zip(*twin_graphs, strict=True)), store)
    assert (twins.row >= 0).sum() == len(made)
    seen = 0
    for batch in GraphLoader(GraphDataset(store), 8, shuffle=True, pick_caption=True, twins=twins):
        count, texts, negatives = batch.twins.num_graphs, batch.texts, batch.negative_texts
        assert len(texts) == 8 + count and batch.blocked.shape == (8 + count, 8 + count + len(negatives))
        assert batch.blocked[8:, 8 + count :].all() and not batch.blocked[:8].any()
        assert not batch.blocked.diagonal().any()
        owners = [batch.name.index(name) for name in batch.twins.name]
        for t, owner in enumerate(owners):
            twin, _, swapped = made[int(batch.name[owner].split("/")[1])]
            assert texts[8 + t] == swapped
            # a twin is never contrasted with its owner's caption when that caption holds for it
            assert bool(batch.blocked[8 + t, owner]) == statement_holds(twin, texts[owner])
            others = [k for k in range(8) if k != owner]
            assert not batch.blocked[8 + t, others].any()
        seen += count
    assert seen == len(made)


def test_the_loss_with_blocked_pairs_matches_a_direct_sum():
    import torch
    import torch.nn.functional as F

    from train.loop import hard_negative_clip_loss

    generator = torch.Generator().manual_seed(0)
    image = F.normalize(torch.randn(5, 8, generator=generator), dim=1)  # 3 graphs, 2 twins
    text = F.normalize(torch.randn(5 + 4, 8, generator=generator), dim=1)  # 5 captions, 4 negatives
    blocked = torch.zeros(5, 9, dtype=torch.bool)
    blocked[3:, 5:] = True
    blocked[3, 0] = True  # caption 0 may hold for twin 3
    scale = torch.tensor(7.0)
    loss = hard_negative_clip_loss(image, text, scale, blocked)
    # a second way: each cross-entropy term written out over the pairs that count
    sims = scale * image @ text.T
    i2t = [-(sims[r, r] - torch.logsumexp(sims[r][~blocked[r]], 0)) for r in range(5)]
    t2i = [-(sims[c, c] - torch.logsumexp(sims[:, c][~blocked[:, c]], 0)) for c in range(5)]
    expected = (torch.stack(i2t).mean() + torch.stack(t2i).mean()) / 2
    assert torch.isclose(loss, expected, atol=1e-6)
    assert not torch.isclose(loss, hard_negative_clip_loss(image, text, scale))


def test_the_model_embeds_twins_after_the_batch():
    import torch
    from helpers import TINY_MODEL

    from data.datasets import SyntheticTwinBuilder
    from data.store import GraphStore
    from models import GraphCLIP, GraphCLIPConfig

    torch.manual_seed(0)
    model = GraphCLIP(GraphCLIPConfig.from_dict(TINY_MODEL)).eval()
    builder = SyntheticTwinBuilder("train", 6)
    graphs = [builder.build(k) for k in range(6) if twin_scene_exists(k)]
    store = GraphStore.from_graphs(*zip(*graphs, strict=True))
    batch, twins = store.collate([0, 1]), store.collate(list(range(2, len(store))))
    tokens = model.text_encoder.tokenize(["a red circle"] * len(store))
    with torch.no_grad():
        out = model(batch, tokens, twins=twins)
        assert out.image.shape == (len(store), model.config.embed_dim)
        assert torch.allclose(out.image[2:], model.encode_graph(twins), atol=1e-6)
        assert torch.allclose(out.image[:2], model.encode_graph(batch), atol=1e-6)


def twin_scene_exists(index: int) -> bool:
    from data.negatives import twin_scene

    return twin_scene(make_scene(0, "train", index)) is not None


@pytest.mark.parametrize("graph_type", ["hetero", "homo", "patch"])
def test_training_with_hard_negative_images(tmp_path, graph_type):
    from helpers import train_tiny

    extra = ["--hard-negatives", "relation", "--hard-negative-images", "--graph-type", graph_type]
    final = train_tiny(tmp_path, tmp_path / "run", *extra)
    assert final["epoch"] == 1
    missing = sum(not twin_scene_exists(k) for k in range(32))
    assert missing > 0
    log = (tmp_path / "run" / "out.log").read_text()
    assert f"skipped {missing} of 32 items" in log and "no relation can be reversed cleanly" in log


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--hard-negative-images", "--data-on-device"], "need host batches"),
        (["--hard-negatives", "relation", "--dataset", "coco", "--coco-root", "nowhere"], "--dataset coco has none"),
    ],
)
def test_hard_negatives_are_refused_where_they_do_not_work_yet(tmp_path, capsys, flags, message):
    from helpers import train_tiny

    with pytest.raises(SystemExit):
        train_tiny(tmp_path, tmp_path / "run", *flags)
    assert message in capsys.readouterr().err


def test_the_loss_with_extra_captions_matches_a_direct_sum():
    """Extra captions (`--twin-caption-mode extra`): text e after the P captions is true of image
    owner[e]; it is scored against every image (its owner the answer, the twin a negative) and is
    no negative of its owner in the image-to-text direction."""
    import torch
    import torch.nn.functional as F

    from data.loader import blocked_pairs
    from train.loop import hard_negative_clip_loss

    generator = torch.Generator().manual_seed(0)
    image = F.normalize(torch.randn(5, 8, generator=generator), dim=1)  # 3 graphs, 2 twins (of graphs 0 and 2)
    text = F.normalize(torch.randn(5 + 2 + 3, 8, generator=generator), dim=1)  # 5 captions, 2 extras, 3 negatives
    owners = torch.tensor([0, 2])
    blocked = torch.zeros(5, 10, dtype=torch.bool)
    blocked[3:, 7:] = True
    blocked[0, 5] = blocked[2, 6] = True  # the extras are no negatives of their own images
    scale = torch.tensor(7.0)
    loss = hard_negative_clip_loss(image, text, scale, blocked, owners)
    sims = scale * image @ text.T
    i2t = [-(sims[r, r] - torch.logsumexp(sims[r][~blocked[r]], 0)) for r in range(5)]
    t2i = [-(sims[c, c] - torch.logsumexp(sims[:, c][~blocked[:, c]], 0)) for c in range(5)]
    t2i += [-(sims[o, 5 + e] - torch.logsumexp(sims[:, 5 + e], 0)) for e, o in enumerate(owners.tolist())]
    expected = (torch.stack(i2t).mean() + torch.stack(t2i).mean()) / 2
    assert torch.isclose(loss, expected, atol=1e-6)
    # no extras: the loss it always was, to the bit
    kept = [0, 1, 2, 3, 4, 7, 8, 9]
    plain = hard_negative_clip_loss(image, text[kept], scale, blocked[:, kept])
    assert torch.equal(plain, hard_negative_clip_loss(image, text[kept], scale, blocked[:, kept], owners[:0]))
    # blocked_pairs lays out the same columns: captions, twin captions, extras, negatives
    class Stored:  # a twin store whose negatives make no twin-owner pair blocked
        negatives = [[["a"]], [["c"]]]

    made = blocked_pairs(["a", "b", "c", "ta", "tc", "xa", "xc"], [0, 2], Stored(), [0, 1], 3, [0, 2])
    assert torch.equal(made, blocked)
