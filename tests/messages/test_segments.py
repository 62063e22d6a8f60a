from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from messages.segments import GSM7_BASIC, GSM7_EXTENSION, SegmentCount, count_segments

EXTENSION = "^{}\\[~]|€\f"


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("", "GSM-7", 0, 0),
        ("a", "GSM-7", 1, 1),
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 153 * 2, "GSM-7", 306, 2),
        ("a" * (153 * 2 + 1), "GSM-7", 307, 3),
        ("a" * 153 * 3, "GSM-7", 459, 3),
        ("á" * 70, "UCS-2", 70, 1),
        ("á" * 71, "UCS-2", 71, 2),
        ("á" * 67 * 2, "UCS-2", 134, 2),
        ("á" * (67 * 2 + 1), "UCS-2", 135, 3),
        ("a" * 69 + "’", "UCS-2", 70, 1),
        ("a" * 70 + "’", "UCS-2", 71, 2),
    ],
)
def test_segment_boundaries(text: str, encoding: str, units: int, segments: int) -> None:
    count = count_segments(text)
    assert (count.encoding, count.units, count.segments) == (encoding, units, segments)


@pytest.mark.parametrize("char", list(EXTENSION))
def test_extension_characters_count_two_septets(char: str) -> None:
    assert count_segments(char) == SegmentCount("GSM-7", 2, 1, ())


@pytest.mark.parametrize(
    ("text", "units", "segments"),
    [
        ("a" * 158 + "€", 160, 1),  # fits exactly in one segment
        ("a" * 159 + "€", 161, 2),  # one septet too many
        ("a" * 80 + "{" * 40, 160, 1),
        # Multi-part: the escape and its character stay together, so a pair that would start
        # at septet 153 moves to the next segment.
        ("a" * 152 + "€" + "a" * 152, 306, 3),
        ("a" * 151 + "€" + "a" * 153, 306, 2),
    ],
)
def test_extension_character_at_a_segment_boundary(text: str, units: int, segments: int) -> None:
    count = count_segments(text)
    assert count.encoding == "GSM-7"
    assert (count.units, count.segments) == (units, segments)


@pytest.mark.parametrize(
    ("text", "units", "segments"),
    [
        ("😀", 2, 1),
        ("😀" * 35, 70, 1),
        ("😀" * 35 + "a", 71, 2),
        ("Hi 👋", 5, 1),
        # A surrogate pair is never split: 66 units + an emoji moves the emoji on.
        ("a" * 66 + "😀" + "a" * 66, 134, 3),
        ("a" * 65 + "😀" + "a" * 67, 134, 2),
    ],
)
def test_emoji_count_as_two_utf16_units(text: str, units: int, segments: int) -> None:
    count = count_segments(text)
    assert count.encoding == "UCS-2"
    assert (count.units, count.segments) == (units, segments)


@pytest.mark.parametrize(
    ("char", "in_gsm"),
    [
        ("é", True),
        ("É", True),
        ("ñ", True),
        ("Ñ", True),
        ("ü", True),
        ("Ü", True),
        ("¿", True),
        ("¡", True),
        ("à", True),
        ("è", True),
        ("ì", True),
        ("ò", True),
        ("ù", True),
        ("Ç", True),
        ("á", False),
        ("í", False),
        ("ó", False),
        ("ú", False),
        ("Á", False),
        ("Í", False),
        ("Ó", False),
        ("Ú", False),
        ("ç", False),
        ("’", False),
        ("“", False),
        ("\t", False),
        ("\x1b", False),
        ("@", True),
        ("$", True),
        ("£", True),
        ("¤", True),
        ("§", True),
        ("\n", True),
        ("\r", True),
        ("`", False),
    ],
)
def test_gsm7_alphabet_matches_gsm_03_38_for_spanish_and_punctuation(
    char: str, in_gsm: bool
) -> None:
    count = count_segments(f"Hola {char}")
    assert (count.encoding == "GSM-7") is in_gsm
    assert count.non_gsm_chars == (() if in_gsm else (char,))


def test_alphabet_sizes_are_the_standard_tables() -> None:
    assert len(GSM7_BASIC) == 127  # 128 codes minus the escape
    assert frozenset(EXTENSION) == GSM7_EXTENSION


def test_non_gsm_characters_are_reported_once_in_order_of_appearance() -> None:
    count = count_segments("¿Cómo estás? It’s día ó")
    assert count.encoding == "UCS-2"
    assert count.non_gsm_chars == ("ó", "á", "’", "í")


def test_spanish_with_e_acute_and_enye_stays_gsm7() -> None:
    count = count_segments("¿Qué tal? Mañana te escribiré. ¡Suerte, Begoña! Ñ Ü ü")
    assert count.encoding == "GSM-7"


def test_ucs2_counts_extension_characters_as_one_unit() -> None:
    assert count_segments("á€").units == 2


GSM_CHARS = sorted(GSM7_BASIC | GSM7_EXTENSION)


@given(st.text())
def test_count_segments_never_raises_and_is_consistent(text: str) -> None:
    count = count_segments(text)
    assert count.encoding in {"GSM-7", "UCS-2"}
    assert (count.segments == 0) == (text == "")
    if count.encoding == "UCS-2":
        assert count.units == len(text.encode("utf-16-le")) // 2
        assert count.non_gsm_chars
        assert count.segments * 67 >= count.units or count.units <= 70
    else:
        assert count.non_gsm_chars == ()
        assert count.units >= len(text)
        assert count.segments * 153 >= count.units or count.units <= 160


@given(st.text(alphabet=GSM_CHARS), st.text(alphabet=GSM_CHARS, min_size=1))
def test_gsm7_segments_never_decrease_as_the_text_grows(text: str, more: str) -> None:
    shorter, longer = count_segments(text), count_segments(text + more)
    assert shorter.encoding == longer.encoding == "GSM-7"
    assert longer.units > shorter.units
    assert longer.segments >= shorter.segments


@given(st.text(min_size=1), st.text(min_size=1))
def test_segments_never_decrease_as_the_text_grows_in_one_encoding(text: str, more: str) -> None:
    shorter, longer = count_segments(text), count_segments(text + more)
    if shorter.encoding == longer.encoding:
        assert longer.segments >= shorter.segments
