"""Composition-aware hard negatives from a scene's own graph (NegCLIP-style), and a checker.

For a caption of the synthetic world, `hard_negatives` makes texts that are
certainly false for its scene: the relation told with subject and object
swapped, the colours (or sizes) of its two objects swapped, and its words
shuffled. `statement_holds` reads a caption back against the scene graph, so
every negative is checked before it is used (and the tests use it too).
"""

from __future__ import annotations

import re

import numpy as np

from data.synthetic import COLOURS, PHRASES, SHAPES, SIZES, Scene
from graphs.schema import INVERSE_PREDICATE, PREDICATES

NEGATIVE_KINDS = ("relation", "attribute", "order")
OBJECT = rf"a ({'|'.join(SIZES)}) ({'|'.join(COLOURS)}) ({'|'.join(SHAPES)})"
PHRASE_TO_PREDICATE = {phrase: name for name, phrase in PHRASES.items()}
RELATION = re.compile(rf"^{OBJECT} ({'|'.join(map(re.escape, PHRASE_TO_PREDICATE))}) {OBJECT}$")
PREFIXES = ("there is ", "a picture of ")


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
        facts.add((attributes[o], INVERSE_PREDICATE[name], attributes[s]))
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
