"""Several twins per scene (--twins-per-scene): each reverses another relation, and each batch
carries one of them per graph, drawn per (seed, epoch, graph)."""

import numpy as np
import pytest
import torch

from data.cache import BadItem, build_uncached
from data.datasets import GraphDataset, SyntheticBuilder, SyntheticTwinBuilder, twin_name, twin_owner
from data.loader import GraphLoader, Twins
from data.negatives import statement_holds, twin_scene, twin_scenes
from data.synthetic import make_scene

SIZE = 24


@pytest.mark.parametrize("world", ["v3", "v4"])
def test_twin_scenes_reverse_distinct_relations_and_the_first_is_twin_scene(world):
    arrow_and_spatial = 0
    for k in range(30):
        scene = make_scene(0, "train", k, 96, world)
        made = twin_scenes(scene, count=3)
        one = twin_scene(scene)
        assert (one is None) == (not made)
        if one is not None:
            assert np.array_equal(made[0][0].image, one[0].image) and made[0][1:] == one[1:]
        # a prefix: fewer asked, the same first ones (each item of the cache builds its own variant)
        for count in (1, 2):
            fewer = twin_scenes(scene, count=count)
            assert len(fewer) == min(count, len(made))
            assert all(np.array_equal(a[0].image, b[0].image) for a, b in zip(fewer, made, strict=False))
        for twin, true, swapped in made:
            assert statement_holds(scene, true) and not statement_holds(twin, true)
            assert statement_holds(twin, swapped) and not statement_holds(scene, swapped)
        assert len({true for _, true, _ in made}) == len(made)  # each reverses another relation
        for a in range(len(made)):
            for b in range(a):
                assert not np.array_equal(made[a][0].image, made[b][0].image)
        # the arrow turned round (first, when it can be), then spatial twins: the arrow kept, two objects swapped
        turned = [twin.arrows != scene.arrows for twin, _, _ in made]
        assert turned[1:] == [False] * len(turned[1:])
        for twin, _, _ in made[1:] if turned and turned[0] else made:
            assert sum(a.centre != b.centre for a, b in zip(scene.objects, twin.objects, strict=True)) == 2
        arrow_and_spatial += bool(scene.arrows and len(made) >= 2 and turned[0])
    assert arrow_and_spatial > 0  # with K >= 2 some arrow scenes get a spatial twin as well


def twin_world(variants: int, world: str = "v3"):
    """The graphs of SIZE scenes and their twins, up to `variants` per scene."""
    store = build_uncached(SyntheticBuilder("train", SIZE, negatives=["relation"], world=world))
    builder = SyntheticTwinBuilder("train", SIZE, world=world, variants=variants)
    return store, Twins.align(build_uncached(builder, "skip"), store, variants)


def test_the_builder_makes_each_variant_and_keys_the_cache_by_the_count():
    one, two = SyntheticTwinBuilder("train", 6), SyntheticTwinBuilder("train", 6, variants=2)
    assert len(one) == 6 and len(two) == 12
    assert "twins_per_scene" not in one.fingerprint()  # K = 1 keeps the cache key of a single twin
    assert two.fingerprint() == {**one.fingerprint(), "twins_per_scene": 2}
    for k in range(6):
        made = twin_scenes(make_scene(0, "train", k), count=2)
        for variant in range(2):
            if variant < len(made):
                graph, name = two.build(2 * k + variant)
                assert name == twin_name(f"train/{k}", variant) and twin_owner(name) == (f"train/{k}", variant)
                assert graph.captions == [made[variant][2], made[variant][1]]
                if variant == 0:
                    assert one.build(k)[1] == name and one.build(k)[0].captions == graph.captions
            else:
                with pytest.raises(BadItem):
                    two.build(2 * k + variant)
    with pytest.raises(ValueError, match="at least 1"):
        SyntheticTwinBuilder("train", 6, variants=0)


def test_twins_align_by_name_and_variant_and_count_the_scenes():
    store, twins = twin_world(2)
    assert twins.row.shape == (SIZE, 2)
    have = [len(twin_scenes(make_scene(0, "train", k), count=2)) for k in range(SIZE)]
    assert ((twins.row >= 0).sum(1)).tolist() == have
    assert twins.counts() == [have.count(n) for n in range(3)]
    for k in range(SIZE):
        for variant in range(have[k]):
            assert twins.store.names[int(twins.row[k, variant])] == twin_name(store.names[k], variant)


