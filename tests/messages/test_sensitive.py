from __future__ import annotations

import pytest

from messages.sensitive import find_sensitive_terms


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Don't forget your PROBATION visit", ["probation"]),
        ("Your parole officer called", ["parole", "parole officer"]),
        ("cita en la Cárcel del condado", ["cárcel"]),
        ("cita en la carcel", ["cárcel"]),
        ("Meet your PO at 3", ["PO"]),
        ("methadone clinic", ["methadone"]),
        ("Tu tratamiento es mañana", ["tratamiento"]),
    ],
)
def test_sensitive_words_are_found_whole_word_and_accent_insensitive(
    text: str, expected: list[str]
) -> None:
    assert find_sensitive_terms(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Hi Sam, how are you today?",
        "Your appointment is at 10:30, 100 Main St",
        "courtyard",
        "¿Cómo estás? Pon tu nombre",
    ],
)
def test_neutral_texts_have_no_sensitive_words(text: str) -> None:
    assert find_sensitive_terms(text) == []
