"""Composition-aware hard negatives from a scene's own graph (NegCLIP-style), and a checker.

For a caption of the synthetic world, `hard_negatives` makes texts that are
certainly false for its scene: the relation told with subject and object
swapped, the colours (or sizes) of its two objects swapped, and its words
shuffled. `twin_scene` makes a hard-negative image: the same scene re-drawn
with one relation reversed (its arrow turned round, or the two objects of a
spatial relation in each other's places); `twin_scenes` makes several, each
reversing another relation. `statement_holds` reads a caption
back against the scene graph, so every negative is checked before it is used
(and the tests use it too).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace

import numpy as np

from data.synthetic import (
    COLOURS,
    INVERSE,
    PHRASES,
    SHAPES,
    SIZES,
    Scene,
    describe_triplet,
    inside_canvas,
    render_scene,
)
from data.world_v4 import HELD_OUT_OBJECTS, HELD_OUT_RELATIONS, held_out_facts
from graphs.relations import TOLD_THE_OTHER_WAY
from graphs.schema import PREDICATES

NEGATIVE_KINDS = ("relation", "attribute", "order")
# Relations a twin may reverse by swapping its two objects' places (arrows are turned round).
TWIN_PREDICATES = ("left of", "right of", "above", "below", "on top of", "under")
OBJECT = rf"a ({'|'.join(SIZES)}) ({'|'.join(COLOURS)}) ({'|'.join(SHAPES)})"
PHRASE_TO_PREDICATE = {phrase: name for name, phrase in PHRASES.items()}
RELATION = re.compile(rf"^{OBJECT} ({'|'.join(map(re.escape, PHRASE_TO_PREDICATE))}) {OBJECT}$")
PREFIXES = ("there is ", "a picture of ")
# Predicates told from the other participant, and the canonical predicate they stand for.
CANONICAL_OF = {**TOLD_THE_OTHER_WAY, "pointed at by": "points at"}


ADJECTIVES = set(COLOURS) | set(SIZES)
NOUNS = set(SHAPES)


def order_perturbations(
    caption: str, rng: np.random.Generator, content_words: set[str] | None = None
) -> list[str] | None:
    """The four COCO-Order perturbations: shuffle nouns and adjectives; shuffle all
    other words; shuffle trigrams; shuffle words within each trigram.

    `content_words` stand for the nouns and adjectives (default: the synthetic
    world's shapes, colours and sizes). None when a perturbation cannot differ.
    """
    words = caption.split()
    content_words = content_words if content_words is not None else ADJECTIVES | NOUNS
    content = [k for k, w in enumerate(words) if w in content_words]
    other = [k for k in range(len(words)) if k not in content]

    def shuffle_positions(positions: list[int]) -> list[str]:
        out = list(words)
        for k, source in zip(positions, rng.permutation(positions), strict=True):
            out[k] = words[source]
        return out

    def trigrams() -> list[list[str]]:
        return [words[k : k + 3] for k in range(0, len(words), 3)]

    makers = [
        lambda: shuffle_positions(content),
        lambda: shuffle_positions(other),
        lambda: [w for k in rng.permutation(len(trigrams())) for w in trigrams()[k]],
        lambda: [w for t in trigrams() for w in rng.permutation(t).tolist()],
    ]
    out = []
    for make in makers:
        for _ in range(20):
            candidate = " ".join(make())
            if candidate != caption and candidate not in out:
                out.append(candidate)
                break
        else:
            return None
    return out


def _facts(scene: Scene) -> set[tuple[tuple, str, tuple]]:
    """Every (subject attributes, predicate, object attributes) that holds, told both ways."""
    facts = set()
    attributes = [(o.size, o.colour, o.shape) for o in scene.objects]
    for s, p, o in scene.triplets:
        name = PREDICATES[p]
        facts.add((attributes[s], name, attributes[o]))
        facts.add((attributes[o], INVERSE[name], attributes[s]))
    return facts


def _clauses(text: str) -> list[str]:
    for prefix in PREFIXES:
        if text.startswith(prefix):
            text = text[len(prefix) :]
    return [clause.strip() for clause in text.split(" and a ")]


def statement_holds(scene: Scene, text: str) -> bool:
    """Whether a caption of the world's templates is true of the scene (False for anything unparsable)."""
    if re.match(r"^\d+ shapes: ", text):
        listed = re.findall(OBJECT, text.split(": ", 1)[1])
        return sorted(listed) == sorted((o.size, o.colour, o.shape) for o in scene.objects)
    clauses = _clauses(text)
    clauses = [clauses[0]] + [f"a {c}" for c in clauses[1:]]
    facts = _facts(scene)
    for clause in clauses:
        match = RELATION.match(clause)
        if match is None:
            return False
        groups = match.groups()
        if (groups[0:3], PHRASE_TO_PREDICATE[groups[3]], groups[4:7]) not in facts:
            return False
    return True


def _swap_relation(text: str) -> str | None:
    prefix = next((p for p in PREFIXES if text.startswith(p)), "")
    clauses = _clauses(text[len(prefix) :])
    match = RELATION.match(clauses[0])
    if match is None:
        return None
    g = match.groups()
    swapped = f"a {' '.join(g[4:7])} {g[3]} a {' '.join(g[0:3])}"
    return prefix + " and a ".join([swapped, *clauses[1:]])


def _swap_attribute(text: str, rng: np.random.Generator) -> str | None:
    objects = list(re.finditer(OBJECT, text))
    if len(objects) < 2:
        return None
    first, second = objects[0], objects[1]
    slot = 2 if rng.random() < 0.5 else 1  # colour or size
    a, b = first.group(slot), second.group(slot)
    if a == b:
        slot = 3 - slot
        a, b = first.group(slot), second.group(slot)
        if a == b:
            return None
    out = list(text)
    for match, value in ((second, a), (first, b)):  # right to left keeps the offsets valid
        out[match.start(slot) : match.end(slot)] = value
    return "".join(out)


def hard_negatives(scene: Scene, caption: str, kinds: tuple[str, ...], seed: int = 0) -> list[str]:
    """Negatives of `caption`, one per kind where one exists, each checked false for the scene."""
    rng = np.random.default_rng([seed, len(caption)])
    made = []
    for kind in kinds:
        if kind == "relation":
            candidate = _swap_relation(caption)
        elif kind == "attribute":
            candidate = _swap_attribute(caption, rng)
        elif kind == "order":
            shuffled = order_perturbations(caption, rng)
            candidate = shuffled[0] if shuffled else None
        else:
            raise ValueError(f"unknown hard negative {kind!r}; valid: {', '.join(NEGATIVE_KINDS)}")
        if candidate and candidate != caption and candidate not in made and not statement_holds(scene, candidate):
            made.append(candidate)
    return made


def _reversed_scenes(scene: Scene, rng: np.random.Generator, canvas: int):
    """Candidate twins, best first: (twin, triplet reversed in the scene's indices)."""
    if scene.arrows:
        tail, head = scene.arrows[0]
        triplet = next(t for t in scene.triplets if (t[0], t[2]) == (tail, head) and PREDICATES[t[1]] == "points at")
        try:
            yield render_scene(scene.objects, rng, canvas, arrows=[(head, tail)], style=scene.style), triplet
        except ValueError:  # no room for the arrow's head at the other end
            pass
    spatial = [t for t in scene.triplets if PREDICATES[t[1]] in TWIN_PREDICATES]
    for k in rng.permutation(len(spatial)).tolist():
        s, _, o = spatial[k]
        objects = list(scene.objects)
        objects[s] = replace(objects[s], centre=scene.objects[o].centre)
        objects[o] = replace(objects[o], centre=scene.objects[s].centre)
        try:
            yield render_scene(objects, rng, canvas, arrows=scene.arrows, style=scene.style), spatial[k]
        except ValueError:  # the swap left an arrow no room
            continue


def twin_scenes(
    scene: Scene, seed: int = 0, canvas: int = 96, held_out: bool = False, count: int = 1
) -> list[tuple[Scene, str, str]]:
    """Up to `count` hard-negative images for `scene`, each reversing another of its
    relations: the same objects with that relation reversed (the arrow turned round
    when there is one, then two objects of a spatial relation in each other's
    places, in an order drawn from the scene), each with a caption true of the scene
    and false of the twin and the caption that is true of the twin and false of the
    scene. The first is `twin_scene`'s.

    Each candidate is checked with `statement_holds` both ways, and a swap that
    makes objects overlap, hide or leave the canvas is refused, as is a twin drawn
    the same as an earlier one; fewer than `count` (or none) when no more relations
    can be reversed cleanly. With `held_out` (world v4's held-out combinations), a
    twin that would show one of them is refused too.
    """
    rng = np.random.default_rng([seed, len(scene.objects), *np.asarray(scene.image[::16, ::16, 0]).ravel()[:8]])
    unique = [sum(o.phrase == p.phrase for o in scene.objects) == 1 for p in scene.objects]
    made: list[tuple[Scene, str, str]] = []
    if count < 1:
        return made
    for twin, (s, p, o) in _reversed_scenes(scene, rng, canvas):
        if not (unique[s] and unique[o]) or len(twin.objects) != len(scene.objects):
            continue
        if not _clean(scene, twin, canvas):
            continue
        if held_out and held_out_facts(twin.objects, twin.triplets):
            continue
        if any(np.array_equal(twin.image, earlier.image) for earlier, _, _ in made):
            continue  # another relation between the same two objects: the same picture
        true = describe_triplet(scene, (s, p, o))
        swapped = describe_triplet(scene, (o, p, s))
        if statement_holds(scene, true) and not statement_holds(twin, true):
            if statement_holds(twin, swapped) and not statement_holds(scene, swapped):
                made.append((twin, true, swapped))
                if len(made) == count:  # stop before drawing another candidate
                    break
    return made


def twin_scene(scene: Scene, seed: int = 0, canvas: int = 96, held_out: bool = False) -> tuple[Scene, str, str] | None:
    """A hard-negative image for `scene`: the same objects with one relation reversed
    (the arrow turned round when there is one, else two objects of a spatial relation
    in each other's places), with a caption true of the scene and false of the twin
    and the caption that is true of the twin and false of the scene; None when no
    relation can be reversed cleanly. The first of `twin_scenes`, which says what is
    checked.
    """
    made = twin_scenes(scene, seed, canvas, held_out, count=1)
    return made[0] if made else None


def held_out_in_text(text: str) -> bool:
    """Whether a caption of the world's templates names a held-out combination of world v4:
    a (shape, colour) of HELD_OUT_OBJECTS, or a relation whose canonical telling has a
    (predicate, subject shape) of HELD_OUT_RELATIONS ("a square to the right of a triangle"
    is "triangle left of")."""
    return next(_held_out_kinds(text), None) is not None  # stops at the first one found


def held_out_kinds(text: str) -> set[str]:
    """Which kinds of held-out combination of world v4 a caption names: ``object`` for a
    (shape, colour) of HELD_OUT_OBJECTS, ``relation`` for a (predicate, subject shape) of
    HELD_OUT_RELATIONS in a relation's canonical telling; empty for none."""
    return set(_held_out_kinds(text))


def _held_out_kinds(text: str) -> Iterator[str]:
    if any((shape, colour) in HELD_OUT_OBJECTS for _, colour, shape in re.findall(OBJECT, text)):
        yield "object"
    body = text.split(": ", 1)[1] if re.match(r"^\d+ shapes: ", text) else text
    clauses = _clauses(body)
    for clause in [clauses[0]] + [f"a {c}" for c in clauses[1:]]:
        match = RELATION.match(clause)
        if match is None:
            continue
        groups = match.groups()
        name, subject = PHRASE_TO_PREDICATE[groups[3]], groups[2]
        if name in CANONICAL_OF:
            name, subject = CANONICAL_OF[name], groups[6]
        if (name, subject) in HELD_OUT_RELATIONS:
            yield "relation"
            return


def _clean(scene: Scene, twin: Scene, canvas: int) -> bool:
    """The twin keeps every object whole, on the canvas and apart from the others as before."""
    if not all(inside_canvas(obj, canvas) for obj in twin.objects):
        return False
    areas = scene.masks.sum(axis=(1, 2)), twin.masks.sum(axis=(1, 2))
    return bool((np.abs(areas[0] - areas[1]) <= 0.05 * areas[0] + 2).all())
