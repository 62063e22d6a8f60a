"""Train the learned crisis layer and write its artefact, messages/data/crisis_model_v2.json.

Run from the repository root (needs the `dev` extra, for scikit-learn):

    python scripts/train_crisis_model.py            # cross-validate, choose, fit, write
    python scripts/train_crisis_model.py --check    # rebuild in memory; exit 1 if it differs

Deterministic: fixed folds (one per author), deterministic solvers, features sorted before
selection, weights rounded.

The corpus is every row of messages/data/crisis_corpus/*.tsv (FAMILY, LANGUAGE, MESSAGE; each file
is written by one author) and the rules' own phrase suite, tests/messages/crisis_phrases.tsv (its
labels mapped to families below), which counts as one more author. The held-out sets
(tests/messages/crisis_heldout*.tsv) are never read here.

Everything is chosen by cross-validation grouped by author, leave one author out: the bot meets
people who wrote none of the corpus, so each fold trains on every other author and scores the
held-out author's rows with the pure-Python inference the bot runs. On those out-of-fold scores:

* the threshold of a candidate is the highest at which the detector as shipped (rules, or the
  learned layer at or above the threshold) finds at least TARGET_RECALL of the crisis rows in
  every crisis family and in each language (not overall: a family the corpus has few of must not
  hide behind the others);
* the candidate (classifier, regularisation, class weights, vocabulary size; see CANDIDATES) is
  the one with the fewest false alarms on everyday texts at its threshold (every false alarm is a
  988 reply and a page to a coach), then, among those within EVERYDAY_TOLERANCE of it, the fewest
  on look-alikes; the rules' own false alarms count too.

The crisis head is a binary linear classifier (crisis families against look-alikes and everyday
texts); the reply-kind head is a multinomial logistic regression over KINDS on the crisis rows.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from scipy.sparse import csr_matrix, hstack  # noqa: E402
from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.svm import LinearSVC  # noqa: E402

from bench.crisis_recall import CRISIS_FAMILIES, Row, load_rows  # noqa: E402
from messages.crisis import KIND_CONFIDENCE, detect_crisis, learned_layer_consulted  # noqa: E402
from messages.crisis_model import (  # noqa: E402
    FEATURES_VERSION,
    FORMAT_VERSION,
    KINDS,
    features,
    model_from_document,
    training_data_sha256,
)

CORPUS_DIR = ROOT / "messages" / "data" / "crisis_corpus"
PHRASES = ROOT / "tests" / "messages" / "crisis_phrases.tsv"
PHRASES_AUTHOR = "phrase_suite"
OUT = ROOT / "messages" / "data" / "crisis_model_v2.json"
VERSION = 2
TARGET_RECALL = 0.96
EVERYDAY_TOLERANCE = 0.0025
KIND_C = 4.0
CALM_FAMILIES = ("lookalike", "everyday")

FAMILY_KIND = {
    "suicidal_direct": "self",
    "suicidal_indirect": "self",
    "hopelessness": "self",
    "farewell": "self",
    "means": "self",
    "self_harm": "self",
    "overdose": "overdose",
    "other_in_danger": "other_in_danger",
    "harm_others": "violence",
    "threatened": "violence",
}

# The phrase suite labels danger rows "danger"; which reply each needs is decided here.
_PHRASE_DANGER_FAMILY = {
    "i'm gonna kill him": "harm_others",
    "he got shot": "other_in_danger",
    "she's dying": "other_in_danger",
    "se está muriendo": "other_in_danger",
}


def corpus_files() -> list[Path]:
    return [*sorted(CORPUS_DIR.glob("*.tsv")), PHRASES]


def corpus_sha256() -> str:
    return training_data_sha256(corpus_files())


def load_phrase_suite(path: Path = PHRASES) -> list[Row]:
    """The rules' 4-column suite as families: crisis categories -> a crisis family, ok rows ->
    lookalike under the idiom/false-positive headings, everyday elsewhere."""
    rows: list[Row] = []
    section = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        if raw.startswith("# ---"):
            section = raw
            continue
        if not raw.strip() or raw.startswith("#"):
            continue
        label, categories, language, message = raw.split("\t")
        if label == "ok":
            lookalike = "hyperbole" in section or "false positives" in section
            family = "lookalike" if lookalike else "everyday"
        elif "overdose" in categories:
            family = "overdose"
        elif "self_harm" in categories:
            family = "self_harm"
        elif "suicide" in categories:
            family = "suicidal_direct"
        else:
            family = _PHRASE_DANGER_FAMILY.get(message.lower(), "threatened")
        rows.append(Row(family, language, message))
    return rows


@dataclass(frozen=True)
class Corpus:
    rows: list[Row]
    authors: list[str]
    # Per row: its (word, character) features, computed once.
    grams: list[tuple[list[str], list[str]]]


def training_corpus() -> Corpus:
    rows: list[Row] = []
    authors: list[str] = []
    for path in sorted(CORPUS_DIR.glob("*.tsv")):
        found = load_rows(path)
        rows += found
        authors += [path.stem] * len(found)
    found = load_phrase_suite()
    rows += found
    authors += [PHRASES_AUTHOR] * len(found)
    return Corpus(rows, authors, [features(row.message) for row in rows])


def training_rows() -> list[Row]:
    return training_corpus().rows


# --- fitting ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    name: str
    loss: str  # "logistic" (logistic regression) or "hinge" (linear SVM)
    c: float  # inverse regularisation strength
    keep: int | None  # features kept (by weight) for the final vocabulary; None: all
    everyday_weight: float = 1.0  # sample weight of everyday rows (the bulk of real traffic)
    lookalike_weight: float = 1.0
    min_df: int = 2  # rows a feature must be seen in to be considered at all


CANDIDATES = (
    Candidate("logistic regression C=16, everyday x10", "logistic", 16.0, None, 10.0),
    Candidate("logistic regression C=4, everyday x3", "logistic", 4.0, None, 3.0),
    Candidate("linear SVM C=0.3, everyday x10", "hinge", 0.3, None, 10.0),
    Candidate(
        "logistic regression C=16, everyday x10, 12,000 features", "logistic", 16.0, 12_000, 10.0
    ),
)


def _identity(grams: list[str]) -> list[str]:
    return grams


def _vectorizer(vocabulary: list[str] | None = None, min_df: int = 1) -> TfidfVectorizer:
    return TfidfVectorizer(
        analyzer=_identity,
        sublinear_tf=True,
        min_df=1 if vocabulary else min_df,
        vocabulary=vocabulary,
    )


def _matrix(
    corpus: Corpus,
    indices: Sequence[int],
    vocabulary: tuple[list[str], list[str]] | None = None,
    min_df: int = 1,
) -> tuple[csr_matrix, list[str], list[float]]:
    """Tf-idf of the rows, each block L2-normalised; the feature names and their idf."""
    blocks = []
    names: list[str] = []
    idf: list[float] = []
    for b in (0, 1):
        vectorizer = _vectorizer(vocabulary[b] if vocabulary else None, min_df)
        blocks.append(vectorizer.fit_transform([corpus.grams[i][b] for i in indices]))
        names += list(vectorizer.get_feature_names_out())
        idf += [float(x) for x in vectorizer.idf_]
    return hstack(blocks).tocsr(), names, idf


def _crisis_head(candidate: Candidate, x: csr_matrix, rows: Sequence[Row]) -> tuple[Any, float]:
    """(weights, intercept) of the binary crisis classifier."""
    labels = np.array([row.family in CRISIS_FAMILIES for row in rows], dtype=int)
    weight = {"everyday": candidate.everyday_weight, "lookalike": candidate.lookalike_weight}
    sample_weight = np.array([weight.get(row.family, 1.0) for row in rows])
    if candidate.loss == "logistic":
        model: Any = LogisticRegression(C=candidate.c, max_iter=5000)
    else:
        model = LinearSVC(C=candidate.c, max_iter=50_000, random_state=0)
    model.fit(x, labels, sample_weight=sample_weight)
    return model.coef_[0], float(model.intercept_[0])


def _kind_head(x: csr_matrix, rows: Sequence[Row]) -> tuple[Any, Any]:
    """(weights per kind, intercepts) of the reply-kind classifier, on the crisis rows."""
    crisis = [i for i, row in enumerate(rows) if row.family in CRISIS_FAMILIES]
    labels = np.array([KINDS.index(FAMILY_KIND[rows[i].family]) for i in crisis])  # type: ignore[arg-type]
    model = LogisticRegression(C=KIND_C, max_iter=5000)
    model.fit(x[crisis], labels)
    assert list(model.classes_) == list(range(len(KINDS))), "a kind has no rows"
    return model.coef_, model.intercept_


def fit(
    corpus: Corpus, indices: Sequence[int], candidate: Candidate, threshold: float = 0.0
) -> dict[str, Any]:
    """Fit the model on the corpus rows at `indices` and return the artefact's document."""
    rows = [corpus.rows[i] for i in indices]

    # 1. Full vocabulary (features seen in at least min_df rows).
    x, names, idf = _matrix(corpus, indices, min_df=candidate.min_df)
    crisis_w, intercept = _crisis_head(candidate, x, rows)
    kind_w, kind_b = _kind_head(x, rows)
    if candidate.keep is not None and candidate.keep < len(names):
        # 2. Keep the features that carry weight in either head (each head's weights scaled to
        #    its largest), and refit on them: the norm at run time is over these features too.
        importance = np.maximum(
            np.abs(crisis_w) / np.abs(crisis_w).max(),
            np.abs(kind_w).max(axis=0) / np.abs(kind_w).max(),
        )
        order = sorted(range(len(names)), key=lambda i: (-importance[i], names[i]))
        kept = sorted(names[i] for i in order[: candidate.keep])
        vocabulary = (
            [f for f in kept if f.startswith("w ")],
            [f for f in kept if f.startswith("c")],
        )
        x, names, idf = _matrix(corpus, indices, vocabulary)
        crisis_w, intercept = _crisis_head(candidate, x, rows)
        kind_w, kind_b = _kind_head(x, rows)
    table = {
        name: [
            round(idf[i], 3),
            round(float(crisis_w[i]), 3),
            *(round(float(w), 2) for w in kind_w[:, i]),
        ]
        for i, name in enumerate(names)
    }
    return {
        "name": "crisis_model",
        "version": VERSION,
        "format_version": FORMAT_VERSION,
        "features_version": FEATURES_VERSION,
        "features": "normalize() text; word 1-3-grams and char 2-5-grams in padded words; "
        "sublinear tf-idf, each block L2-normalised over this vocabulary",
        "vocabulary_layout": "feature -> [idf, crisis weight, one weight per kind]",
        "classifier": candidate.name,
        "kinds": list(KINDS),
        "threshold": round(threshold, 4),
        "intercept": round(intercept, 4),
        "kind_intercepts": [round(float(b), 4) for b in kind_b],
        "vocabulary": table,
    }


