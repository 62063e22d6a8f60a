"""Train the learned crisis layer and write its artefact, messages/data/crisis_model_v1.json.

Run from the repository root (needs the `dev` extra, for scikit-learn):

    python scripts/train_crisis_model.py            # cross-validate, choose, fit, write
    python scripts/train_crisis_model.py --check    # rebuild in memory; exit 1 if it differs

Deterministic: fixed seed, fixed folds, features sorted before selection, weights rounded.

The corpus is every row of messages/data/crisis_corpus/*.tsv (FAMILY, LANGUAGE, MESSAGE) and the
rules' own phrase suite, tests/messages/crisis_phrases.tsv (its labels mapped to families below).
The held-out set (tests/messages/crisis_heldout.tsv) is never read here.

What is chosen, and how (cross-validation on this corpus only, stratified by family):
* the classifier and its regularisation, among a few candidates (see CANDIDATES): for each,
  the out-of-fold margins give the threshold that keeps recall at >= 97 %, and the candidate
  with the fewest false alarms on non-crisis rows at that recall wins;
* the threshold of the shipped model: the same out-of-fold rule, on the winner's margins.
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
from sklearn.model_selection import StratifiedKFold  # noqa: E402

from bench.crisis_recall import CRISIS_FAMILIES, Row, load_rows, report  # noqa: E402
from messages.crisis import KIND_CONFIDENCE, detect_crisis, learned_layer_consulted  # noqa: E402
from messages.crisis_model import (  # noqa: E402
    FEATURES_VERSION,
    features,
    model_from_document,
    training_data_sha256,
)

CORPUS_DIR = ROOT / "messages" / "data" / "crisis_corpus"
PHRASES = ROOT / "tests" / "messages" / "crisis_phrases.tsv"
OUT = ROOT / "messages" / "data" / "crisis_model_v1.json"
VERSION = 1
SEED = 16
FOLDS = 5
TARGET_RECALL = 0.97

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


def training_rows() -> list[Row]:
    rows: list[Row] = []
    for path in sorted(CORPUS_DIR.glob("*.tsv")):
        rows += load_rows(path)
    rows += load_phrase_suite()
    return rows


# --- fitting ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    name: str
    c: float  # inverse regularisation strength of the logistic regression
    keep: int  # features kept (by weight) for the final vocabulary
    everyday_weight: float = 1.0  # sample weight of everyday rows (the bulk of real traffic)


CANDIDATES = (
    Candidate("multinomial logistic regression C=4, 6000 features", 4.0, 6000),
    Candidate("multinomial logistic regression C=4, everyday x3, 6000 features", 4.0, 6000, 3.0),
)
# One class per family, crisis families first; the reply kind of each (None: calm).
CLASSES = (*CRISIS_FAMILIES, "lookalike", "everyday")


def _word_analyzer(body: str) -> list[str]:
    return features(body)[0]


def _char_analyzer(body: str) -> list[str]:
    return features(body)[1]


def _vectorizers(
    vocabulary: tuple[list[str], list[str]] | None = None,
) -> tuple[TfidfVectorizer, TfidfVectorizer]:
    word = TfidfVectorizer(
        analyzer=_word_analyzer,
        sublinear_tf=True,
        min_df=1 if vocabulary else 2,
        vocabulary=vocabulary[0] if vocabulary else None,
    )
    char = TfidfVectorizer(
        analyzer=_char_analyzer,
        sublinear_tf=True,
        min_df=1 if vocabulary else 2,
        vocabulary=vocabulary[1] if vocabulary else None,
    )
    return word, char


def _matrix(word: TfidfVectorizer, char: TfidfVectorizer, messages: list[str]) -> csr_matrix:
    return hstack([word.fit_transform(messages), char.fit_transform(messages)]).tocsr()


def _classifier(candidate: Candidate, x: csr_matrix, rows: Sequence[Row]) -> LogisticRegression:
    labels = np.array([CLASSES.index(row.family) for row in rows])
    weights = np.array([candidate.everyday_weight if r.family == "everyday" else 1.0 for r in rows])
    model = LogisticRegression(C=candidate.c, max_iter=5000)
    model.fit(x, labels, sample_weight=weights)
    assert list(model.classes_) == list(range(len(CLASSES))), "a family has no rows"
    return model


def fit(rows: Sequence[Row], candidate: Candidate, threshold: float = 0.0) -> dict[str, Any]:
    """Fit the model on `rows` and return the artefact's document."""
    messages = [row.message for row in rows]

    # 1. Full vocabulary (features seen at least twice); pick the features that carry weight.
    word, char = _vectorizers()
    x = _matrix(word, char, messages)
    names = [*word.get_feature_names_out(), *char.get_feature_names_out()]
    importance = np.abs(_classifier(candidate, x, rows).coef_).max(axis=0)
    order = sorted(range(len(names)), key=lambda i: (-importance[i], names[i]))
    kept = sorted(names[i] for i in order[: candidate.keep])

    # 2. Refit on the kept vocabulary only: the norm at run time is over these features too.
    vocabulary = ([f for f in kept if f.startswith("w ")], [f for f in kept if f.startswith("c")])
    word, char = _vectorizers(vocabulary)
    x = _matrix(word, char, messages)
    model = _classifier(candidate, x, rows)

    idf = [*word.idf_, *char.idf_]
    names = [*word.get_feature_names_out(), *char.get_feature_names_out()]
    table = {
        name: [round(float(idf[i]), 3), *(round(float(w), 2) for w in model.coef_[:, i])]
        for i, name in enumerate(names)
    }
    return {
        "name": "crisis_model",
        "version": VERSION,
        "features_version": FEATURES_VERSION,
        "features": "normalize() text; word 1-2-grams and char 2-5-grams in padded words; "
        "sublinear tf-idf, each block L2-normalised over this vocabulary",
        "classifier": candidate.name,
        "classes": list(CLASSES),
        "class_kinds": [FAMILY_KIND.get(family) for family in CLASSES],
        "threshold": round(threshold, 4),
        "intercepts": [round(float(b), 4) for b in model.intercept_],
        "vocabulary": table,
    }


