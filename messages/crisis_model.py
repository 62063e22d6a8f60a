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
import itertools
import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
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

_CHAR_MIN, _CHAR_MAX = 2, 5
# The learned layer says nothing about a text of fewer words (see LearnedModel.predict).
MIN_WORDS: Final = 2

# A vocabulary row: idf, the crisis head's weight, then one weight per kind (KINDS order).
_Row = tuple[float, float, float, float, float, float]


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
    word_grams = words + [f"{a} {b}" for a, b in itertools.pairwise(words)]
    word_grams += [f"{a} {b} {c}" for a, b, c in zip(words, words[1:], words[2:], strict=False)]
    char_grams: list[str] = []
    for word in words:
        padded = f" {word} "
        length = len(padded)
        for n in range(_CHAR_MIN, min(_CHAR_MAX, length) + 1):
            char_grams += [padded[i : i + n] for i in range(length - n + 1)]
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


def _block(found: Sequence[str], vocabulary: Mapping[str, _Row]) -> list[float] | None:
    """One block's contribution to the five heads' sums (crisis, then each kind); None when no
    feature of the block is in the vocabulary."""
    rows: list[_Row] = []
    values: list[float] = []
    norm = 0.0
    for feature, count in Counter(found).items():
        row = vocabulary.get(feature)
        if row is None:
            continue
        value = row[0] if count == 1 else (1.0 + math.log(count)) * row[0]
        norm += value * value
        values.append(value)
        rows.append(row)
    if not rows:
        return None
    scale = 1.0 / math.sqrt(norm)
    crisis = kind_self = kind_overdose = kind_other = kind_violence = 0.0
    for value, (_, w_crisis, w_self, w_overdose, w_other, w_violence) in zip(
        values, rows, strict=True
    ):
        crisis += value * w_crisis
        kind_self += value * w_self
        kind_overdose += value * w_overdose
        kind_other += value * w_other
        kind_violence += value * w_violence
    return [
        crisis * scale,
        kind_self * scale,
        kind_overdose * scale,
        kind_other * scale,
        kind_violence * scale,
    ]


@dataclass(frozen=True)
class LearnedModel:
    version: int
    threshold: float
    intercept: float
    kind_intercepts: tuple[float, float, float, float]
    # Per block (words, characters), gram without its block prefix -> its row (see _Row).
    words: Mapping[str, _Row]
    chars: Mapping[str, _Row]

    def predict(self, body: str) -> Prediction:
        """Score one body. Pure: one dictionary look-up per n-gram."""
        return self.predict_normalized(normalize(body))

    def predict_normalized(self, text: str) -> Prediction:
        """:meth:`predict` for a text already read by :func:`messages.normalize.normalize`."""
        word_grams, char_grams = _grams(text)
        words = text.count(" ") + 1 if text else 0
        sums = [self.intercept, *self.kind_intercepts]
        known = False
        for block in (_block(word_grams, self.words), _block(char_grams, self.chars)):
            if block is not None:
                known = True
                sums = [s + b for s, b in zip(sums, block, strict=True)]
        margin, kind_logits = sums[0], sums[1:]
        top = max(kind_logits)
        exps = [math.exp(z - top) for z in kind_logits]
        best = exps.index(1.0)
        # No known feature (an emoji, an empty body) is no evidence. A single word is left to the
        # rules, which name the one-word crises (kms, sos, auxilio): alone, "no" or "ok" carry
        # too little for a statistical guess, and are keyword replies.
        evidence = known and words >= MIN_WORDS
        return Prediction(
            margin=margin,
            evidence=evidence,
            is_crisis=evidence and margin >= self.threshold,
            kind=KINDS[best],
            kind_probability=1.0 / sum(exps),
        )


def _row(values: Sequence[float]) -> _Row:
    idf, crisis, kind_self, kind_overdose, kind_other, kind_violence = (float(x) for x in values)
    return (idf, crisis, kind_self, kind_overdose, kind_other, kind_violence)


def model_from_document(document: Mapping[str, Any]) -> LearnedModel:
    """Build a model from the artefact's JSON document (also used by the trainer's checks)."""
    if document.get("features_version") != FEATURES_VERSION:
        raise ValueError("crisis model: built with other features than this code computes")
    if document.get("format_version") != FORMAT_VERSION or tuple(document["kinds"]) != KINDS:
        raise ValueError("crisis model: an artefact of another layout")
    raw: Mapping[str, Sequence[float]] = document["vocabulary"]
    blocks: dict[str, dict[str, _Row]] = {"w ": {}, "c": {}}
    for feature, row in raw.items():
        prefix = "w " if feature.startswith("w ") else "c"
        blocks[prefix][feature[len(prefix) :]] = _row(row)
    a, b, c, d = (float(x) for x in document["kind_intercepts"])
    return LearnedModel(
        version=int(document["version"]),
        threshold=float(document["threshold"]),
        intercept=float(document["intercept"]),
        kind_intercepts=(a, b, c, d),
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
