"""World v4: the synthetic world with the variation a second renderer would bring.

The same vocabulary as world v3 (5 shapes, 8 colours, 2 size words, the same
captions and relations from the same geometry), drawn less narrowly:

- pose: each shape turned by up to ±30° (squares and diamonds ±15°, so that
  neither passes for the other) and stretched (width × s, height / s,
  s log-uniform in [1/1.3, 1.3]);
- size: a continuum of radii within each size word (small 5.5–8.5 px, large
  11.5–15.5 px on the 96-pixel canvas; the gap keeps the words true);
- shade: each object's colour moved by up to ±20 per channel; a background of
  grey 8–50 with a tint of up to ±8 per channel, noise of 3–9;
- 2 to 6 objects, neighbours placed off the axis (up to ±20°) and at gaps of
  1.5 to 12 px, so pairs have others close by;
- arrows of several shaft widths, head lengths and widths, two head styles
  (filled triangle, open chevron), and stops short of the objects by 0–3 px.

Relations still come from the drawn masks (graphs.relations), and a candidate
whose box lies within another's box without its mask lying within that mask
is refused, so "inside" is never told of an object merely in a rotated
neighbour's box corner.

`held_out=True` keeps out of every scene the combinations in HELD_OUT_OBJECTS
(shape, colour) and HELD_OUT_RELATIONS (predicate, subject shape, as the
canonical triplet tells it): a training world that never shows them, so the
`heldout-*` suites (evaluate.suites) can ask about them alone.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from data.synthetic import (
    ARROW_PROBABILITY,
    COLOURS,
    CONTAINERS,
    SHAPES,
    Scene,
    SceneObject,
    Style,
    arrow_mask,
    inside_canvas,
    outline,
    placement_fits,
    render_scene,
)
from graphs.relations import box_inside, geometric_triplets, mask_intersections, masks_to_boxes
from graphs.schema import PREDICATES

MAX_OBJECTS = 6
RADII = {"small": (5.5, 8.5), "large": (11.5, 15.5)}  # pixels on the 96-pixel canvas
MAX_ANGLE = 30.0  # degrees
# A square turned by 45° is a diamond: these two turn less, so that neither passes for the other.
MAX_ANGLE_OF = {"square": 15.0, "diamond": 15.0}
MAX_STRETCH = 1.3
MAX_SHADE = 20
OFF_AXIS = 20.0  # degrees a neighbour may sit off the horizontal or vertical
HEAD_STYLES = ("filled", "open")
HELD_OUT_OBJECTS = frozenset(
    {("circle", "green"), ("square", "orange"), ("triangle", "blue"), ("diamond", "red"), ("cross", "yellow")}
)
HELD_OUT_RELATIONS = frozenset({("left of", "triangle"), ("above", "circle"), ("points at", "diamond")})


def draw_style(rng: np.random.Generator) -> Style:
    """Background, noise and arrow look of one scene."""
    grey = rng.uniform(8, 50)
    background = tuple(float(grey + tint) for tint in rng.uniform(-8, 8, size=3))
    return Style(
        background=background,
        noise=float(rng.uniform(3, 9)),
        arrow_grey=float(rng.uniform(120, 185)),
        shaft_width=float(rng.uniform(0.5, 1.4)),
        head_length=float(rng.uniform(4, 7)),
        head_width=float(rng.uniform(2.5, 4.5)),
        head=HEAD_STYLES[int(rng.integers(len(HEAD_STYLES)))],
        margin=float(rng.uniform(0, 3)),
    )


def draw_object(rng: np.random.Generator, held_out: bool = False, size: str | None = None) -> SceneObject:
    """One object with a pose, radius and shade (centre (0, 0)); never a held-out (shape, colour) when asked."""
    while True:
        shape, colour = SHAPES[rng.integers(len(SHAPES))], list(COLOURS)[rng.integers(len(COLOURS))]
        if not (held_out and (shape, colour) in HELD_OUT_OBJECTS):
            break
    size = size or ("small" if rng.random() < 0.5 else "large")
    return SceneObject(
        shape,
        colour,
        size,
        (0.0, 0.0),
        radius=float(rng.uniform(*RADII[size])),
        angle=float(rng.uniform(-1, 1) * MAX_ANGLE_OF.get(shape, MAX_ANGLE)),
        stretch=float(np.exp(rng.uniform(-1, 1) * np.log(MAX_STRETCH))),
        shade=tuple(int(v) for v in rng.integers(-MAX_SHADE, MAX_SHADE + 1, size=3)),
    )


def support(obj: SceneObject, direction: np.ndarray, canvas: int) -> float:
    """How far the object reaches from its centre along a unit direction."""
    return float(((outline(obj, canvas) - np.asarray(obj.centre)) @ direction).max())


def reach(obj: SceneObject, canvas: int) -> float:
    """The object's largest distance from its centre."""
    return float(np.linalg.norm(outline(obj, canvas) - np.asarray(obj.centre), axis=1).max())


def place_beside(host: SceneObject, obj: SceneObject, angle: float, gap: float, canvas: int) -> SceneObject:
    """`obj` moved next to `host`, in the direction `angle` (degrees, 0 = right, 90 = down), `gap` pixels apart."""
    direction = np.array([np.cos(np.deg2rad(angle)), np.sin(np.deg2rad(angle))])
    distance = support(host, direction, canvas) + support(obj, -direction, canvas) + gap
    centre = np.asarray(host.centre) + distance * direction
    return replace(obj, centre=(float(centre[0]), float(centre[1])))


