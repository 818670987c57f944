"""A picture of a graph over its image: masks, boxes, tokens and typed edges.

Drawn on `matplotlib.figure.Figure` objects, never through pyplot's global
state: importing this module leaves the user's matplotlib backend as it was.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import matplotlib.patheffects as patheffects
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from torch_geometric.data import HeteroData

from graphs.schema import (
    EDGE_TYPES,
    IMAGE,
    NODE_TYPES,
    OBJECT,
    OBJECT_TO_RELATION,
    RELATION,
    SEED_EDGE_TYPES,
    SUBJECT_TO_RELATION,
    TO_OBJECT,
    TO_SUBJECT,
    edge_schema_of,
    relation_names,
    schema_ranks,
)

EDGE_COLOURS = {
    **dict(zip(EDGE_TYPES, matplotlib.colormaps["tab10"].colors, strict=False)),
    **dict(zip(SEED_EDGE_TYPES, matplotlib.colormaps["Dark2"].colors, strict=False)),
    # seed-directed: its shared types keep the seed's colours, its own ones are a dark (subject) and a
    # light (object) shade of the seed type they split: to_relation's orange, to_participant's purple
    **dict(
        zip(
            (SUBJECT_TO_RELATION, OBJECT_TO_RELATION, TO_SUBJECT, TO_OBJECT),
            ("#a64702", "#fdae6b", "#3f3a8a", "#b7b4e0"),
            strict=True,
        )
    ),
}
NODE_STYLE = {OBJECT: ("o", "white"), RELATION: ("s", "gold"), IMAGE: ("*", "deepskyblue")}


def token_positions(data: HeteroData, width: int, height: int) -> dict[str, np.ndarray]:
    """Pixel positions of every token: objects at their box centre, relations
    between their participants (nudged so they do not sit on the line), the
    global node in the top-left corner."""
    scale = np.array([width, height])
    positions = {OBJECT: data[OBJECT].box[:, :2].numpy() * scale}
    relation_centres = data[RELATION].box[:, :2].numpy() * scale
    offsets = np.stack(
        [np.cos(np.arange(len(relation_centres)) * 2.4), np.sin(np.arange(len(relation_centres)) * 2.4)], 1
    )
    positions[RELATION] = relation_centres + 0.04 * max(width, height) * offsets.reshape(-1, 2)
    positions[IMAGE] = np.array([[0.06 * width, 0.06 * height]])
    return positions


def draw_graph(
    image: np.ndarray,
    data: HeteroData,
    masks: np.ndarray | None = None,
    ax: Axes | None = None,
    title: str | None = None,
    show_legend: bool = True,
    name_tokens: bool = False,
    object_labels: Sequence[str | None] | None = None,
) -> Axes:
    """Draw `data` over `image`; masks (optional) are outlined in their box colour.

    `name_tokens` writes o0, o1, ... and r0, r1, ... beside the tokens (the rank
    matrix's names); `object_labels` names each object token (its category in the
    picture; None or "" leaves a token unnamed), written in small type beside its circle.
    """
    if ax is None:
        ax = Figure(figsize=(6, 6)).subplots()
    height, width = image.shape[:2]
    ax.imshow(image)
    if masks is not None and len(masks):
        for mask in masks:
            ax.contour(mask.astype(float), levels=[0.5], colors="white", linewidths=0.8)
    for cx, cy, w, h in data[OBJECT].box.numpy() * np.array([width, height, width, height]):
        ax.add_patch(Rectangle((cx - w / 2, cy - h / 2), w, h, fill=False, edgecolor="white", linestyle=":", lw=0.8))
    positions = token_positions(data, width, height)
    schema = edge_schema_of(data)
    edge_types = tuple(data.edge_types)
    for edge_type in reversed(edge_types):  # strongest drawn last, on top
        src, _, dst = edge_type
        for s, d in data[edge_type].edge_index.t().tolist():
            (x0, y0), (x1, y1) = positions[src][s], positions[dst][d]
            ax.annotate(
                "",
                xy=(x1, y1),
                xytext=(x0, y0),
                arrowprops=dict(
                    arrowstyle="-|>", color=EDGE_COLOURS[edge_type], lw=1.2, alpha=0.85, shrinkA=4, shrinkB=4
                ),
            )
    for node_type in NODE_TYPES:
        marker, colour = NODE_STYLE[node_type]
        xy = positions[node_type]
        if len(xy):
            ax.scatter(xy[:, 0], xy[:, 1], marker=marker, s=70, c=colour, edgecolors="black", zorder=5, label=node_type)
    names = relation_names(data)
    for r, (x, y) in enumerate(positions[RELATION]):
        ax.text(
            x,
            y - 3,
            names[r],
            fontsize=6,
            ha="center",
            va="bottom",
            color="black",
            bbox=dict(boxstyle="round,pad=0.1", fc="gold", alpha=0.7, lw=0),
            zorder=6,
        )
    if name_tokens:
        for prefix, node_type in (("o", OBJECT), ("r", RELATION)):
            for k, (x, y) in enumerate(positions[node_type]):
                ax.text(x + 4, y + 4, f"{prefix}{k}", fontsize=7, color="white", fontweight="bold", zorder=7)
    if object_labels is not None:
        draw_object_labels(ax, positions[OBJECT], object_labels, height)
    if show_legend:
        ranks = schema_ranks(schema)
        handles = [Line2D([], [], color="none", label=f"{schema} edge schema (rank. type)")]
        handles += [Line2D([], [], color=EDGE_COLOURS[et], lw=2, label=f"{ranks[et]}. {et[1]}") for et in edge_types]
        handles += [
            Line2D(
                [],
                [],
                marker=NODE_STYLE[t][0],
                color="w",
                markerfacecolor=NODE_STYLE[t][1],
                markeredgecolor="k",
                markersize=8,
                label=t,
            )
            for t in NODE_TYPES
        ]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9, wrap=True)
    return ax


def draw_rank_matrix(matrix: np.ndarray, labels: list[str], ax: Axes, title: str) -> Axes:
    """A [T, T] rank matrix as a grid of numbers (rows = queries, columns = keys)."""
    top = max(int(matrix.max()), 1)
    ax.imshow(matrix, cmap="Blues", vmin=0, vmax=top + 1)
    for (i, j), value in np.ndenumerate(matrix):
        if value:
            colour = "white" if value > top / 2 else "black"
            ax.text(j, i, str(int(value)), ha="center", va="center", fontsize=7, color=colour)
    ticks = range(len(labels))
    ax.set_xticks(ticks, labels, rotation=90, fontsize=6)
    ax.set_yticks(ticks, labels, fontsize=6)
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    ax.set_title(title, fontsize=9)
    return ax


def draw_object_labels(ax: Axes, positions: np.ndarray, labels: Sequence[str | None], height: int) -> None:
    """Each object's name just below its circle (above it near the bottom edge),
    small, black on a white halo; relation names sit above their squares, so the
    two kinds of label keep apart."""
    if len(labels) != len(positions):
        raise ValueError(f"{len(labels)} object labels for {len(positions)} object tokens")
    for (x, y), label in zip(positions, labels, strict=True):
        if not label:
            continue
        below = y < 0.92 * height
        ax.annotate(
            label,
            xy=(x, y),
            xytext=(0, -7 if below else 7),
            textcoords="offset points",
            ha="center",
            va="top" if below else "bottom",
            fontsize=6,
            color="black",
            path_effects=[patheffects.withStroke(linewidth=2, foreground="white")],
            zorder=7,
        )


def save_graph_picture(
    image: np.ndarray,
    data: HeteroData,
    path: str,
    masks: np.ndarray | None = None,
    title: str | None = None,
    rank_matrix: tuple[np.ndarray, list[str]] | None = None,
    object_labels: Sequence[str | None] | None = None,
) -> None:
    """Draw and save a PNG; with `rank_matrix` (matrix, token labels), the matrix beside the picture."""
    if rank_matrix is None:
        fig = Figure(figsize=(8, 6), dpi=120)
        ax = fig.subplots()
    else:
        fig = Figure(figsize=(15, 6.5), dpi=120)
        ax, matrix_ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.25, 1]})
        draw_rank_matrix(rank_matrix[0], rank_matrix[1], matrix_ax, "rank matrix (0 = no relationship)")
    draw_graph(image, data, masks, ax=ax, title=title, name_tokens=rank_matrix is not None, object_labels=object_labels)
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")  # the legend sits outside the axes
