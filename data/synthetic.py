"""The embedded synthetic world: 2-D scenes of coloured shapes with exact masks.

Each scene holds 2 to 5 objects (5 shapes, 8 colours, 2 sizes) on a small
canvas. Relations come from the scene's geometry through graphs.relations, the
same extraction every other token source uses; about half the scenes also
have an arrow drawn from one object to another ("the red circle points at the
blue square"), a relation whose direction neither object's own pixels nor
its position tell. Captions are generated from that scene graph. A scene is a pure function of (seed, split, index), so
the world needs no download and splits never share an image.

Two versions of the world exist (`world=`): "v3", the default, with the
canonical shapes, two radii, fixed shades, an even dark background and one
arrow style; and "v4" (data.world_v4), the variation a second renderer
would bring: rotated and stretched shapes, a continuum of radii within each
size word, shades within ±20 per channel, a varied background and noise, 2 to 6
objects, neighbours off the axis, and arrows of several widths, head sizes and
head styles. v4 can also hold out combinations of (shape, colour) and of
(predicate, subject shape) from every scene (`held_out=True`, for training),
so that a test suite may ask about them alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from graphs.relations import geometric_triplets, mask_intersections, masks_to_boxes
from graphs.schema import INVERSE_PREDICATE, PREDICATE_ID, PREDICATES

SHAPES = ("circle", "square", "triangle", "diamond", "cross")
COLOURS = {
    "red": (220, 45, 45),
    "green": (50, 180, 70),
    "blue": (50, 90, 230),
    "yellow": (235, 215, 50),
    "purple": (150, 70, 200),
    "orange": (245, 145, 35),
    "cyan": (60, 210, 220),
    "white": (240, 240, 240),
}
SIZES = {"small": 7, "large": 14}  # radius in pixels on the default canvas
SPLITS = {"train": 0, "val": 1, "test": 2}
PHRASES = {
    "left of": "to the left of",
    "right of": "to the right of",
    "above": "above",
    "below": "below",
    "on top of": "on top of",
    "under": "under",
    "inside": "inside",
    "contains": "containing",
    "next to": "next to",
    "overlapping": "overlapping",
    "near": "near",
    "points at": "pointing at",
    "pointed at by": "pointed at by",
}
# The same fact told from the other participant, the passive included.
INVERSE = {**INVERSE_PREDICATE, "points at": "pointed at by", "pointed at by": "points at"}
CAPTIONS_PER_SCENE = 5
ARROW_PROBABILITY = 0.5
ARROW_COLOUR = (150, 150, 150)
# Bump when a change to this module changes the scenes (it keys the graph cache).
WORLD_VERSION = 3
# The selectable worlds and the version number each keys the graph cache with.
WORLDS = {"v3": WORLD_VERSION, "v4": 4}
DEFAULT_WORLD = "v3"
# Shapes that can hold a small object wholly inside them.
CONTAINERS = ("circle", "square", "diamond")


@dataclass
class SceneObject:
    """One object; the pose fields keep their defaults in world v3."""

    shape: str
    colour: str
    size: str
    centre: tuple[float, float]  # (x, y) in pixels
    radius: float | None = None  # pixels on a 96-pixel canvas; None: SIZES[size]
    angle: float = 0.0  # degrees the shape is turned by
    stretch: float = 1.0  # its width is scaled by this, its height by the inverse
    shade: tuple[int, int, int] = (0, 0, 0)  # added to the colour's RGB

    @property
    def phrase(self) -> str:
        return f"{self.size} {self.colour} {self.shape}"

    def pixel_radius(self, canvas: int) -> float:
        return (self.radius if self.radius is not None else SIZES[self.size]) * canvas / 96

    @property
    def posed(self) -> bool:
        return self.angle != 0 or self.stretch != 1

    def rgb(self) -> tuple[int, int, int]:
        base = COLOURS[self.colour]
        if self.shade == (0, 0, 0):
            return base
        return tuple(int(np.clip(c + d, 0, 255)) for c, d in zip(base, self.shade, strict=True))

    def mask(self, canvas: int) -> np.ndarray:
        return shape_mask(self.shape, self.centre, self.pixel_radius(canvas), canvas, self.angle, self.stretch)


@dataclass(frozen=True)
class Style:
    """How a v4 scene is drawn beyond its objects: background, noise and the arrow's look."""

    background: tuple[float, float, float] = (20.0, 20.0, 20.0)
    noise: float = 6.0
    arrow_grey: float = 150.0
    shaft_width: float = 0.75  # half-width of the shaft, pixels on a 96-pixel canvas
    head_length: float = 5.0
    head_width: float = 3.0
    head: str = "filled"  # "filled" triangle or "open" chevron
    margin: float = 0.0  # pixels the arrow stops short of its objects' halo, at each end


