import numpy as np
from helpers import square_masks

from graphs import EDGE_RANK, EDGE_TYPES, NODE_TYPES, PREDICATES, build_graph, to_networkx
from graphs.schema import OBJECT, RELATION


def test_networkx_counts_and_attributes_match_the_graph():
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    masks = square_masks(64, [(2, 2, 10), (30, 2, 10), (2, 30, 10), (40, 40, 16)])
    data = build_graph(image, masks, labels=[5, 6, 7, 8])
    graph = to_networkx(data)
    assert graph.number_of_nodes() == sum(data[t].num_nodes for t in NODE_TYPES)
    assert graph.number_of_edges() == sum(data[et].edge_index.size(1) for et in EDGE_TYPES)
    for edge_type in EDGE_TYPES:
        found = [(u, v) for u, v, a in graph.edges(data=True) if a["type"] == edge_type[1]]
        assert len(found) == data[edge_type].edge_index.size(1)
        assert all(graph.edges[u, v, edge_type[1]]["rank"] == EDGE_RANK[edge_type] for u, v in found)
    node = graph.nodes["object:3"]
    assert node["type"] == OBJECT and node["index"] == 3 and node["label"] == 8
    assert np.allclose(node["box"], data[OBJECT].box[3].tolist())
    assert data[RELATION].num_nodes > 0  # else the checks of relations below check nothing
    for r in range(data[RELATION].num_nodes):
        predicate = PREDICATES[int(data[RELATION].predicate[r])]
        assert graph.nodes[f"relation:{r}"]["label"] == predicate
        (subject,) = [u for u, _, k in graph.in_edges(f"relation:{r}", keys=True) if k == "subject_of"]
        edge = graph.edges[subject, f"relation:{r}", "subject_of"]
        assert edge["predicate"] == predicate
        objects = [v for _, v, k in graph.out_edges(f"relation:{r}", keys=True) if k == "has_object"]
        assert len(objects) == 1
        assert graph.edges[subject, objects[0], "related"]["predicate"] == predicate
    assert graph.nodes["image:0"]["label"] is None


def test_networkx_of_an_empty_image():
    data = build_graph(np.zeros((8, 8, 3), np.uint8), np.zeros((0, 8, 8), bool))
    graph = to_networkx(data)
    assert list(graph.nodes) == ["image:0"] and graph.number_of_edges() == 0
