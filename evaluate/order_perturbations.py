"""COCO-Order and Flickr30k-Order test cases as ARO builds them.

ARO (mertyg/vision-language-models-are-bows, `dataset_zoo/aro_datasets.py`,
`dataset_zoo/perturbations.py`, `dataset_zoo/retrieval.py`) turns every caption
of the Karpathy test split into one test case: the caption and four
perturbations of it, each passed through `pre_caption` (30 words):

1. nouns shuffled among the nouns and adjectives among the adjectives
   (spaCy `en_core_web_sm` tags: NN NNS NNP NNPS, JJ JJR JJS);
2. every other token shuffled among themselves;
3. the words inside each trigram shuffled (tokens of `nltk.word_tokenize`);
4. the trigrams shuffled.

The perturbations are drawn from the raw caption; a perturbation may equal the
caption, and the case is kept all the same. The draws use numpy's legacy
generator (1, 2) and Python's `random` (3, 4) in the original's call order.

Without spaCy's English model, words outside a stop-word list stand in for
nouns and adjectives (one class); without nltk's tokenizer, a regular
expression imitates it. Each stand-in is an approximation: it is warned about
and named in `OrderText.approximations`, which the results file records.
"""

from __future__ import annotations

import random
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

NOUN_TAGS = frozenset({"NN", "NNS", "NNP", "NNPS"})
ADJECTIVE_TAGS = frozenset({"JJ", "JJR", "JJS"})
MAX_WORDS = 30  # ARO's max_words for COCO-Order and Flickr30k-Order
STOP_WORDS = frozenset(
    "a an the of on in at to with and or is are was were be been being it its this that these those there here "
    "by for from as into onto over under near next while his her their our your my some two three one".split()
)
STOP_WORD_APPROXIMATION = (
    "part of speech: spaCy's en_core_web_sm is not installed, so words outside a stop-word list stand in "
    "for nouns and adjectives (one class) in the noun/adjective perturbations"
)
REGEX_TOKENIZER_APPROXIMATION = (
    "tokens: nltk.word_tokenize is not available, so a regular expression imitating it splits the captions"
)

Tagger = Callable[[str], list[tuple[str, str]]]


def pre_caption(caption: str, max_words: int = MAX_WORDS) -> str:
    """ARO's caption cleaning: lower case; the characters . ! " ( ) * # : ; ~ become spaces;
    runs of two or more whitespace characters become one space; trailing newlines and
    surrounding spaces go; at most `max_words` space-separated words."""
    text = re.sub(r'[.!"()*#:;~]', " ", caption.lower())
    text = re.sub(r"\s{2,}", " ", text).rstrip("\n").strip(" ")
    words = text.split(" ")
    return " ".join(words[:max_words]) if len(words) > max_words else text


_CLITIC = re.compile(r"(?i)^(.+?)(n't|'s|'m|'d|'ll|'re|'ve)$")
_LEADING = "([{\"'`"
_TRAILING = ".,;:!?)]}\"'"


def regex_word_tokenize(text: str) -> list[str]:
    """An imitation of nltk.word_tokenize for captions: punctuation split off the words,
    clitics (n't, 's, 're, ...) split off, double quotes written `` and '' as nltk does."""
    tokens: list[str] = []
    for chunk in text.split():
        head: list[str] = []
        tail: list[str] = []
        while chunk and chunk[0] in _LEADING:
            head.append("``" if chunk[0] == '"' else chunk[0])
            chunk = chunk[1:]
        while chunk and chunk[-1] in _TRAILING:
            if chunk.endswith("..."):
                tail.insert(0, "...")
                chunk = chunk[:-3]
                continue
            tail.insert(0, "''" if chunk[-1] == '"' else chunk[-1])
            chunk = chunk[:-1]
        middle = []
        if chunk:
            clitic = _CLITIC.match(chunk)
            middle = [clitic.group(1), clitic.group(2)] if clitic else [chunk]
        tokens += head + middle + tail
    return tokens


def stop_word_tagger(text: str) -> list[tuple[str, str]]:
    """The stand-in tagger: a token with a letter outside STOP_WORDS is tagged NN, others X."""
    return [
        (token, "NN" if any(c.isalpha() for c in token) and token.lower() not in STOP_WORDS else "X")
        for token in regex_word_tokenize(text)
    ]