@dataclass
class Scene:
    """One rendered scene: image, visible masks, scene graph, captions."""

    image: np.ndarray  # [H, W, 3] uint8
    masks: np.ndarray  # [n, H, W] bool, visible parts
    objects: list[SceneObject]
    triplets: list[tuple[int, int, int]]  # (subject, predicate id, object)
    captions: list[str] = field(default_factory=list)
    arrows: list[tuple[int, int]] = field(default_factory=list)  # (from, to) object indices
    style: Style | None = None  # None: world v3's look

    @property
    def labels(self) -> list[int]:
        return [SHAPES.index(obj.shape) for obj in self.objects]


def shape_mask(
    shape: str, centre: tuple[float, float], radius: float, canvas: int, angle: float = 0.0, stretch: float = 1.0
) -> np.ndarray:
    """Boolean [canvas, canvas] mask of one shape, turned by `angle` degrees after its
    width was scaled by `stretch` and its height by 1 / `stretch`."""
    ys, xs = np.mgrid[0:canvas, 0:canvas] + 0.5
    dx, dy = xs - centre[0], ys - centre[1]
    if angle != 0 or stretch != 1:
        cos, sin = np.cos(np.deg2rad(angle)), np.sin(np.deg2rad(angle))
        dx, dy = (cos * dx + sin * dy) / stretch, (-sin * dx + cos * dy) * stretch
    if shape == "circle":
        return dx**2 + dy**2 <= radius**2
    if shape == "square":
        return (np.abs(dx) <= 0.85 * radius) & (np.abs(dy) <= 0.85 * radius)
    if shape == "triangle":
        return (dy >= -radius) & (dy <= radius) & (np.abs(dx) <= (dy + radius) / 2)
    if shape == "diamond":
        return np.abs(dx) + np.abs(dy) <= radius
    if shape == "cross":
        arm = radius / 3
        return ((np.abs(dx) <= arm) & (np.abs(dy) <= radius)) | ((np.abs(dy) <= arm) & (np.abs(dx) <= radius))
    raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")


def _dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
    out = mask.copy()
    for _ in range(pixels):
        grown = out.copy()
        grown[1:] |= out[:-1]
        grown[:-1] |= out[1:]
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        out = grown
    return out


def _propose(rng: np.random.Generator, placed: list[tuple[SceneObject, np.ndarray]], canvas: int):
    """One candidate object and where it goes: free, inside or beside another."""
    shape = SHAPES[rng.integers(len(SHAPES))]
    colour = list(COLOURS)[rng.integers(len(COLOURS))]
    size = "small" if rng.random() < 0.5 else "large"
    radius = SIZES[size] * canvas / 96
    mode = rng.choice(["free", "inside", "touching"], p=[0.7, 0.15, 0.15]) if placed else "free"
    if mode == "free":
        centre = tuple(rng.uniform(radius, canvas - radius, size=2))
        return SceneObject(shape, colour, size, centre), None
    host, host_mask = placed[rng.integers(len(placed))]
    if mode == "inside":
        if host.size != "large" or host.shape not in CONTAINERS or colour == host.colour:
            return None
        return SceneObject(shape, colour, "small", host.centre), host_mask
    host_radius = SIZES[host.size] * canvas / 96
    direction = rng.integers(4)  # up, down, left, right
    offset = host_radius + radius + 1.5 * canvas / 96
    dx, dy = [(0, -offset), (0, offset), (-offset, 0), (offset, 0)][direction]
    jitter = rng.uniform(-0.3, 0.3) * host_radius
    dx, dy = (jitter, dy) if dx == 0 else (dx, jitter)
    return SceneObject(shape, colour, size, (host.centre[0] + dx, host.centre[1] + dy)), None