def _propose(rng: np.random.Generator, placed: list[tuple[SceneObject, np.ndarray]], canvas: int, held_out: bool):
    """One candidate object and where it goes: free, inside, touching or near another."""
    scale = canvas / 96
    mode = rng.choice(["free", "inside", "touching", "near"], p=[0.55, 0.15, 0.15, 0.15]) if placed else "free"
    obj = draw_object(rng, held_out, "small" if mode == "inside" else None)
    if mode == "free":
        margin = reach(obj, canvas)
        return replace(obj, centre=tuple(float(v) for v in rng.uniform(margin, canvas - margin, size=2))), None
    host, host_mask = placed[rng.integers(len(placed))]
    if mode == "inside":
        if host.size != "large" or host.shape not in CONTAINERS or obj.colour == host.colour:
            return None
        jitter = rng.uniform(-2, 2, size=2) * scale
        return replace(obj, centre=(host.centre[0] + float(jitter[0]), host.centre[1] + float(jitter[1]))), host_mask
    angle = 90.0 * rng.integers(4) + rng.uniform(-OFF_AXIS, OFF_AXIS)
    gap = (1.5 if mode == "touching" else rng.uniform(3, 12)) * scale
    return place_beside(host, obj, angle, gap, canvas), None


def visible_masks(masks: np.ndarray) -> np.ndarray:
    """What is left of each mask under the later ones."""
    visible = masks.copy()
    for k in range(len(masks) - 1):
        visible[k] &= ~masks[k + 1 :].any(axis=0)
    return visible


def geometry_agrees(masks: np.ndarray) -> bool:
    """Every box that lies within another box belongs to a mask lying within that other mask
    (full, unoccluded masks), so a triplet's "inside" is true of the drawn shapes."""
    visible = visible_masks(masks)
    if not visible.any(axis=(1, 2)).all():
        return False
    inside = box_inside(masks_to_boxes(visible))
    return all(not (masks[i] & ~masks[j]).any() for i, j in zip(*np.nonzero(inside), strict=True))


def held_out_facts(objects: list[SceneObject], triplets: list[tuple[int, int, int]]) -> list[str]:
    """The held-out combinations a scene shows, named ('blue triangle', 'triangle left of')."""
    facts = [f"{o.colour} {o.shape}" for o in objects if (o.shape, o.colour) in HELD_OUT_OBJECTS]
    for s, p, _ in triplets:
        if (PREDICATES[p], objects[s].shape) in HELD_OUT_RELATIONS:
            facts.append(f"{objects[s].shape} {PREDICATES[p]}")
    return facts


def _placed_triplets(masks: np.ndarray) -> list[tuple[int, int, int]]:
    visible = visible_masks(masks)
    return geometric_triplets(masks_to_boxes(visible), mask_intersections(visible))


def _place_objects(rng: np.random.Generator, canvas: int, held_out: bool) -> list[tuple[SceneObject, np.ndarray]]:
    target = int(rng.integers(2, MAX_OBJECTS + 1))
    placed: list[tuple[SceneObject, np.ndarray]] = []
    occupied = np.zeros((canvas, canvas), dtype=bool)
    for _ in range(600):
        if len(placed) == target:
            break
        proposal = _propose(rng, placed, canvas, held_out)
        if proposal is None:
            continue
        obj, host_mask = proposal
        if not inside_canvas(obj, canvas):
            continue
        mask = obj.mask(canvas)
        if not placement_fits(mask, host_mask, occupied, placed):
            continue
        masks = np.stack([m for _, m in placed] + [mask])
        if not geometry_agrees(masks):
            continue
        if held_out and held_out_facts([o for o, _ in placed] + [obj], _placed_triplets(masks)):
            continue
        occupied |= mask
        placed.append((obj, mask))
    return placed


def _choose_arrow(
    rng: np.random.Generator, objects: list[SceneObject], masks: np.ndarray, style: Style, canvas: int, held_out: bool
) -> list[tuple[int, int]]:
    pairs = [(a, b) for a in range(len(objects)) for b in range(len(objects)) if a != b]
    for k in rng.permutation(len(pairs)).tolist():
        tail, head = pairs[k]
        if held_out and {("points at", objects[tail].shape), ("points at", objects[head].shape)} & HELD_OUT_RELATIONS:
            continue  # neither this arrow nor its reversal (a twin) may show a held-out combination
        a, b = objects[tail].centre, objects[head].centre
        if arrow_mask(a, b, masks, canvas, style) is not None and arrow_mask(b, a, masks, canvas, style) is not None:
            return [pairs[k]]
    return []


def generate_scene_v4(rng: np.random.Generator, canvas: int = 96, held_out: bool = False) -> Scene:
    """One v4 scene: 2 to 6 posed, shaded objects, about half the scenes with an arrow."""
    for _ in range(50):
        style = draw_style(rng)
        placed = _place_objects(rng, canvas, held_out)
        if len(placed) < 2:
            continue
        objects, masks = [o for o, _ in placed], np.stack([m for _, m in placed])
        arrows = _choose_arrow(rng, objects, masks, style, canvas, held_out) if rng.random() < ARROW_PROBABILITY else []
        scene = render_scene(objects, rng, canvas, arrows=arrows, style=style)
        if len(scene.objects) == len(objects) and not (held_out and held_out_facts(scene.objects, scene.triplets)):
            return scene
    raise RuntimeError(f"could not draw a v4 scene on a {canvas}x{canvas} canvas")