def make_loader(store, twins, epoch: int, workers: int = 0) -> GraphLoader:
    loader = GraphLoader(
        GraphDataset(store), 8, shuffle=True, seed=5, pick_caption=True, twins=twins, workers=workers
    )
    loader.set_epoch(epoch)
    return loader


def picks(loader: GraphLoader) -> dict[str, str]:
    """{graph: the twin it got} over one epoch, checking each batch's twins and texts."""
    chosen = {}
    for batch in loader:
        owners = [twin_owner(name)[0] for name in batch.twins.name]
        assert owners == [n for n in batch.name if n in owners]  # one per graph at most, in batch order
        store = loader.twins.store
        assert batch.texts[len(batch.name) :] == [store.captions[store.names.index(n)][0] for n in batch.twins.name]
        chosen.update(zip(owners, batch.twins.name, strict=True))
    return chosen


@pytest.fixture(scope="module")
def two_twins():
    return twin_world(2)


def test_the_loader_picks_existing_variants_deterministically_and_each_over_epochs(two_twins):
    store, twins = two_twins
    seen: dict[str, set[str]] = {}
    for epoch in range(12):
        chosen = picks(make_loader(store, twins, epoch))
        assert chosen == picks(make_loader(store, twins, epoch))  # same seed and epoch, same choice
        # exactly the graphs with a twin get one, and only a twin they have
        assert set(chosen) == {store.names[k] for k in range(SIZE) if twins.row[k, 0] >= 0}
        for owner, name in chosen.items():
            assert twins.store.names.index(name) in twins.row[store.names.index(owner)].tolist()
            seen.setdefault(owner, set()).add(name)
    for k in range(SIZE):
        have = int((twins.row[k] >= 0).sum())
        if have:
            assert seen[store.names[k]] == {twin_name(store.names[k], v) for v in range(have)}
    assert any(len(names) == 2 for names in seen.values())


@pytest.mark.slow
def test_loader_workers_pick_the_same_twins(two_twins):
    store, twins = two_twins
    assert picks(make_loader(store, twins, 3, workers=1)) == picks(make_loader(store, twins, 3))


def test_one_twin_per_scene_makes_the_batches_a_single_twin_made():
    """K = 1 batches: each graph's single twin, as before there were several (no draw is made)."""
    store, twins = twin_world(1)
    assert twins.row.shape == (SIZE, 1)
    loader = make_loader(store, twins, 2)
    assert loader.twin_draws() is None and all(plan.twin_draws is None for plan in loader.plans)
    made = {f"train/{k}": twin_scene(make_scene(0, "train", k)) for k in range(SIZE)}
    for batch in loader:
        expected = [n for n in batch.name if made[n] is not None]
        assert batch.twins.name == expected
        assert batch.texts[len(batch.name) :] == [made[n][2] for n in expected]


def test_a_resumed_epoch_picks_the_twins_of_the_uninterrupted_one(two_twins):
    store, twins = two_twins
    whole = list(make_loader(store, twins, 4).iterate())
    tail = list(make_loader(store, twins, 4).iterate(start=1))
    assert [b.twins.name for b in whole[1:]] == [b.twins.name for b in tail]
    assert [b.texts for b in whole[1:]] == [b.texts for b in tail]
    assert torch.equal(whole[-1].blocked, tail[-1].blocked)