# --- cross-validation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class OutOfFold:
    """Per row, from a model that never saw its author: the margin (-inf when the detector does
    not ask the learned layer, or the layer has no evidence), the kind and its probability."""

    margins: list[float]
    kinds: list[str]
    probabilities: list[float]


def cross_validated(corpus: Corpus, candidate: Candidate, consulted: Sequence[bool]) -> OutOfFold:
    """Leave one author out, scored by the pure-Python inference the bot runs."""
    n = len(corpus.rows)
    margins = [-math.inf] * n
    kinds = ["self"] * n
    probabilities = [0.0] * n
    for author in sorted(set(corpus.authors)):
        train = [i for i in range(n) if corpus.authors[i] != author]
        model = model_from_document(fit(corpus, train, candidate))
        for i in range(n):
            if corpus.authors[i] != author:
                continue
            p = model.predict(corpus.rows[i].message)
            if p.evidence and consulted[i]:
                margins[i] = p.margin
            kinds[i], probabilities[i] = p.kind, p.kind_probability
    return OutOfFold(margins, kinds, probabilities)


def _crisis_groups(rows: Sequence[Row]) -> list[list[int]]:
    """The row sets whose recall must each reach the target: every crisis family, each language."""
    groups = [[i for i, r in enumerate(rows) if r.family == f] for f in CRISIS_FAMILIES]
    languages = sorted({r.language for r in rows if r.family in CRISIS_FAMILIES})
    groups += [
        [i for i, r in enumerate(rows) if r.family in CRISIS_FAMILIES and r.language == language]
        for language in languages
    ]
    return [group for group in groups if group]


