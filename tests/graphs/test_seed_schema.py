"""The seed paper's edge schema: rank matrices of hand-built scenes, batches, names."""

import numpy as np
import pytest
import torch

from data.store import GraphStore
from graphs.build import build_graph
from graphs.convert import to_networkx
from graphs.schema import SEED_EDGE_TYPES, check_graph, edge_schema_of
from graphs.seed import rank_matrix, to_seed_schema
from graphs.transforms import DropEdgeTypes
from tests.helpers import square_masks

CANVAS = 64


def scene_graph(squares, triplets):
    image = np.zeros((CANVAS, CANVAS, 3), dtype=np.uint8)
    return build_graph(image, square_masks(CANVAS, squares), triplets=triplets)


def row_scene():
    """Three objects on a row, centres x = 10, 30, 59; object 0 is left of object 1."""
    return scene_graph([(5, 5, 10), (25, 5, 10), (55, 5, 8)], [(0, "left of", 1)])


def concentric_scene():
    """Objects 0..4 share the centre (20, 20); object 5 is far away. Triplets
    (1 inside 3) and (5 near 4): the second relation token must get its own ranks."""
    squares = [(19, 19, 2), (18, 18, 4), (17, 17, 6), (16, 16, 8), (15, 15, 10), (50, 50, 6)]
    return scene_graph(squares, [(1, "inside", 3), (5, "near", 4)])


def test_row_scene_rank_matrix():
    seed = to_seed_schema(row_scene())
    # tokens: o0 o1 o2 r0; rows = queries, columns = keys
    expected = [
        [0, 7, 3, 6],  # o0 -> o1 is subject -> object (7 beats nearest 4); o2 is its 2nd nearest
        [4, 0, 3, 6],  # object -> subject gets only its own nearest rank
        [3, 4, 0, 0],
        [5, 5, 0, 0],  # the relation token -> its subject and object
    ]
    assert rank_matrix(seed).tolist() == expected


def test_concentric_scene_rank_matrix():
    seed = to_seed_schema(concentric_scene())
    # tokens: o0..o5, r0 (1 inside 3), r1 (5 near 4). Among tied centres the lower index is
    # nearer; object 4 is not among its own 4 closest (0..3 come first), so it alone has a 4th
    # nearest (rank 1).
    expected = [
        [0, 4, 3, 2, 0, 0, 0, 0],
        [4, 0, 3, 7, 0, 0, 6, 0],
        [4, 3, 0, 2, 0, 0, 0, 0],
        [4, 3, 2, 0, 0, 0, 6, 0],
        [4, 3, 2, 1, 0, 0, 0, 6],
        [4, 3, 2, 0, 7, 0, 0, 6],
        [0, 5, 0, 5, 0, 0, 0, 0],
        [0, 0, 0, 0, 5, 5, 0, 0],
    ]
    assert rank_matrix(seed).tolist() == expected


def test_every_seed_type_present_and_checked():
    seed = to_seed_schema(scene_graph([(5, 5, 10)], []))  # one object, nothing to link
    assert tuple(seed.edge_types) == SEED_EDGE_TYPES
    assert all(seed[et].edge_index.shape == (2, 0) for et in SEED_EDGE_TYPES)
    check_graph(seed, "seed")
    assert edge_schema_of(seed) == "seed"
    with pytest.raises(ValueError, match="semgraph edge schema"):
        check_graph(seed)


def test_a_collated_batch_converts_like_each_graph():
    graphs = [row_scene(), concentric_scene(), scene_graph([(5, 5, 10)], [])]
    batch = to_seed_schema(GraphStore.from_graphs(graphs).collate([1, 0, 2]))
    singles = [to_seed_schema(graphs[k]) for k in (1, 0, 2)]
    objects = np.cumsum([0] + [g["object"].num_nodes for g in singles])
    relations = np.cumsum([0] + [g["relation"].num_nodes for g in singles])
    shift = {"object": objects, "relation": relations}
    for src, rel, dst in SEED_EDGE_TYPES:
        expected = torch.cat(
            [
                g[src, rel, dst].edge_index + torch.tensor([[shift[src][k]], [shift[dst][k]]])
                for k, g in enumerate(singles)
            ],
            dim=1,
        )
        got = batch[src, rel, dst].edge_index
        assert sorted(map(tuple, got.t().tolist())) == sorted(map(tuple, expected.t().tolist())), rel


def test_drop_edge_types_names_belong_to_the_schema():
    seed = DropEdgeTypes(["nearest_1"], "seed")(to_seed_schema(row_scene()))
    assert rank_matrix(seed).tolist()[1] == [0, 0, 3, 6]  # o1 -> o0 was its 1st nearest
    with pytest.raises(ValueError, match="seed edge schema"):
        DropEdgeTypes(["near"], "seed")
    with pytest.raises(ValueError, match="semgraph edge schema"):
        DropEdgeTypes(["nearest_1"])


def test_graphml_view_names_the_schema_and_the_papers_ranks():
    graph = to_networkx(to_seed_schema(row_scene()))
    assert graph.graph["edge_schema"] == "seed"
    ranks = {attrs["type"]: attrs["rank"] for _, _, attrs in graph.edges(data=True)}
    assert ranks == {"subject_to_object": 7, "to_relation": 6, "to_participant": 5, "nearest_1": 4, "nearest_2": 3}
    predicates = {attrs.get("predicate") for _, _, attrs in graph.edges(data=True) if attrs["rank"] >= 5}
    assert predicates == {"left of"}