def generate_scene(rng: np.random.Generator, canvas: int = 96, noise: float = 6.0) -> Scene:
    """Draw one scene: 2 to 5 non-overlapping objects, some inside or touching others."""
    target = int(rng.integers(2, 6))
    placed: list[tuple[SceneObject, np.ndarray]] = []
    occupied = np.zeros((canvas, canvas), dtype=bool)
    for _ in range(500):
        if len(placed) == target:
            break
        proposal = _propose(rng, placed, canvas)
        if proposal is None:
            continue
        obj, host_mask = proposal
        if not inside_canvas(obj, canvas):
            continue
        mask = shape_mask(obj.shape, obj.centre, SIZES[obj.size] * canvas / 96, canvas)
        if not placement_fits(mask, host_mask, occupied, placed):
            continue
        occupied |= mask
        placed.append((obj, mask))
    if len(placed) < 2:
        raise RuntimeError(f"could not place 2 objects on a {canvas}x{canvas} canvas")
    objects = [obj for obj, _ in placed]
    arrows = []
    if rng.random() < ARROW_PROBABILITY:
        masks = np.stack([mask for _, mask in placed])
        pairs = [(a, b) for a in range(len(objects)) for b in range(len(objects)) if a != b]
        for k in rng.permutation(len(pairs)).tolist():
            a, b = (objects[i].centre for i in pairs[k])
            # room both ways, so the arrow can be turned round (hard-negative images)
            if arrow_mask(a, b, masks, canvas) is not None and arrow_mask(b, a, masks, canvas) is not None:
                arrows = [pairs[k]]
                break
    return render_scene(objects, rng, canvas, noise, arrows)


def _segment_distance(xs: np.ndarray, ys: np.ndarray, start: np.ndarray, end: np.ndarray):
    """Distance of points to the segment start-end, and where along it they project (0..1)."""
    direction = end - start
    t = ((xs - start[0]) * direction[0] + (ys - start[1]) * direction[1]) / max(direction @ direction, 1e-9)
    t = np.clip(t, 0, 1)
    return np.hypot(xs - start[0] - t * direction[0], ys - start[1] - t * direction[1]), t


def arrow_mask(
    tail: tuple[float, float],
    head: tuple[float, float],
    masks: np.ndarray,
    canvas: int,
    style: Style | None = None,
) -> np.ndarray | None:
    """Pixels of an arrow from the object centred at `tail` to the one at `head`, drawn
    between their masks (a shaft and a head, in `style`'s look), or None where it would
    touch an object or has no room: the arrow never enters any object's mask, so no
    object token sees it."""
    scale = canvas / 96
    start, end = np.asarray(tail, float), np.asarray(head, float)
    length = np.linalg.norm(end - start)
    if length < 1:
        return None
    unit = (end - start) / length
    steps = np.linspace(0, 1, int(4 * length) + 2)
    points = start + steps[:, None] * (end - start)
    rows = np.clip(points[:, 1].astype(int), 0, canvas - 1)
    cols = np.clip(points[:, 0].astype(int), 0, canvas - 1)
    touching = _dilate(masks.any(axis=0), 1)  # what the arrow may not touch
    occupied = _dilate(touching, max(1, round(2 * scale)) - 1)  # where its line may not run
    if style is not None and style.margin > 0:
        occupied = _dilate(occupied, round(style.margin * scale))
    free = ~occupied[rows, cols]
    if not free.any():
        return None
    first, last = int(np.argmax(free)), len(free) - 1 - int(np.argmax(free[::-1]))
    if not free[first : last + 1].all():
        return None  # the straight line crosses another object
    start, end = points[first], points[last]
    look = style if style is not None else Style()
    head_length, head_width, shaft_width = (v * scale for v in (look.head_length, look.head_width, look.shaft_width))
    if np.linalg.norm(end - start) < head_length + 3 * scale:
        return None
    ys, xs = np.mgrid[0:canvas, 0:canvas] + 0.5
    if look.head == "open":  # a chevron: two strokes back from the tip, the shaft up to the tip
        shaft, _ = _segment_distance(xs, ys, start, end)
        normal = np.array([-unit[1], unit[0]])
        back = end - unit * head_length
        strokes = [_segment_distance(xs, ys, end, back + side * head_width * normal)[0] for side in (-1, 1)]
        head_mask = np.minimum(*strokes) <= shaft_width
    else:
        shaft, _ = _segment_distance(xs, ys, start, end - unit * head_length)
        along = (xs - end[0]) * -unit[0] + (ys - end[1]) * -unit[1]  # distance back from the tip
        across = np.abs((xs - end[0]) * -unit[1] + (ys - end[1]) * unit[0])
        head_mask = (along >= 0) & (along <= head_length) & (across <= head_width * along / head_length + 0.5)
    mask = (shaft <= shaft_width) | head_mask
    return None if (mask & touching).any() else mask