def recall_threshold(
    margins: Sequence[float],
    rows: Sequence[Row],
    by_rules: Sequence[bool],
    target: float = TARGET_RECALL,
) -> float:
    """The highest threshold at which the detector as shipped (rules, or the learned layer at or
    above the threshold) still finds at least `target` of the crisis rows of every family and
    of each language."""
    thresholds = []
    for group in _crisis_groups(rows):
        need = math.ceil(target * len(group)) - sum(by_rules[i] for i in group)
        rest = sorted((margins[i] for i in group if not by_rules[i]), reverse=True)
        if need <= 0:
            thresholds.append(math.inf)
        else:
            thresholds.append(rest[need - 1] if need <= len(rest) else -math.inf)
    return min(thresholds)


def _rate(alarms: Sequence[bool], chosen: Sequence[int]) -> float:
    return sum(alarms[i] for i in chosen) / len(chosen) if chosen else math.nan


_SHORT = {
    "suicidal_direct": "sui",
    "suicidal_indirect": "ind",
    "hopelessness": "hope",
    "farewell": "fare",
    "means": "means",
    "self_harm": "harm",
    "overdose": "od",
    "other_in_danger": "other",
    "harm_others": "hurt",
    "threatened": "threat",
}


def author_table(corpus: Corpus, alarms: Sequence[bool]) -> list[str]:
    """Recall per family and language, and false alarms, per held-out author and pooled."""
    rows = corpus.rows
    heads = [*(_SHORT[f] for f in CRISIS_FAMILIES), "en", "es", "all", "FAlook", "FAevery"]
    lines = [f"  {'held-out author':<16}" + "".join(f"{h:>8}" for h in heads)]
    for author in [*sorted(set(corpus.authors)), "pooled"]:
        mine = [i for i in range(len(rows)) if author in ("pooled", corpus.authors[i])]
        crisis = [i for i in mine if rows[i].family in CRISIS_FAMILIES]
        cells = [_rate(alarms, [i for i in mine if rows[i].family == f]) for f in CRISIS_FAMILIES]
        cells += [
            _rate(alarms, [i for i in crisis if rows[i].language == lang]) for lang in ("en", "es")
        ]
        cells.append(_rate(alarms, crisis))
        cells += [_rate(alarms, [i for i in mine if rows[i].family == f]) for f in CALM_FAMILIES]
        lines.append(
            f"  {author:<16}" + "".join("       -" if math.isnan(c) else f"{c:8.1%}" for c in cells)
        )
    return lines