def test_rams_psg_predicates_are_in_the_vocabulary():
    from graphs.schema import PREDICATES, PSG_PREDICATES, predicate_id

    assert len(PSG_PREDICATES) == 56 and len(set(PREDICATES)) == len(PREDICATES)
    for name in PSG_PREDICATES:
        assert PREDICATES[predicate_id(name)] == ("next to" if name == "beside" else name)
    assert PREDICATES[predicate_id("Leaning  against")] == "leaning on"
    assert PREDICATES[predicate_id("zorbing", strict=False)] == "other" == PREDICATES[-1]


def test_data_flags_check_dropped_types_against_the_chosen_schema():
    import argparse

    from data.cli import add_data_arguments, data_options

    parser = argparse.ArgumentParser()
    add_data_arguments(parser)
    options = data_options(parser.parse_args(["--edge-schema", "seed", "--drop-edge-types", "nearest_4,to_relation"]))
    assert (options.edge_schema, options.drop_edge_types) == ("seed", ["nearest_4", "to_relation"])
    with pytest.raises(SystemExit, match="'near' in the seed edge schema"):
        data_options(parser.parse_args(["--edge-schema", "seed", "--drop-edge-types", "near"]))


# seed-directed: the seed's ranks with a relation token's subject and object on types of their own
# (9 subject -> object, 8 subject -> relation, 7 object -> relation, 6 relation -> subject,
# 5 relation -> object, 4..1 the nearest).
SEED_OF_DIRECTED = {0: 0, 9: 7, 8: 6, 7: 6, 6: 5, 5: 5, 4: 4, 3: 3, 2: 2, 1: 1}


def test_row_scene_rank_matrix_directed():
    directed = to_seed_schema(row_scene(), directed=True)
    assert edge_schema_of(directed) == "seed-directed"
    check_graph(directed, "seed-directed")
    expected = [
        [0, 9, 3, 8],  # o0, the subject: -> o1 (subject -> object), -> r0 as its subject
        [4, 0, 3, 7],  # o1, the object: -> r0 as its object, one rank below
        [3, 4, 0, 0],
        [6, 5, 0, 0],  # r0 -> its subject above r0 -> its object
    ]
    assert rank_matrix(directed).tolist() == expected


@pytest.mark.parametrize("scene", [row_scene, concentric_scene])
def test_directed_ranks_merge_into_the_papers(scene):
    """Each pair's directed rank, its two triplet ends merged again, is the paper's rank."""
    directed = rank_matrix(to_seed_schema(scene(), directed=True))
    merged = directed.apply_(SEED_OF_DIRECTED.__getitem__)
    assert torch.equal(merged, rank_matrix(to_seed_schema(scene())))


def test_only_the_directed_schema_tells_subject_from_object_at_the_relation_token():
    def relation_row(subject, directed):  # the relation token's ranks to o0, o1, itself
        graph = scene_graph([(5, 5, 10), (25, 5, 10)], [(subject, "left of", 1 - subject)])
        return rank_matrix(to_seed_schema(graph, directed))[2]

    rows = {name: [relation_row(s, name == "directed") for s in (0, 1)] for name in ("seed", "directed")}
    assert torch.equal(*rows["seed"])  # [5, 5, 0] both ways
    assert rows["directed"][0].tolist() == [6, 5, 0] and rows["directed"][1].tolist() == [5, 6, 0]


def test_graphml_view_of_the_directed_schema():
    graph = to_networkx(to_seed_schema(row_scene(), directed=True))
    assert graph.graph["edge_schema"] == "seed-directed"
    ranks = {attrs["type"]: attrs["rank"] for _, _, attrs in graph.edges(data=True)}
    assert ranks == {
        "subject_to_object": 9,
        "subject_to_relation": 8,
        "object_to_relation": 7,
        "to_subject": 6,
        "to_object": 5,
        "nearest_1": 4,
        "nearest_2": 3,
    }
    ends = {attrs["type"]: (u, v) for u, v, attrs in graph.edges(data=True) if attrs.get("predicate") == "left of"}
    assert ends == {
        "subject_to_object": ("object:0", "object:1"),
        "subject_to_relation": ("object:0", "relation:0"),
        "object_to_relation": ("object:1", "relation:0"),
        "to_subject": ("relation:0", "object:0"),
        "to_object": ("relation:0", "object:1"),
    }


def test_a_collated_batch_converts_like_each_graph_directed():
    from graphs.schema import SEED_DIRECTED_EDGE_TYPES

    graphs = [row_scene(), concentric_scene()]
    batch = to_seed_schema(GraphStore.from_graphs(graphs).collate([1, 0]), directed=True)
    singles = [to_seed_schema(graphs[k], directed=True) for k in (1, 0)]
    for src, rel, dst in SEED_DIRECTED_EDGE_TYPES:
        shift = torch.tensor([[singles[0][src].num_nodes], [singles[0][dst].num_nodes]])
        expected = torch.cat([singles[0][src, rel, dst].edge_index, singles[1][src, rel, dst].edge_index + shift], 1)
        got = batch[src, rel, dst].edge_index
        assert sorted(map(tuple, got.t().tolist())) == sorted(map(tuple, expected.t().tolist())), rel
