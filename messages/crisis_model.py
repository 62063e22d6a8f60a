"""The learned crisis layer: a linear text classifier run in pure Python.

The model is trained at build time by ``scripts/train_crisis_model.py`` (scikit-learn) on the
committed corpus in ``messages/data/crisis_corpus/`` and shipped as a small versioned artefact,
``messages/data/crisis_model_v1.json``. At run time nothing but the standard library is used:
no scikit-learn, no numpy, no network.

Features (:func:`features`) are read from :func:`messages.normalize.normalize`'s text, the one
the rules read: word 1- and 2-grams, and character 2- to 5-grams inside each word padded with a
space (like scikit-learn's ``char_wb``; the trainer uses this very function as its analyzer, so
training and run time cannot drift apart). Each block is weighted TF-IDF (sublinear tf, the artefact's
idf) and L2-normalised on its own, over the features in the artefact's vocabulary only (the
vocabulary was fixed before the final fit, so this is exactly what the model was trained on).

The classifier is a multinomial logistic regression over the corpus's families (ten crisis
families, and the calm ``lookalike`` and ``everyday``); one model gives both answers:

* crisis or not: the log-odds of all crisis families against the calm ones, compared with the
  artefact's threshold, which was chosen by cross-validation to keep recall at or above 97 % on
  held-out folds, so it leans toward false alarms;
* which reply fits: the crisis families' probabilities summed by reply kind, ``self`` (suicide,
  self-harm, hopelessness, farewells, means), ``overdose``, ``other_in_danger`` or ``violence``
  (harm to others, or being threatened); the top kind and its share of the crisis probability.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from operator import mul
from pathlib import Path
from typing import Any, Final, Literal

from messages.normalize import normalize

__all__ = [
    "FEATURES_VERSION",
    "KINDS",
    "Kind",
    "LearnedModel",
    "Prediction",
    "features",
    "load_model",
]

Kind = Literal["self", "overdose", "other_in_danger", "violence"]
KINDS: Final[tuple[Kind, ...]] = ("self", "overdose", "other_in_danger", "violence")
# Bumped whenever :func:`features` changes; the artefact records the version it was built with.
FEATURES_VERSION: Final = 1
ARTEFACT: Final = "data/crisis_model_v1.json"

_CHAR_MIN, _CHAR_MAX = 2, 5
# The learned layer says nothing about a text of fewer words (see LearnedModel.predict).
MIN_WORDS: Final = 2


def features(body: str) -> tuple[list[str], list[str]]:
    """(word features, character features) of a body, with repeats, as the trainer sees them."""
    return features_normalized(normalize(body))


def features_normalized(text: str) -> tuple[list[str], list[str]]:
    """:func:`features` of a text already read by :func:`messages.normalize.normalize`."""
    words, chars = _grams(text)
    return [f"w {w}" for w in words], [f"c{c}" for c in chars]


def _grams(text: str) -> tuple[list[str], list[str]]:
    """Word 1-2-grams and character 2-5-grams of padded words, without the block prefixes."""
    words = text.split()
    word_grams = words + [f"{a} {b}" for a, b in itertools.pairwise(words)]
    char_grams: list[str] = []
    for word in words:
        padded = f" {word} "
        length = len(padded)
        for n in range(_CHAR_MIN, min(_CHAR_MAX, length) + 1):
            char_grams += [padded[i : i + n] for i in range(length - n + 1)]
    return word_grams, char_grams


@dataclass(frozen=True)
class Prediction:
    """The crisis log-odds (crisis when ``margin >= threshold``) and the most likely reply kind,
    with its share of the crisis probability."""

    margin: float
    # False when the layer has nothing to go on (see LearnedModel.predict_normalized).
    evidence: bool
    is_crisis: bool
    kind: Kind
    kind_probability: float


def _logsumexp(values: Sequence[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


@dataclass(frozen=True)
class LearnedModel:
    version: int
    threshold: float
    # One class per corpus family; the reply kind of each, None for the calm ones.
    class_kinds: tuple[Kind | None, ...]
    intercepts: tuple[float, ...]
    # Per block (words, characters), gram without its block prefix -> (idf, weight per class).
    words: Mapping[str, tuple[float, tuple[float, ...]]]
    chars: Mapping[str, tuple[float, tuple[float, ...]]]

    @staticmethod
    def _block(
        found: Sequence[str],
        vocabulary: Mapping[str, tuple[float, tuple[float, ...]]],
        sums: list[float],
    ) -> tuple[list[float], bool]:
        """`sums` plus one block's weighted features; False when none is in the vocabulary."""
        rows: list[tuple[float, tuple[float, ...]]] = []
        norm = 0.0
        for feature, count in Counter(found).items():
            row = vocabulary.get(feature)
            if row is None:
                continue
            value = row[0] if count == 1 else (1.0 + math.log(count)) * row[0]
            norm += value * value
            rows.append((value, row[1]))
        if not rows:
            return sums, False
        scale = 1.0 / math.sqrt(norm)
        # Each class's sum over the features, in C loops: transpose the weight rows, then take
        # one dot product per class with the feature values.
        values = [value * scale for value, _ in rows]
        columns = zip(*(weights for _, weights in rows), strict=True)
        return [
            s + sum(map(mul, values, column)) for s, column in zip(sums, columns, strict=True)
        ], True

    def predict(self, body: str) -> Prediction:
        """Score one body. Pure: a few dictionary look-ups per character n-gram."""
        return self.predict_normalized(normalize(body))

    def predict_normalized(self, text: str) -> Prediction:
        """:meth:`predict` for a text already read by :func:`messages.normalize.normalize`."""
        word_grams, char_grams = _grams(text)
        words = text.count(" ") + 1 if text else 0
        logits, known_words = self._block(word_grams, self.words, list(self.intercepts))
        logits, known_chars = self._block(char_grams, self.chars, logits)
        known = known_words or known_chars
        crisis = [z for z, kind in zip(logits, self.class_kinds, strict=True) if kind is not None]
        calm = [z for z, kind in zip(logits, self.class_kinds, strict=True) if kind is None]
        crisis_mass = _logsumexp(crisis)
        margin = crisis_mass - _logsumexp(calm)
        by_kind = {
            kind: _logsumexp(
                [z for z, k in zip(logits, self.class_kinds, strict=True) if k == kind]
            )
            for kind in KINDS
            if kind in self.class_kinds
        }
        kind = max(by_kind, key=by_kind.__getitem__)
        # No known feature (an emoji, an empty body) is no evidence. A single word is left to the
        # rules, which name the one-word crises (kms, sos, auxilio): alone, "no" or "ok" carry
        # too little for a statistical guess, and are keyword replies.
        evidence = known and words >= MIN_WORDS
        return Prediction(
            margin=margin,
            evidence=evidence,
            is_crisis=evidence and margin >= self.threshold,
            kind=kind,
            kind_probability=math.exp(by_kind[kind] - crisis_mass),
        )