def render_scene(
    objects: list[SceneObject],
    rng: np.random.Generator,
    canvas: int = 96,
    noise: float = 6.0,
    arrows: list[tuple[int, int]] = (),
    style: Style | None = None,
) -> Scene:
    """Draw given objects in order (later ones on top) and arrows (from, to) between
    them, with the scene graph and captions; `style` (world v4) sets the background,
    the noise (instead of `noise`) and the arrows' look. An arrow with no room
    between its objects raises ValueError."""
    full_masks = np.stack([o.mask(canvas) for o in objects])
    if style is None:
        image = rng.normal(20, noise, size=(canvas, canvas, 3))
    else:
        noise = style.noise
        image = rng.normal(0, noise, size=(canvas, canvas, 3)) + np.asarray(style.background)
    for tail, head in arrows:
        mask = arrow_mask(objects[tail].centre, objects[head].centre, full_masks, canvas, style)
        if mask is None:
            raise ValueError(f"no room for an arrow from object {tail} to object {head}")
        image[mask] = ARROW_COLOUR if style is None else style.arrow_grey
    for obj, mask in zip(objects, full_masks, strict=True):
        image[mask] = obj.rgb()
    image = np.clip(image + rng.normal(0, noise, size=image.shape), 0, 255).astype(np.uint8)
    visible = full_masks.copy()
    for k in range(len(objects)):
        for later in range(k + 1, len(objects)):
            visible[k] &= ~full_masks[later]
    keep = [k for k in range(len(objects)) if visible[k].any()]
    objects, visible = [objects[k] for k in keep], visible[keep]
    arrows = [(keep.index(a), keep.index(b)) for a, b in arrows if a in keep and b in keep]
    triplets = geometric_triplets(masks_to_boxes(visible), mask_intersections(visible))
    triplets += [(a, PREDICATE_ID["points at"], b) for a, b in arrows]
    scene = Scene(image=image, masks=visible, objects=objects, triplets=triplets, arrows=arrows, style=style)
    scene.captions = make_captions(scene, rng)
    return scene


def outline(obj: SceneObject, canvas: int) -> np.ndarray:
    """Points of the object's outline in pixels [k, 2] (x, y): its corners, or 64 points of a circle."""
    r = obj.pixel_radius(canvas)
    if obj.shape == "circle":
        turn = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        points = np.stack([np.cos(turn), np.sin(turn)], 1) * r
    elif obj.shape == "square":
        points = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * 0.85 * r
    elif obj.shape == "triangle":
        points = np.array([[0, -1], [1, 1], [-1, 1]]) * r
    elif obj.shape == "diamond":
        points = np.array([[0, -1], [1, 0], [0, 1], [-1, 0]]) * r
    else:
        arm = 1 / 3
        points = np.array([[-arm, -1], [arm, -1], [1, -arm], [1, arm], [arm, 1], [-arm, 1], [-1, arm], [-1, -arm]]) * r
    points = points * [obj.stretch, 1 / obj.stretch]
    cos, sin = np.cos(np.deg2rad(obj.angle)), np.sin(np.deg2rad(obj.angle))
    turned = np.stack([cos * points[:, 0] - sin * points[:, 1], sin * points[:, 0] + cos * points[:, 1]], 1)
    return turned + np.asarray(obj.centre)