@dataclass(frozen=True)
class Evaluation:
    candidate: Candidate
    oof: OutOfFold
    threshold: float
    alarms: list[bool]
    everyday: float
    lookalike: float


def evaluate(
    corpus: Corpus, candidate: Candidate, by_rules: Sequence[bool], consulted: Sequence[bool]
) -> Evaluation:
    oof = cross_validated(corpus, candidate, consulted)
    threshold = recall_threshold(oof.margins, corpus.rows, by_rules)
    alarms = [m >= threshold or r for m, r in zip(oof.margins, by_rules, strict=True)]
    families = [row.family for row in corpus.rows]
    everyday = _rate(alarms, [i for i, f in enumerate(families) if f == "everyday"])
    lookalike = _rate(alarms, [i for i, f in enumerate(families) if f == "lookalike"])
    return Evaluation(candidate, oof, threshold, alarms, everyday, lookalike)


def choose(evaluations: Sequence[Evaluation]) -> Evaluation:
    """Fewest everyday false alarms; among those within EVERYDAY_TOLERANCE of the fewest, the
    fewest look-alike false alarms; then the earlier candidate."""
    fewest = min(e.everyday for e in evaluations)
    close = [e for e in evaluations if e.everyday <= fewest + EVERYDAY_TOLERANCE]
    return min(close, key=lambda e: (e.lookalike, e.everyday))


