"""Replies that say the number now belongs to someone else: the WRONG_NUMBER intent, in
English and Spanish, and the everyday texts that must not be read as one."""

from __future__ import annotations

import pytest

from messages.keywords import Intent, classify_keyword

WRONG_NUMBER = [
    "wrong number",
    "Wrong number!",
    "WRONG NUMBER",
    "sorry wrong number",
    "No, wrong number",
    "wrong number lol",
    "You have the wrong number",
    "u got the wrong number",
    "you're texting the wrong person",
    "I think you have the wrong number",
    "wrong person",
    "Who is this?",
    "who's this",
    "who this",
    "who dis",
    "Who dis??",
    "new phone who dis",
    "New number who dis",
    "new phone, who is this?",
    "hi who is this",
    "hello? who is this",
    "who are you",
    "who r u",
    "Who is texting me?",
    "this isn't his number anymore",
    "this is not her number",
    "no one by that name here",
    "nobody by that name here",
    "I don't know who this is",
    "I dont know who you are",
    "how did you get this number",
    "número equivocado",
    "Numero equivocado",
    "Número incorrecto",
    "Se equivocó de número",
    "te equivocaste de número",
    "¿Quién es?",
    "quien es?",
    "¿Quién eres?",
    "Quién habla?",
    "hola quien es",
    "¿quién me escribe?",
    "Este ya no es su número",
    "no conozco a esa persona",
    "aquí no vive nadie con ese nombre",
    "wr0ng number",
]

NOT_WRONG_NUMBER = [
    "who is this appointment with",
    "who is my coach",
    "quien es mi coach",
    "¿quién es mi coach?",
    "not a wrong number",
    "it is not the wrong number, it's me",
    "no es número equivocado",
    "wrong time, can we move it",
    "I went to the wrong place",
    "my number is the same",
    "new phone, same number",
    "is this the right number to call?",
    "who is coming to the meeting",
    "yes",
    "no",
    "ok thanks",
    "call me",
    "This is Sam",
    "the number for the clinic is wrong",
    "quien va a estar en la cita",
]


@pytest.mark.parametrize("body", WRONG_NUMBER)
def test_a_reply_saying_the_number_changed_hands_is_wrong_number(body: str) -> None:
    assert classify_keyword(body).intent is Intent.WRONG_NUMBER


@pytest.mark.parametrize("body", NOT_WRONG_NUMBER)
def test_everyday_texts_are_not_wrong_number(body: str) -> None:
    assert classify_keyword(body).intent is not Intent.WRONG_NUMBER


def test_stop_still_wins_over_wrong_number() -> None:
    assert classify_keyword("STOP").intent is Intent.STOP
    assert classify_keyword("wrong number stop texting me").intent is Intent.STOP


def test_the_table_holds_at_least_forty_phrasings() -> None:
    assert len(WRONG_NUMBER) >= 40
    assert len(set(WRONG_NUMBER)) == len(WRONG_NUMBER)