@dataclass
class OrderText:
    """How captions are tagged and tokenized, and which approximations that means."""

    tagger: Tagger
    tokenize: Callable[[str], list[str]]
    tagger_name: str
    tokenizer_name: str
    approximations: list[str] = field(default_factory=list)


def _spacy_tagger() -> tuple[Tagger, str] | None:
    try:
        import spacy

        nlp = spacy.load("en_core_web_sm")
    except (ImportError, OSError):
        return None
    version = nlp.meta.get("version", "?")
    return (lambda text: [(token.text, token.tag_) for token in nlp(text)]), f"spaCy en_core_web_sm {version}"


def _nltk_tokenizer() -> Callable[[str], list[str]] | None:
    try:
        import nltk

        nltk.word_tokenize("A check.")
    except (ImportError, LookupError):
        return None
    return nltk.word_tokenize


@lru_cache(maxsize=1)
def detect_order_text() -> OrderText:
    """spaCy and nltk when installed (with their data), else the named approximations, with a warning."""
    spacy_found, nltk_found = _spacy_tagger(), _nltk_tokenizer()
    approximations = []
    if spacy_found is None:
        tagger, tagger_name = stop_word_tagger, "stop-word approximation"
        approximations.append(STOP_WORD_APPROXIMATION)
    else:
        tagger, tagger_name = spacy_found
    if nltk_found is None:
        tokenize, tokenizer_name = regex_word_tokenize, "regex approximation of nltk.word_tokenize"
        approximations.append(REGEX_TOKENIZER_APPROXIMATION)
    else:
        tokenize, tokenizer_name = nltk_found, "nltk.word_tokenize"
    for approximation in approximations:
        warnings.warn(f"COCO-Order/Flickr30k-Order approximation: {approximation}", stacklevel=2)
    return OrderText(tagger, tokenize, tagger_name, tokenizer_name, approximations)


def _shuffle_positions(tokens: np.ndarray, positions: list[int], rng: np.random.RandomState) -> None:
    tokens[positions] = rng.permutation(tokens[positions])


def shuffle_nouns_and_adjectives(tagged: list[tuple[str, str]], rng: np.random.RandomState) -> str:
    tokens = np.array([token for token, _ in tagged], dtype=str)
    _shuffle_positions(tokens, [k for k, (_, tag) in enumerate(tagged) if tag in NOUN_TAGS], rng)
    _shuffle_positions(tokens, [k for k, (_, tag) in enumerate(tagged) if tag in ADJECTIVE_TAGS], rng)
    return " ".join(tokens)


def shuffle_all_but_nouns_and_adjectives(tagged: list[tuple[str, str]], rng: np.random.RandomState) -> str:
    tokens = np.array([token for token, _ in tagged], dtype=str)
    kept = NOUN_TAGS | ADJECTIVE_TAGS
    _shuffle_positions(tokens, [k for k, (_, tag) in enumerate(tagged) if tag not in kept], rng)
    return " ".join(tokens)


def trigrams(tokens: list[str]) -> list[list[str]]:
    return [tokens[k : k + 3] for k in range(0, len(tokens), 3)]


def shuffle_within_trigrams(tokens: list[str], rng: random.Random) -> str:
    groups = trigrams(tokens)
    for group in groups:
        rng.shuffle(group)
    return " ".join(" ".join(group) for group in groups)


def shuffle_trigrams(tokens: list[str], rng: random.Random) -> str:
    groups = trigrams(tokens)
    rng.shuffle(groups)
    return " ".join(" ".join(group) for group in groups)


class OrderPerturber:
    """The four perturbations of one caption after another, from generators seeded once."""

    def __init__(self, text: OrderText, seed: int = 1) -> None:
        self.text = text
        self.numpy_rng = np.random.RandomState(seed)
        self.python_rng = random.Random(seed)

    def options(self, caption: str, max_words: int = MAX_WORDS) -> list[str]:
        """[caption, its 4 perturbations], each through pre_caption: the true option first."""
        tagged = self.text.tagger(caption)
        perturbed = [
            shuffle_nouns_and_adjectives(tagged, self.numpy_rng),
            shuffle_all_but_nouns_and_adjectives(tagged, self.numpy_rng),
            shuffle_within_trigrams(self.text.tokenize(caption), self.python_rng),
            shuffle_trigrams(self.text.tokenize(caption), self.python_rng),
        ]
        return [pre_caption(caption, max_words)] + [pre_caption(p, max_words) for p in perturbed]