def kind_accuracy(corpus: Corpus, evaluation: Evaluation) -> float:
    """How often a caught crisis gets the reply its family needs, out of fold, as detect_crisis
    decides it (the rules decide when the learned layer is unsure)."""
    right = total = 0
    for i, row in enumerate(corpus.rows):
        if row.family not in CRISIS_FAMILIES or not evaluation.alarms[i]:
            continue
        if evaluation.oof.probabilities[i] >= KIND_CONFIDENCE:
            kind = evaluation.oof.kinds[i]
        else:
            categories = detect_crisis(row.message, learned=False).categories
            kind = "overdose" if "overdose" in categories else "self"
        total += 1
        right += kind == FAMILY_KIND[row.family]
    return right / max(1, total)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the shipped artefact")
    args = parser.parse_args(argv)

    corpus = training_corpus()
    rows = corpus.rows
    by_rules = [detect_crisis(row.message, learned=False).is_crisis for row in rows]
    # Texts detect_crisis does not ask the learned layer about count as not found by it.
    consulted = [learned_layer_consulted(row.message) for row in rows]
    authors = sorted(set(corpus.authors))
    print(f"corpus: {len(rows)} rows by {len(authors)} authors, sha256 {corpus_sha256()}")
    print(
        f"leave one author out; threshold: the highest at which rules or the learned layer find "
        f"{TARGET_RECALL:.0%} of the crisis rows of every family and each language, out of fold"
    )
    print("rules alone:")
    print("\n".join(author_table(corpus, by_rules)))
    evaluations = []
    for candidate in CANDIDATES:
        evaluation = evaluate(corpus, candidate, by_rules, consulted)
        evaluations.append(evaluation)
        print(
            f"{candidate.name}: threshold {evaluation.threshold:.3f}, false alarms everyday "
            f"{evaluation.everyday:.1%}, look-alike {evaluation.lookalike:.1%}"
        )
    chosen = choose(evaluations)
    print(f"\nchosen: {chosen.candidate.name}, threshold {chosen.threshold:.3f}")
    print("out of fold, rules or learned layer, per held-out author:")
    print("\n".join(author_table(corpus, chosen.alarms)))
    print(f"reply kind right on caught crises: {kind_accuracy(corpus, chosen):.1%}")

    document = fit(corpus, range(len(rows)), chosen.candidate, chosen.threshold)
    document["training_data_sha256"] = corpus_sha256()
    document["training_files"] = [str(p.relative_to(ROOT)) for p in corpus_files()]
    document["training_rows"] = len(rows)
    text = json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n"
    digest = hashlib.sha256(text.encode()).hexdigest()
    if args.check:
        same = OUT.exists() and OUT.read_text(encoding="utf-8") == text
        print(f"artefact {'matches' if same else 'DIFFERS from'} a rebuild (sha256 {digest})")
        return 0 if same else 1
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}: {len(text.encode()):,} bytes, sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