def placement_fits(
    mask: np.ndarray, host_mask: np.ndarray | None, occupied: np.ndarray, placed: list[tuple[object, np.ndarray]]
) -> bool:
    """Whether a new object's mask can go where it is: clear of every other object by a pixel,
    or, placed inside a host (`host_mask`), wholly inside an empty host with a rim of host around it."""
    halo = _dilate(mask, 1)
    if host_mask is None:
        return not (halo & occupied).any()
    return not ((halo & ~host_mask).any() or any((m & host_mask).any() for _, m in placed if m is not host_mask))


def inside_canvas(obj: SceneObject, canvas: int) -> bool:
    """Whether the whole object lies on the canvas."""
    if obj.posed:
        points = outline(obj, canvas)
        return bool((points >= 0).all() and (points <= canvas).all())
    radius = obj.pixel_radius(canvas)
    x, y = obj.centre
    return radius <= x <= canvas - radius and radius <= y <= canvas - radius


def describe_triplet(scene: Scene, triplet: tuple[int, int, int], reverse: bool = False) -> str:
    """'a small red circle to the left of a large blue square' (or told from the object)."""
    s, predicate, o = triplet
    name = PREDICATES[predicate]
    if reverse:
        s, o, name = o, s, INVERSE[name]
    return f"a {scene.objects[s].phrase} {PHRASES[name]} a {scene.objects[o].phrase}"


def list_objects(scene: Scene) -> str:
    phrases = [f"a {obj.phrase}" for obj in scene.objects]
    listed = ", ".join(phrases[:-1]) + f" and {phrases[-1]}"
    return f"{len(phrases)} shapes: {listed}"


def make_captions(scene: Scene, rng: np.random.Generator, count: int = CAPTIONS_PER_SCENE) -> list[str]:
    """Several captions from the scene graph: relations told both ways (arrows first), pairs of
    relations, the object list."""
    captions = [list_objects(scene)]
    drawn = [k for k, t in enumerate(scene.triplets) if PREDICATES[t[1]] == "points at"]
    order = [*drawn, *(k for k in rng.permutation(len(scene.triplets)).tolist() if k not in drawn)]
    for k in range(count - 1):
        triplet = scene.triplets[order[k % len(order)]]
        style = rng.integers(4)
        text = describe_triplet(scene, triplet, reverse=bool(rng.integers(2)))
        if style == 1:
            text = f"there is {text}"
        elif style == 2 and len(order) > 1:
            other = scene.triplets[order[(k + 1) % len(order)]]
            text = f"{text} and {describe_triplet(scene, other, reverse=bool(rng.integers(2)))}"
        elif style == 3:
            text = f"a picture of {text}"
        captions.append(text)
    return captions


def scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The random stream of one scene; distinct for every (seed, split, index)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    return np.random.default_rng([seed, SPLITS[split], index])


def check_world(world: str, held_out: bool = False) -> None:
    """A clear error for an unknown world, or held-out combinations where the world has none."""
    if world not in WORLDS:
        raise ValueError(f"unknown world {world!r}; known: {', '.join(WORLDS)}")
    if held_out and world == "v3":
        raise ValueError(
            "held-out combinations are part of world v4: use --world v4 (or --no-held-out-combinations)"
        )


def make_scene(
    seed: int, split: str, index: int, canvas: int = 96, world: str = DEFAULT_WORLD, held_out: bool = False
) -> Scene:
    """Scene `index` of a split: a pure function of (seed, split, index) and the world's options."""
    check_world(world, held_out)
    rng = scene_rng(seed, split, index)
    if world == "v4":
        from data.world_v4 import generate_scene_v4

        return generate_scene_v4(rng, canvas, held_out)
    return generate_scene(rng, canvas=canvas)