def model_from_document(document: Mapping[str, Any]) -> LearnedModel:
    """Build a model from the artefact's JSON document (also used by the trainer's checks)."""
    if document.get("features_version") != FEATURES_VERSION:
        raise ValueError("crisis model: built with other features than this code computes")
    class_kinds = tuple(document["class_kinds"])
    if not set(class_kinds) - {None} <= set(KINDS) or None not in class_kinds:
        raise ValueError("crisis model: unexpected classes")
    raw: Mapping[str, Sequence[float]] = document["vocabulary"]
    blocks: dict[str, dict[str, tuple[float, tuple[float, ...]]]] = {"w ": {}, "c": {}}
    for feature, row in raw.items():
        prefix = "w " if feature.startswith("w ") else "c"
        weights = tuple(float(x) for x in row[1:])
        blocks[prefix][feature[len(prefix) :]] = (float(row[0]), weights)
    return LearnedModel(
        version=int(document["version"]),
        threshold=float(document["threshold"]),
        class_kinds=class_kinds,
        intercepts=tuple(float(x) for x in document["intercepts"]),
        words=blocks["w "],
        chars=blocks["c"],
    )


def training_data_sha256(paths: Sequence[Path]) -> str:
    """The hash an artefact records of its training files: each file's name and bytes, in order."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@cache
def load_model() -> LearnedModel:
    """The shipped model, read once."""
    source = resources.files("messages").joinpath(ARTEFACT)
    return model_from_document(json.loads(source.read_text(encoding="utf-8")))