def cross_validated(rows: Sequence[Row], candidate: Candidate) -> list[tuple[float, str, float]]:
    """Out-of-fold (margin, kind, kind probability) per row, each from a model that never saw it,
    scored by the pure-Python inference the bot runs."""
    folds = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=SEED)
    families = [row.family for row in rows]
    out: list[tuple[float, str, float]] = [(0.0, "self", 0.0)] * len(rows)
    for train, test in folds.split(np.zeros(len(rows)), families):
        model = model_from_document(fit([rows[i] for i in train], candidate))
        for i in test:
            p = model.predict(rows[i].message)
            # A text the layer stays silent on (one word, nothing known) is never found by it.
            margin = p.margin if p.evidence else -math.inf
            out[i] = (margin, p.kind, p.kind_probability)
    return out


def recall_threshold(
    margins: Sequence[float],
    positive: Sequence[bool],
    by_rules: Sequence[bool],
    target: float = TARGET_RECALL,
) -> float:
    """The highest threshold at which the detector as shipped (rules, or the learned layer at or
    above the threshold) still finds at least `target` of the crisis rows."""
    need = math.ceil(target * sum(positive))
    found_by_rules = sum(p and r for p, r in zip(positive, by_rules, strict=True))
    rest = sorted(
        (m for m, p, r in zip(margins, positive, by_rules, strict=True) if p and not r),
        reverse=True,
    )
    return rest[max(0, need - found_by_rules - 1)]


def _false_alarms(alarms: Sequence[bool], rows: Sequence[Row], family: str | None) -> float:
    chosen = [
        a
        for a, r in zip(alarms, rows, strict=True)
        if (r.family == family if family else r.family not in CRISIS_FAMILIES)
    ]
    return sum(chosen) / max(1, len(chosen))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the shipped artefact")
    args = parser.parse_args(argv)

    rows = training_rows()
    positive = [row.family in CRISIS_FAMILIES for row in rows]
    by_rules = [detect_crisis(row.message, learned=False).is_crisis for row in rows]
    # Texts detect_crisis does not ask the learned layer about count as not found by it.
    consulted = [learned_layer_consulted(row.message) for row in rows]
    print(f"corpus: {len(rows)} rows, sha256 {corpus_sha256()}")
    print(
        f"threshold: the highest at which rules or the learned layer find {TARGET_RECALL:.0%} "
        f"of the crisis rows, on {FOLDS}-fold out-of-fold scores"
    )
    best: tuple[float, Candidate, list[tuple[float, str, float]], float] | None = None
    for candidate in CANDIDATES:
        oof = [
            (margin if asked else -math.inf, kind, probability)
            for (margin, kind, probability), asked in zip(
                cross_validated(rows, candidate), consulted, strict=True
            )
        ]
        margins = [m for m, _, _ in oof]
        print(f"{candidate.name}:")
        for target in (0.90, 0.95, TARGET_RECALL, 0.99):
            th = recall_threshold(margins, positive, by_rules, target)
            alarms = [m >= th or r for m, r in zip(margins, by_rules, strict=True)]
            print(
                f"  recall {target:.0%}: threshold {th:7.3f}; false alarms: lookalike "
                f"{_false_alarms(alarms, rows, 'lookalike'):.1%}, everyday "
                f"{_false_alarms(alarms, rows, 'everyday'):.1%}, all calm "
                f"{_false_alarms(alarms, rows, None):.1%}"
            )
        threshold = recall_threshold(margins, positive, by_rules)
        alarms = [m >= threshold or r for m, r in zip(margins, by_rules, strict=True)]
        fp_all = _false_alarms(alarms, rows, None)
        # Fewest false alarms at the target recall; on a tie, the smaller model (listed later).
        if best is None or fp_all <= best[0]:
            best = (fp_all, candidate, oof, threshold)
    assert best is not None
    _, candidate, oof, threshold = best
    print(f"chosen: {candidate.name}, threshold {threshold:.3f}")

    def oof_detect(i: int, rules: bool) -> tuple[bool, str | None]:
        margin, kind, probability = oof[i]
        rule = detect_crisis(rows[i].message, learned=False)
        learned = margin >= threshold
        if not learned and not (rules and rule.is_crisis):
            return False, None
        if probability >= KIND_CONFIDENCE:
            return True, kind
        return True, "overdose" if "overdose" in rule.categories else "self"

    print("\ncross-validated, learned layer alone:")
    report(rows, [oof_detect(i, rules=False) for i in range(len(rows))])
    print("\ncross-validated, rules or learned layer (the rules were tuned on the phrase suite):")
    report(rows, [oof_detect(i, rules=True) for i in range(len(rows))])

    document = fit(rows, candidate, threshold)
    document["training_data_sha256"] = corpus_sha256()
    document["training_files"] = [str(p.relative_to(ROOT)) for p in corpus_files()]
    document["training_rows"] = len(rows)
    text = json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n"
    digest = hashlib.sha256(text.encode()).hexdigest()
    if args.check:
        same = OUT.read_text(encoding="utf-8") == text
        print(f"artefact {'matches' if same else 'DIFFERS from'} a rebuild (sha256 {digest})")
        return 0 if same else 1
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}: {len(text.encode()):,} bytes, sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
