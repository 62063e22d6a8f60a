"""The one reading of a text that crisis, keyword and sensitive-word matching share."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from messages import crisis, keywords, sensitive
from messages.normalize import fold, light, normalize, squash, squash_pattern


def test_case_and_accents_fold_to_plain_ascii() -> None:
    assert fold("SÍ Cárcel ÑANDÚ") == "si carcel nandu"
    assert light("ＳＴＯＰ") == "stop"  # full-width letters


def test_apostrophes_go_and_other_punctuation_and_emoji_become_one_space() -> None:
    assert light("  Don't… STOP!! 🙏 I’m out ") == "dont stop im out"
    assert light("drug-test_on\tFriday") == "drug test on friday"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("k!ll mys3lf", "kill myself"),
        ("su1c1de", "suicide"),
        ("m0rir", "morir"),
        ("0verdose", "overdose"),
        ("$uicide", "suicide"),
        ("st0p", "stop"),
        ("j4il", "jail"),
    ],
)
def test_look_alike_characters_inside_words_are_undone(body: str, expected: str) -> None:
    assert light(body) == expected


@pytest.mark.parametrize("body", ["10 pills", "call 911", "at 4pm", "b4 noon", "2nd floor", "m30s"])
def test_digits_that_are_numbers_stay_digits(body: str) -> None:
    assert light(body) == body


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("k*ll myself", "kill myself"),
        ("s**cide", "suicide"),
        ("m*rir", "morir"),
        ("d*e", "die"),
        ("wanna k***", "wanna k"),  # not between letters: punctuation
        ("f*ck", "fick"),  # fits no listed word: one "i" per asterisk
    ],
)
def test_asterisks_between_letters_are_read_as_the_masked_word(body: str, expected: str) -> None:
    assert light(body) == expected


def test_asterisks_around_a_word_are_emphasis() -> None:
    assert light("I want to *die*") == "i want to die"
    assert light("*sigh*") == "sigh"


def test_phonetic_spanish_spellings_are_read_as_written_words() -> None:
    assert light("me kiero morir") == "me quiero morir"


def test_squash_folds_repeated_letters_in_texts_and_patterns_alike() -> None:
    assert squash("stooop killl pills") == "stop kil pils"
    assert squash_pattern(r"\bkill\b") == r"\bkil\b"
    assert normalize("Don't STOOOP!! 🙏") == "dont stop"


def test_all_three_matchers_read_a_masked_text_the_same_way() -> None:
    assert keywords.normalize is normalize
    assert keywords.classify_keyword("st0p").intent is keywords.Intent.STOP
    assert sensitive.find_sensitive_terms("your c0urt date") == ["court"]
    assert crisis.detect_crisis("i want to k*ll mys3lf").is_crisis


@given(st.text(max_size=300))
def test_normalizing_is_idempotent_and_leaves_only_lowercase_words(body: str) -> None:
    once = normalize(body)
    assert normalize(once) == once
    assert all(word.isascii() and word.isalnum() for word in once.split(" ") if once)
    assert once == once.strip()
