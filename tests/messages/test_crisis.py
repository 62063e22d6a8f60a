"""Crisis detection against the committed, labelled phrase suite (crisis_phrases.tsv).

Recall on the crisis rows must be 100 %: a miss can cost a life. The false-positive rate on the
non-crisis rows is bounded rather than zero, because the classifier leans toward false alarms by
design (a false alarm costs a coach about a minute). The bound, 15 %, is for this deliberately
adversarial suite, where idioms, hyperbole and near-misses are heavily over-represented; on
ordinary traffic the rate is far lower. 15 % still fails the build if a change makes the rules
fire on a real share of everyday wording, which would teach coaches to ignore urgent flags.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from messages.crisis import (
    CATEGORIES,
    KEYWORD_REPLY_MAX_WORDS,
    KINDS,
    LEARNED_RULE,
    CrisisResult,
    detect_crisis,
    learned_layer_consulted,
)

SUITE = Path(__file__).with_name("crisis_phrases.tsv")
MAX_FALSE_POSITIVE_RATE = 0.15


@dataclass(frozen=True)
class Row:
    line: int
    crisis: bool
    categories: frozenset[str]
    language: str
    message: str


def load_suite(path: Path = SUITE) -> list[Row]:
    rows = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip() or raw.startswith("#"):
            continue
        label, categories, language, message = raw.split("\t")
        assert label in ("crisis", "ok"), f"line {number}: bad label {label!r}"
        cats = frozenset() if categories == "-" else frozenset(categories.split(","))
        rows.append(Row(number, label == "crisis", cats, language, message))
    return rows


ROWS = load_suite()
CRISIS_ROWS = [row for row in ROWS if row.crisis]
OK_ROWS = [row for row in ROWS if not row.crisis]


def _id(row: Row) -> str:
    return f"line{row.line}"


def test_suite_is_large_balanced_bilingual_and_covers_every_category() -> None:
    assert len(ROWS) >= 200
    assert 0.4 <= len(CRISIS_ROWS) / len(ROWS) <= 0.6
    assert {row.language for row in CRISIS_ROWS} == {"en", "es"}
    assert {row.language for row in OK_ROWS} == {"en", "es"}
    assert set().union(*(row.categories for row in CRISIS_ROWS)) == CATEGORIES
    for row in CRISIS_ROWS:
        assert row.categories, f"line {row.line}: a crisis row names its categories"
        assert row.categories <= CATEGORIES, f"line {row.line}: unknown category"


@pytest.mark.parametrize("row", CRISIS_ROWS, ids=_id)
def test_every_crisis_message_is_detected_with_its_categories(row: Row) -> None:
    result = detect_crisis(row.message)
    assert result.is_crisis, f"missed crisis on line {row.line}: {row.message!r}"
    assert row.categories <= result.categories, (row.message, result.categories)
    assert result.matched


def test_false_positive_rate_on_everyday_messages_is_bounded() -> None:
    false_positives = [row.message for row in OK_ROWS if detect_crisis(row.message).is_crisis]
    rate = len(false_positives) / len(OK_ROWS)
    assert rate <= MAX_FALSE_POSITIVE_RATE, f"{rate:.1%} false positives: {false_positives}"


@pytest.mark.parametrize(
    "body",
    [
        "STOP",
        "YES",
        "C",
        "help",
        "HELP!!",
        "AYUDA",
        "info",
        "ok",
        "this traffic is killing me",
        "my feet are killing me",
        "I'm dying to see my kids",
        "my phone is about to die",
        "my phone is dying",
        "that movie was to die for",
        "that's odd",
        "lol im dead 😂",
        "i cut myself shaving",
        "voy a cortarme el pelo",
        "no puedo más tarde",
        "me apunto",
        "me muero de hambre",
        "the shelter is 5 kms from here",
        "she shot me a text",
        "I could kill for a burger",
        "I need help with my resume",
        "",
    ],
)
def test_everyday_messages_and_keywords_do_not_raise_an_alarm(body: str) -> None:
    assert detect_crisis(body) == CrisisResult(False, frozenset(), ())


@pytest.mark.parametrize(
    ("body", "category"),
    [
        ("I'm not suicidal, just tired", "suicide"),
        ("I don't want to die", "suicide"),
        ("got my narcan kit today", "overdose"),
    ],
)
def test_negations_and_mentions_still_fire_by_design(body: str, category: str) -> None:
    # No negation handling on purpose: a human can dismiss these in seconds; a miss is final.
    assert category in detect_crisis(body).categories


def test_matched_names_rules_not_the_message() -> None:
    result = detect_crisis("I want to kill myself, he has a gun")
    assert result.categories == {"suicide", "danger"}
    assert all(name.isidentifier() for name in result.matched)
    assert not any(name in "I want to kill myself, he has a gun" for name in result.matched)


_CRISIS_MESSAGES = [row.message for row in CRISIS_ROWS]
_ALL_MESSAGES = [row.message for row in ROWS]
_EDGES = st.text(alphabet=" .,!?¡¿\"'()*-~…🙏😢😭\n\t", max_size=4)


@given(body=st.sampled_from(_ALL_MESSAGES))
def test_case_does_not_change_the_result(body: str) -> None:
    expected = detect_crisis(body)
    assert detect_crisis(body.upper()) == expected
    assert detect_crisis(body.lower()) == expected


@given(body=st.sampled_from(_CRISIS_MESSAGES), before=_EDGES, after=_EDGES)
def test_surrounding_punctuation_and_emoji_do_not_hide_a_crisis(
    body: str, before: str, after: str
) -> None:
    assert detect_crisis(before + body + after).categories == detect_crisis(body).categories


# Rules that only fire on the whole message ("help me", "i give up"): inside longer text they
# are ordinary words ("help me with my resume", "I give up on the apartment").
_WHOLE_MESSAGE_RULES = {"plea_for_help", "whole_message_despair"}


@given(body=st.sampled_from(_CRISIS_MESSAGES), prefix=st.sampled_from(["hey ", "ok so ", "idk "]))
def test_a_crisis_stays_a_crisis_inside_a_longer_message(body: str, prefix: str) -> None:
    # A property of the rules (layer one); the learned layer only ever adds alarms to theirs.
    result = detect_crisis(prefix + body + " tbh", learned=False)
    assert result.is_crisis or set(detect_crisis(body, learned=False).matched) <= (
        _WHOLE_MESSAGE_RULES
    )
    assert detect_crisis(prefix + body + " tbh").is_crisis or not result.is_crisis


@given(body=st.text(max_size=2000))
def test_any_text_is_classified_without_raising(body: str) -> None:
    result = detect_crisis(body)
    assert result.is_crisis == bool(result.matched) == bool(result.categories)
    assert result.categories <= CATEGORIES


# --- the learned layer and the kind of reply ----------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "les deje una carta en la mesa de la cocina",
        "gave my little brother my jordans and my chain, he gonna need em more than me",
    ],
)
def test_the_learned_layer_finds_what_no_rule_names(body: str) -> None:
    assert not detect_crisis(body, learned=False).is_crisis
    result = detect_crisis(body)
    assert result.is_crisis and result.matched == (LEARNED_RULE,)
    assert result.categories and result.categories <= CATEGORIES


def test_rules_alone_are_the_first_layer_unchanged() -> None:
    result = detect_crisis("I want to kill myself, he has a gun", learned=False)
    assert result.matched == ("kill_myself", "weapon")
    assert result.kind is not None


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ("i want to kill myself", "self"),
        ("ya no quiero vivir", "self"),
        ("i been cutting again", "self"),
        ("my brother took too many pills and wont wake up", "overdose"),
        ("mi hermano se tomo todas las pastillas y no despierta", "overdose"),
        (
            "my best friend keeps saying she wants to die and wont answer her phone",
            "other_in_danger",
        ),
        ("mi hermana dice que se quiere morir y se encerro en el cuarto", "other_in_danger"),
        ("my ex said hes gonna kill me, hes outside", "violence"),
        ("mi ex me va a matar, esta afuera", "violence"),
        ("im gonna kill him when he gets home", "violence"),
    ],
)
def test_a_crisis_says_which_reply_fits(body: str, kind: str) -> None:
    result = detect_crisis(body)
    assert result.is_crisis and result.kind == kind


def test_a_calm_message_has_no_kind() -> None:
    assert detect_crisis("see you tuesday").kind is None


@given(body=st.text(max_size=500))
def test_a_crisis_always_has_a_kind_and_a_calm_message_none(body: str) -> None:
    result = detect_crisis(body)
    assert (result.kind in KINDS) if result.is_crisis else result.kind is None


@pytest.mark.parametrize(
    "body",
    [
        "I can't make it",
        "sorry I can't make it tomorrow, my ride fell through",
        "no voy a poder",
        "please stop",
        "unsubscribe me",
        "yes I'll be there",
    ],
)
def test_a_keyword_reply_goes_the_keyword_way(body: str) -> None:
    assert not learned_layer_consulted(body)
    assert not detect_crisis(body).is_crisis


def test_a_long_text_with_a_keyword_in_it_is_still_read_by_the_learned_layer() -> None:
    body = "stop texting me, i already gave my stuff away and wrote letters to everyone i love"
    assert len(body.split()) > KEYWORD_REPLY_MAX_WORDS
    assert learned_layer_consulted(body)


def test_a_keyword_reply_with_a_rule_s_words_is_still_a_crisis() -> None:
    assert detect_crisis("stop texting me, I want to kill myself").is_crisis


def test_a_first_text_from_a_new_number_is_not_a_crisis() -> None:
    # Model v1 flagged it (a strict xfail then); model v2 does not. Everyday false alarms are
    # still about one in eight, cross-validated by author (README, "learned crisis layer").
    assert not detect_crisis("hi, I was told to text this number").is_crisis
