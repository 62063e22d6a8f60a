"""Segment counting follows GSM 03.38 and UCS-2 as carriers bill them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from messages.segments import GSM7_BASIC, count_segments


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("", "GSM-7", 0, 0),
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
        ("a" * 159 + "€", "GSM-7", 161, 2),  # extension character counts two
        ("a" * 158 + "{", "GSM-7", 160, 1),
        ("ñÑéÉüÜ¿¡", "GSM-7", 8, 1),  # Spanish letters that ARE in GSM-7
        ("a" * 70 + "á", "UCS-2", 71, 2),  # á is not: the whole text becomes UCS-2
        ("á" * 70, "UCS-2", 70, 1),
        ("á" * 134, "UCS-2", 134, 2),
        ("á" * 135, "UCS-2", 135, 3),
        ("👍", "UCS-2", 2, 1),  # outside the BMP: two UTF-16 code units
        ("a" * 69 + "👍", "UCS-2", 71, 2),
        ("It’s", "UCS-2", 4, 1),  # curly apostrophe
    ],
)
def test_segment_boundaries(text: str, encoding: str, units: int, segments: int) -> None:
    result = count_segments(text)
    assert (result.encoding, result.units, result.segments) == (encoding, units, segments)


def test_reports_which_characters_force_unicode() -> None:
    assert count_segments("¿Cómo estás? It’s ok").non_gsm_chars == ("ó", "á", "’")


@given(st.text(max_size=500))
def test_never_raises_and_segments_cover_units(text: str) -> None:
    result = count_segments(text)
    per = 70 if result.encoding == "UCS-2" else 160
    assert result.segments == 0 or result.units <= max(per, result.segments * per)


@given(
    st.text(alphabet=sorted(GSM7_BASIC), max_size=400),
    st.text(alphabet=sorted(GSM7_BASIC), max_size=5),
)
def test_gsm_segments_never_decrease_when_text_grows(text: str, more: str) -> None:
    assert count_segments(text + more).segments >= count_segments(text).segments