def test_a_twin_stores_the_scenes_caption_it_reverses_false_of_it_and_a_negative_of_it():
    builder = SyntheticTwinBuilder("train", SIZE, world="v4", variants=2)
    built = 0
    for index in range(len(builder)):
        try:
            scene, twin, twin_caption, reversed_caption = builder.twin(index)
        except BadItem:
            continue
        graph, _ = builder.build(index)
        assert graph.captions == [twin_caption, reversed_caption]
        assert statement_holds(scene, reversed_caption) and not statement_holds(twin, reversed_caption)
        assert reversed_caption in graph.negatives[0] and graph.negatives[1] == []
        assert all(not statement_holds(twin, c) for c in graph.negatives[0])
        built += 1
    assert built > SIZE // 2


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_twin_caption_share_tells_the_scene_the_relation_its_twin_reverses(two_twins, share):
    store, twins = two_twins
    plain = list(make_loader(store, twins, 3))
    loader = GraphLoader(GraphDataset(store), 8, shuffle=True, seed=5, pick_caption=True, twins=twins,
                         twin_caption_share=share)
    loader.set_epoch(3)
    paired, told = 0, 0
    for batch, before in zip(loader, plain, strict=True):
        assert batch.twins.name == before.twins.name  # the same twins, the same draws otherwise
        assert batch.negative_texts == before.negative_texts
        rows = [twins.store.names.index(n) for n in batch.twins.name]
        owners = [batch.name.index(twin_owner(n)[0]) for n in batch.twins.name]
        for t, (owner, row) in enumerate(zip(owners, rows, strict=True)):
            reversed_caption = twins.store.captions[row][1]
            if batch.texts[owner] == reversed_caption:
                told += 1
                # the scene's caption is contrasted with its twin (false of it), the twin's with the scene
                assert not batch.blocked[len(batch.name) + t, owner]
            else:
                assert batch.texts[owner] == before.texts[owner]
            paired += 1
        untwinned = [k for k in range(len(batch.name)) if k not in owners]
        assert [batch.texts[k] for k in untwinned] == [before.texts[k] for k in untwinned]
    if share == 0.0:
        assert told == 0 or all(b.texts == p.texts for b, p in zip(loader, plain, strict=True))
    elif share == 1.0:
        assert told == paired
    else:
        assert 0 < told < paired
    again = GraphLoader(GraphDataset(store), 8, shuffle=True, seed=5, pick_caption=True, twins=twins,
                        twin_caption_share=share)
    again.set_epoch(3)
    assert [b.texts for b in again] == [b.texts for b in loader]  # drawn per (seed, epoch, graph)


def test_extra_caption_mode_keeps_the_drawn_captions_and_adds_the_tellings_after_the_twins(two_twins):
    store, twins = two_twins
    kwargs = {"shuffle": True, "seed": 5, "pick_caption": True, "twins": twins, "twin_caption_share": 1.0}
    replaced = GraphLoader(GraphDataset(store), 8, **kwargs)
    extra = GraphLoader(GraphDataset(store), 8, twin_caption_mode="extra", **kwargs)
    plain = GraphLoader(GraphDataset(store), 8, shuffle=True, seed=5, pick_caption=True, twins=twins)
    for loader in (replaced, extra, plain):
        loader.set_epoch(3)
    checked = 0
    for batch, told, before in zip(extra, replaced, plain, strict=True):
        size, count = len(batch.name), batch.twins.num_graphs
        owners = [batch.name.index(twin_owner(n)[0]) for n in batch.twins.name]
        assert batch.texts[: size + count] == before.texts  # the drawn captions and the twins' own, unchanged
        tellings = [told.texts[o] for o in owners]  # what `replace` puts in their place
        assert batch.texts[size + count :] == tellings and batch.extra_owners.tolist() == owners
        assert batch.blocked.shape == (size + count, size + count + count + len(batch.negative_texts))
        for e, owner in enumerate(owners):
            assert batch.blocked[owner, size + count + e]  # no negative of its own scene
            assert not batch.blocked[size + e, size + count + e]  # a negative of the scene's twin
        assert torch.equal(batch.blocked[:, : size + count], before.blocked[:, : size + count])  # as without tellings
        assert torch.equal(batch.blocked[:, size + 2 * count :], before.blocked[:, size + count :])
        checked += count
    assert checked > 0
    with pytest.raises(ValueError, match="twin_caption_mode"):
        GraphLoader(GraphDataset(store), 8, twin_caption_mode="append", **kwargs)


def test_twin_caption_share_is_refused_without_twins_or_outside_zero_to_one(two_twins):
    store, twins = two_twins
    with pytest.raises(ValueError, match="twin_caption_share"):
        GraphLoader(GraphDataset(store), 8, pick_caption=True, twin_caption_share=0.5)
    with pytest.raises(ValueError, match="twin_caption_share"):
        GraphLoader(GraphDataset(store), 8, pick_caption=True, twins=twins, twin_caption_share=1.5)
