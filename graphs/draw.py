"""A picture of a graph over its image: masks, boxes, tokens and typed edges."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.patheffects as patheffects  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from torch_geometric.data import HeteroData  # noqa: E402

from graphs.schema import EDGE_RANK, EDGE_TYPES, IMAGE, NODE_TYPES, OBJECT, PREDICATES, RELATION  # noqa: E402

EDGE_COLOURS = dict(zip(EDGE_TYPES, plt.get_cmap("tab10").colors, strict=False))
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
    ax: plt.Axes | None = None,
    title: str | None = None,
    show_legend: bool = True,
    object_labels: Sequence[str | None] | None = None,
) -> plt.Axes:
    """Draw `data` over `image`; masks (optional) are outlined in their box colour.

    `object_labels` names each object token (its category in the picture; None or
    "" leaves a token unnamed), written in small type beside its circle.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 6))
    height, width = image.shape[:2]
    ax.imshow(image)
    if masks is not None and len(masks):
        for mask in masks:
            ax.contour(mask.astype(float), levels=[0.5], colors="white", linewidths=0.8)
    for cx, cy, w, h in data[OBJECT].box.numpy() * np.array([width, height, width, height]):
        ax.add_patch(
            plt.Rectangle((cx - w / 2, cy - h / 2), w, h, fill=False, edgecolor="white", linestyle=":", lw=0.8)
        )
    positions = token_positions(data, width, height)
    for edge_type in reversed(EDGE_TYPES):  # strongest drawn last, on top
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
    for r, (x, y) in enumerate(positions[RELATION]):
        ax.text(
            x,
            y - 3,
            PREDICATES[int(data[RELATION].predicate[r])],
            fontsize=6,
            ha="center",
            va="bottom",
            color="black",
            bbox=dict(boxstyle="round,pad=0.1", fc="gold", alpha=0.7, lw=0),
            zorder=6,
        )
    if object_labels is not None:
        draw_object_labels(ax, positions[OBJECT], object_labels, height)
    if show_legend:
        handles = [Line2D([], [], color=EDGE_COLOURS[et], lw=2, label=f"{EDGE_RANK[et]}. {et[1]}") for et in EDGE_TYPES]
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


def draw_object_labels(ax: plt.Axes, positions: np.ndarray, labels: Sequence[str | None], height: int) -> None:
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
    object_labels: Sequence[str | None] | None = None,
) -> None:
    """Draw and save a PNG."""
    fig, ax = plt.subplots(figsize=(8, 6), dpi=120)
    draw_graph(image, data, masks, ax=ax, title=title, object_labels=object_labels)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
