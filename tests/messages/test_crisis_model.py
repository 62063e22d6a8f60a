"""The learned crisis layer's artefact and its pure-Python inference."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from messages.crisis_model import (
    ARTEFACT,
    FEATURES_VERSION,
    FORMAT_VERSION,
    KINDS,
    features,
    load_model,
    model_from_document,
    training_data_sha256,
)
from messages.normalize import normalize

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = ROOT / "messages"
DOCUMENT = json.loads((MESSAGES / ARTEFACT).read_text(encoding="utf-8"))
MAX_ARTEFACT_BYTES = 2_000_000


def test_the_artefact_was_built_from_the_committed_corpus() -> None:
    files = [ROOT / name for name in DOCUMENT["training_files"]]
    assert any("crisis_corpus" in name for name in DOCUMENT["training_files"])
    assert not any("heldout" in name for name in DOCUMENT["training_files"])
    assert training_data_sha256(files) == DOCUMENT["training_data_sha256"]
    rows = sum(
        1
        for path in files
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    )
    assert rows == DOCUMENT["training_rows"] >= 2000


def test_the_artefact_is_versioned_and_small() -> None:
    assert DOCUMENT["version"] == load_model().version == 2
    assert ARTEFACT.endswith("_v2.json")
    assert DOCUMENT["features_version"] == FEATURES_VERSION
    assert DOCUMENT["format_version"] == FORMAT_VERSION
    assert (MESSAGES / ARTEFACT).stat().st_size <= MAX_ARTEFACT_BYTES
    assert DOCUMENT["kinds"] == list(KINDS)
    # Each feature: its idf, the crisis head's weight and one weight per kind.
    assert {len(row) for row in DOCUMENT["vocabulary"].values()} == {2 + len(KINDS)}


def test_only_the_current_artefact_is_shipped() -> None:
    assert [path.name for path in (MESSAGES / "data").glob("crisis_model_v*.json")] == [
        Path(ARTEFACT).name
    ]


@pytest.mark.parametrize(
    ("key", "value"),
    [("format_version", 1), ("features_version", FEATURES_VERSION - 1), ("kinds", ["self"])],
)
def test_an_artefact_of_another_layout_is_refused(key: str, value: object) -> None:
    with pytest.raises(ValueError, match="crisis model"):
        model_from_document({**DOCUMENT, key: value})


def test_messages_imports_only_the_standard_library_and_itself() -> None:
    for path in MESSAGES.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top not in {"sklearn", "numpy", "scipy", "requests", "urllib", "socket"}, (
                    path.name,
                    name,
                )


def test_features_are_word_one_to_three_grams_and_character_grams_inside_words() -> None:
    words, chars = features("I'm DONE!!")
    assert words == ["w im", "w done", "w im done"]
    assert {"c i", "c im", "c im ", "c don", "cdone", "cone "} <= set(chars)
    assert all(2 <= len(feature) - 1 <= 5 for feature in chars)
    words, _ = features("so done w/ it")
    assert words == [
        "w so",
        "w done",
        "w w",
        "w it",
        "w so done",
        "w done w",
        "w w it",
        "w so done w",
        "w done w it",
    ]


def test_a_body_with_no_known_feature_raises_no_alarm() -> None:
    for body in ["", "🙏", "   ", "....", "𝔵𝔶𝔷𝔵𝔶𝔷"]:
        assert not load_model().predict(body).is_crisis


@given(st.text(max_size=400))
def test_any_text_gets_a_finite_margin_and_a_kind(body: str) -> None:
    prediction = load_model().predict(body)
    assert math.isfinite(prediction.margin)
    assert prediction.kind in KINDS
    assert 0.0 < prediction.kind_probability <= 1.0 + 1e-9


@given(st.text(max_size=400))
def test_the_crisis_head_alone_answers_as_the_full_prediction(body: str) -> None:
    model = load_model()
    text = normalize(body)
    assert model.is_crisis_normalized(text) == model.predict_normalized(text).is_crisis


def test_crisis_wording_scores_above_the_threshold_and_calm_wording_below() -> None:
    model = load_model()
    crisis = model.predict("ya no quiero vivir, me voy a quitar la vida esta noche")
    calm = model.predict("running late, be there at 3")
    assert crisis.is_crisis and crisis.margin >= model.threshold
    assert not calm.is_crisis and calm.evidence and calm.margin < model.threshold
