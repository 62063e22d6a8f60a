"""The learned crisis layer: a linear text classifier run in pure Python.

The model is trained at build time by ``scripts/train_crisis_model.py`` (scikit-learn) on the
committed corpus in ``messages/data/crisis_corpus/`` and shipped as a small versioned artefact,
``messages/data/crisis_model_v2.json``. At run time nothing but the standard library is used:
no scikit-learn, no numpy, no network.

Features (:func:`features`) are read from :func:`messages.normalize.normalize`'s text, the one
the rules read: word 1- to 3-grams, and character 2- to 5-grams inside each word padded with a
space (like scikit-learn's ``char_wb``; the trainer uses this very function as its analyzer, so
training and run time cannot drift apart). Each block is weighted TF-IDF (sublinear tf, the
artefact's idf) and L2-normalised on its own, over the features in the artefact's vocabulary only
(the vocabulary was fixed before the final fit, so this is exactly what the model was trained on).

Two linear heads read the same features, one dictionary look-up per n-gram:

* crisis or not: one linear margin (crisis against the calm look-alikes and everyday texts),
  compared with the artefact's threshold. The trainer chose the classifier, its weights and the
  threshold by cross-validation grouped by author (each corpus file is written by one author,
  and a new author is what the bot meets), keeping recall in every crisis family and language
  high on the held-out author, so it leans toward false alarms;
* which reply fits: a multinomial head over the reply kinds, ``self`` (suicide, self-harm,
  hopelessness, farewells, means), ``overdose``, ``other_in_danger`` or ``violence`` (harm to
  others, or being threatened), trained on the crisis rows only; the top kind and its
  probability.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from itertools import compress, pairwise
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
FEATURES_VERSION: Final = 2
# Bumped whenever the artefact's layout changes.
FORMAT_VERSION: Final = 2
ARTEFACT: Final = "data/crisis_model_v2.json"

_CHAR_SIZES: Final = (2, 3, 4, 5)
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
    """Word 1-3-grams and character 2-5-grams of padded words, without the block prefixes."""
    words = text.split()
    word_grams = [
        *words,
        *map(" ".join, pairwise(words)),
        *map(" ".join, zip(words, words[1:], words[2:], strict=False)),
    ]
    padded = [f" {word} " for word in words]
    char_grams = [p[i : i + n] for p in padded for n in _CHAR_SIZES for i in range(len(p) - n + 1)]
    return word_grams, char_grams


@dataclass(frozen=True)
class Prediction:
    """The crisis margin (crisis when ``margin >= threshold``) and the most likely reply kind,
    with its probability."""

    margin: float
    # False when the layer has nothing to go on (see LearnedModel.predict_normalized).
    evidence: bool
    is_crisis: bool
    kind: Kind
    kind_probability: float


class _SublinearTf(dict[int, float]):
    """count -> 1 + log(count), filled as counts are met (a dictionary look-up, in C, after)."""

    def __missing__(self, count: int) -> float:
        self[count] = value = 1.0 + math.log(count)
        return value


_TF: Final = _SublinearTf()


def _block(found: Sequence[str], vocabulary: Mapping[str, tuple[float, ...]]) -> list[float] | None:
    """One block's contribution to a head's sums; None when no feature of the block is in the
    vocabulary.

    A row is (idf, idf * weight, ...) (see model_from_document), so a feature seen once adds its row, and one
    seen `count` times adds (1 + log count) times its row (sublinear tf); the sums are then
    scaled by the block's L2 norm. Everything is summed in C (map, filter, compress, zip, sum)
    rather than in a Python loop over the features."""
    counts = Counter(found)
    looked_up = list(map(vocabulary.get, counts))
    rows = list(filter(None, looked_up))
    if not rows:
        return None
    idf, *heads = zip(*rows, strict=True)
    if len(counts) == len(found):  # no feature repeated: every tf is 1
        sums = [sum(head) for head in heads]
        squares = sum(map(mul, idf, idf))
    else:
        tfs = list(compress(map(_TF.__getitem__, counts.values()), looked_up))
        sums = [sum(map(mul, tfs, head)) for head in heads]
        values = list(map(mul, tfs, idf))
        squares = sum(map(mul, values, values))
    scale = 1.0 / math.sqrt(squares)
    return [total * scale for total in sums]


@dataclass(frozen=True)
class LearnedModel:
    version: int
    threshold: float
    intercept: float
    kind_intercepts: tuple[float, float, float, float]
    # Per block (words, characters), gram without its block prefix -> (idf, idf * crisis weight)
    # for the crisis head, and -> (idf, idf * weight of each kind) for the kind head: two tables,
    # so that the usual question (crisis or not) reads two numbers per n-gram, not six.
    crisis_words: Mapping[str, tuple[float, float]]
    crisis_chars: Mapping[str, tuple[float, float]]
    kind_words: Mapping[str, tuple[float, float, float, float, float]]
    kind_chars: Mapping[str, tuple[float, float, float, float, float]]

    def predict(self, body: str) -> Prediction:
        """Score one body. Pure: a few dictionary look-ups per n-gram."""
        return self.predict_normalized(normalize(body))

    def _margin(self, word_grams: Sequence[str], char_grams: Sequence[str]) -> tuple[float, bool]:
        """The crisis margin, and whether any feature was known."""
        margin, known = self.intercept, False
        for block in (
            _block(word_grams, self.crisis_words),
            _block(char_grams, self.crisis_chars),
        ):
            if block is not None:
                margin += block[0]
                known = True
        return margin, known

    def is_crisis_normalized(self, text: str) -> bool:
        """``predict_normalized(text).is_crisis``, reading the crisis head only (the kind of
        reply is only needed for a crisis)."""
        if _word_count(text) < MIN_WORDS:
            return False
        margin, known = self._margin(*_grams(text))
        return known and margin >= self.threshold

    def predict_normalized(self, text: str) -> Prediction:
        """:meth:`predict` for a text already read by :func:`messages.normalize.normalize`."""
        word_grams, char_grams = _grams(text)
        margin, known = self._margin(word_grams, char_grams)
        kind_logits = list(self.kind_intercepts)
        for block in (_block(word_grams, self.kind_words), _block(char_grams, self.kind_chars)):
            if block is not None:
                kind_logits = [z + b for z, b in zip(kind_logits, block, strict=True)]
        top = max(kind_logits)
        exps = [math.exp(z - top) for z in kind_logits]
        best = exps.index(1.0)
        # No known feature (an emoji, an empty body) is no evidence. A single word is left to the
        # rules, which name the one-word crises (kms, sos, auxilio): alone, "no" or "ok" carry
        # too little for a statistical guess, and are keyword replies.
        evidence = known and _word_count(text) >= MIN_WORDS
        return Prediction(
            margin=margin,
            evidence=evidence,
            is_crisis=evidence and margin >= self.threshold,
            kind=KINDS[best],
            kind_probability=1.0 / sum(exps),
        )


def _word_count(text: str) -> int:
    return text.count(" ") + 1 if text else 0


def model_from_document(document: Mapping[str, Any]) -> LearnedModel:
    """Build a model from the artefact's JSON document (also used by the trainer's checks).

    The artefact stores each feature as [idf, crisis weight, one weight per kind]; in memory
    the weights are multiplied by the idf: what one occurrence of the feature adds to each head
    before the block's norm."""
    if document.get("features_version") != FEATURES_VERSION:
        raise ValueError("crisis model: built with other features than this code computes")
    if document.get("format_version") != FORMAT_VERSION or tuple(document["kinds"]) != KINDS:
        raise ValueError("crisis model: an artefact of another layout")
    raw: Mapping[str, Sequence[float]] = document["vocabulary"]
    crisis: dict[str, dict[str, tuple[float, float]]] = {"w ": {}, "c": {}}
    kinds: dict[str, dict[str, tuple[float, float, float, float, float]]] = {"w ": {}, "c": {}}
    for feature, row in raw.items():
        prefix = "w " if feature.startswith("w ") else "c"
        gram = feature[len(prefix) :]
        idf, w_crisis, w_self, w_overdose, w_other, w_violence = (float(x) for x in row)
        crisis[prefix][gram] = (idf, idf * w_crisis)
        kinds[prefix][gram] = (
            idf,
            idf * w_self,
            idf * w_overdose,
            idf * w_other,
            idf * w_violence,
        )
    a, b, c, d = (float(x) for x in document["kind_intercepts"])
    return LearnedModel(
        version=int(document["version"]),
        threshold=float(document["threshold"]),
        intercept=float(document["intercept"]),
        kind_intercepts=(a, b, c, d),
        crisis_words=crisis["w "],
        crisis_chars=crisis["c"],
        kind_words=kinds["w "],
        kind_chars=kinds["c"],
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
