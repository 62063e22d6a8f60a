"""Keyword classification: real-world phrasings of STOP/START/HELP/YES/NO, and what is none."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from messages.keywords import (
    CARRIER_KEYWORDS,
    Intent,
    KeywordResult,
    classify_keyword,
    normalize,
)

STOP, START, HELP, YES, NO, NONE = (
    Intent.STOP,
    Intent.START,
    Intent.HELP,
    Intent.YES,
    Intent.NO,
    Intent.NONE,
)
CALL_ME, NEXT, PAUSE, RESUME = Intent.CALL_ME, Intent.NEXT, Intent.PAUSE, Intent.RESUME
WRONG_NUMBER = Intent.WRONG_NUMBER

# (body, expected intent, carrier_handled)
CARRIER_CASES: list[tuple[str, Intent, bool]] = [
    ("STOP", STOP, True),
    ("stop", STOP, True),
    ("Stop.", STOP, True),
    (" stop ", STOP, True),
    ("STOP!!!", STOP, True),
    ("🛑 STOP 🛑", STOP, True),
    ('"stop"', STOP, True),
    ("STOPALL", STOP, True),
    ("StopAll", STOP, True),
    ("UNSUBSCRIBE", STOP, True),
    ("Unsubscribe.", STOP, True),
    ("CANCEL", STOP, True),
    ("cancel", STOP, True),
    ("END", STOP, True),
    ("End.", STOP, True),
    ("QUIT", STOP, True),
    ("quit!", STOP, True),
    ("REVOKE", STOP, True),
    ("OPTOUT", STOP, True),
    ("optout", STOP, True),
    ("START", START, True),
    ("Start", START, True),
    ("start!", START, True),
    ("UNSTOP", START, True),
    ("unstop.", START, True),
]

STOP_CASES: list[tuple[str, Intent, bool]] = [
    ("stop pls", STOP, False),
    ("Stop please", STOP, False),
    ("please stop", STOP, False),
    ("STOP STOP STOP", STOP, False),
    ("Stoooop!!", STOP, False),
    ("STOPPPP", STOP, False),
    ("stop it", STOP, False),
    ("just stop", STOP, False),
    ("no, stop", STOP, False),
    ("I said stop", STOP, False),
    ("stop all", STOP, False),
    ("OPT-OUT", STOP, False),
    ("opt out", STOP, False),
    ("opt me out please", STOP, False),
    ("STOP texting me", STOP, False),
    ("stop texting me", STOP, False),
    ("Stop texting me!!", STOP, False),
    ("please stop messaging me", STOP, False),
    ("stop sending me these texts", STOP, False),
    ("stop sending me messages", STOP, False),
    ("stop the texts", STOP, False),
    ("no more texts", STOP, False),
    ("No more texts please", STOP, False),
    ("no more messages", STOP, False),
    ("unsubscribe me", STOP, False),
    ("how do I unsubscribe", STOP, False),
    ("take me off this list", STOP, False),
    ("remove me from your list", STOP, False),
    ("remove me", STOP, False),
    ("delete my number", STOP, False),
    ("lose my number", STOP, False),
    ("leave me alone, stop texting", STOP, False),
    ("I don't want it, stop texting me", STOP, False),
    ("do not text me", STOP, False),
    ("don't text me anymore", STOP, False),
    ("never text me again", STOP, False),
    ("I revoke my consent", STOP, False),
    ("cancel all texts", STOP, False),
    ("cancel please", STOP, False),
    ("Stop’ 🙏", STOP, True),
    ("ALTO", STOP, False),
    ("alto!", STOP, False),
    ("PARAR", STOP, False),
    ("Para ya", STOP, False),
    ("BASTA", STOP, False),
    ("ya basta", STOP, False),
    ("cancelar", STOP, False),
    ("no me manden mas mensajes", STOP, False),
    ("No me manden más mensajes por favor", STOP, False),
    ("dejen de escribirme", STOP, False),
    ("Dejen de escribirme!!", STOP, False),
    ("deja de mandarme mensajes", STOP, False),
    ("ya no quiero recibir mensajes", STOP, False),
    ("no más mensajes", STOP, False),
    ("quítenme de la lista", STOP, False),
    ("quiero darme de baja", STOP, False),
    ("no me escriban", STOP, False),
]

# Must NOT be STOP: a false opt-out silently cuts someone off from support.
NOT_STOP_CASES: list[tuple[str, Intent, bool]] = [
    ("don't stop checking on me", NONE, False),
    ("I can't stop crying", NONE, False),
    ("please don't stop texting me", NONE, False),
    ("Please DON'T stop texting me!", NONE, False),
    ("dont ever stop texting me", NONE, False),
    ("stop by the office tomorrow?", NONE, False),
    ("the bus stop", NONE, False),
    ("I'm at the bus stop", NONE, False),
    ("I want to stop using", NONE, False),
    ("cancel my appointment?", NONE, False),
    ("can I cancel my appointment", NONE, False),
    ("it's the end of the week", NONE, False),
    ("I quit my job", NONE, False),
    ("I'm trying to quit smoking", NONE, False),
    ("leave me alone", NONE, False),
    ("no dejen de escribirme", NONE, False),
    ("para mañana?", NONE, False),
    ("I need to start over", NONE, False),
    ("my start date is monday", NONE, False),
]

START_CASES: list[tuple[str, Intent, bool]] = [
    ("start please", START, False),
    ("YES START", START, False),
    ("Subscribe", START, False),
    ("resume texting me again", START, False),
    ("opt me back in", START, False),
    ("start texting me again", START, False),
    ("COMENZAR", START, False),
    ("Iniciar", START, False),
    ("empezar", START, False),
]

HELP_CASES: list[tuple[str, Intent, bool]] = [
    ("HELP", HELP, False),
    ("help", HELP, False),
    ("help?", HELP, False),
    ("HELP!!", HELP, False),
    ("Help.", HELP, False),
    ("INFO", HELP, False),
    ("info please", HELP, False),
    ("more info", HELP, False),
    ("AYUDA", HELP, False),
    ("ayuda?", HELP, False),
    ("Información", HELP, False),
    # Pleas for help are for the crisis classifier and a human, not a canned HELP reply.
    ("help me", NONE, False),
    ("I need help", NONE, False),
    ("please help", NONE, False),
    ("ayúdenme", NONE, False),
    ("can you help me with my resume", NONE, False),
]

YES_CASES: list[tuple[str, Intent, bool]] = [
    ("YES", YES, False),
    ("yes", YES, False),
    ("Yes!", YES, False),
    ("yesss", YES, False),
    ("Y", YES, False),
    ("y", YES, False),
    ("C", YES, False),
    ("c.", YES, False),
    ("CONFIRM", YES, False),
    ("confirmed", YES, False),
    ("SI", YES, False),
    ("SÍ", YES, False),
    ("sí", YES, False),
    ("Si!", YES, False),
    ("yes I'll be there", YES, False),
    ("Yes, I’ll be there. Thank you!", YES, False),
    ("yeah", YES, False),
    ("yep see you then", YES, False),
    ("yes sir", YES, False),
    ("I'll be there", YES, False),
    ("👍", YES, False),
    ("👍🏽", YES, False),
    ("✅", YES, False),
    ("claro que sí", YES, False),
    ("ahí estaré", YES, False),
    ("confirmo", YES, False),
    ("sí, gracias", YES, False),
    # "ok" is not a confirmation: after a check-in it means "I'm ok".
    ("ok", NONE, False),
    ("okay thanks", NONE, False),
]

NO_CASES: list[tuple[str, Intent, bool]] = [
    ("NO", NO, False),
    ("no", NO, False),
    ("No.", NO, False),
    ("nooo", NO, False),
    ("N", NO, False),
    ("nope", NO, False),
    ("no thanks", NO, False),
    ("can't make it", NO, False),
    ("I can't make it", NO, False),
    ("I cannot make it", NO, False),
    ("sorry I can't make it tomorrow, my ride fell through", NO, False),
    ("I won't be there", NO, False),
    ("no puedo ir", NO, False),
    ("No puedo ir, lo siento", NO, False),
    ("no voy a poder", NO, False),
    ("no voy a poder llegar", NO, False),
    ("No podré ir", NO, False),
    ("no alcanzo a llegar", NO, False),
    ("no voy a ir a la cita", NO, False),
    ("No puedo ir a la cita mañana, perdón", NO, False),
    ("lo siento, no voy a poder llegar", NO, False),
    ("no llego a la cita, se me descompuso el carro", NO, False),
    ("no voy a llegar", NO, False),
    ("call me, I can't make it", NO, False),
    # Late is not a no; a bare "no voy a ir" in a sentence is about something else.
    ("no voy a llegar a tiempo", NONE, False),
    ("no voy a poder llegar a tiempo, voy 10 min tarde", NONE, False),
    ("no voy a ir a trabajar hoy", NONE, False),
    ("👎", NO, False),
    ("yes but I can't make it at 10", NO, False),
]

SELF_SERVICE_CASES: list[tuple[str, Intent, bool]] = [
    ("CALL ME", CALL_ME, False),
    ("call me", CALL_ME, False),
    ("Call me please", CALL_ME, False),
    ("pls call me", CALL_ME, False),
    ("can you call me?", CALL_ME, False),
    ("Can you call me when you can", CALL_ME, False),
    ("call me when you can", CALL_ME, False),
    ("call me back asap", CALL_ME, False),
    ("call me tomorrow", CALL_ME, False),
    ("give me a call", CALL_ME, False),
    ("LLÁMAME", CALL_ME, False),
    ("llamame", CALL_ME, False),
    ("llámame por favor", CALL_ME, False),
    ("llámame cuando puedas", CALL_ME, False),
    ("¿Me puedes llamar?", CALL_ME, False),
    ("me puede llamar mañana", CALL_ME, False),
    ("they call me Jay", NONE, False),
    ("don't call me", NONE, False),
    ("I'll call you tomorrow", NONE, False),
    ("call me crazy but I like it here", NONE, False),
    (
        "Can you call me tomorrow? I got kicked out of my place and I'm sleeping in my car",
        NONE,
        False,
    ),
    ("me llamo José", NONE, False),
    ("stop calling me", STOP, False),
    ("NEXT", NEXT, False),
    ("next", NEXT, False),
    ("Next appt?", NEXT, False),
    ("next appointment please", NEXT, False),
    ("when is my next appointment?", NEXT, False),
    ("What's my next appt", NEXT, False),
    ("PRÓXIMA", NEXT, False),
    ("proxima cita", NEXT, False),
    ("¿Cuál es mi próxima cita?", NEXT, False),
    ("¿cuándo es mi cita?", NEXT, False),
    ("next week", NONE, False),
    ("see you next week", NONE, False),
    ("next time", NONE, False),
    ("la próxima semana", NONE, False),
    ("PAUSE", PAUSE, False),
    ("pause please", PAUSE, False),
    ("Pause texts", PAUSE, False),
    ("PAUSA", PAUSE, False),
    ("pausa por favor", PAUSE, False),
    ("I had to pause my classes this week", NONE, False),
    ("can we pause and talk tomorrow", NONE, False),
    ("RESUME", RESUME, False),
    ("resume", RESUME, False),
    ("resume please", RESUME, False),
    ("unpause", RESUME, False),
    ("SEGUIR", RESUME, False),
    ("continuar", RESUME, False),
    ("Reanudar", RESUME, False),
    ("I want to continuar my classes", NONE, False),
    ("I'm working on my resume", NONE, False),
    ("quiero seguir adelante", NONE, False),
]

OTHER_CASES: list[tuple[str, Intent, bool]] = [
    ("", NONE, False),
    ("   ", NONE, False),
    ("!!!", NONE, False),
    ("😂😂", NONE, False),
    ("what time is my appointment?", NONE, False),
    ("who is this", WRONG_NUMBER, False),  # the number may have changed hands (issue 19)
    ("I'm doing ok today", NONE, False),
    ("yes what time is it again?", NONE, False),
    ("STÓP", STOP, False),
]

ALL_CASES = (
    CARRIER_CASES
    + STOP_CASES
    + NOT_STOP_CASES
    + START_CASES
    + HELP_CASES
    + YES_CASES
    + NO_CASES
    + SELF_SERVICE_CASES
    + OTHER_CASES
)


@pytest.mark.parametrize(("body", "intent", "carrier_handled"), ALL_CASES)
def test_real_world_phrasing_is_classified(
    body: str, intent: Intent, carrier_handled: bool
) -> None:
    assert classify_keyword(body) == KeywordResult(intent, carrier_handled)


@pytest.mark.parametrize(("body", "intent", "carrier_handled"), NOT_STOP_CASES)
def test_negated_or_incidental_stop_words_never_opt_out(
    body: str, intent: Intent, carrier_handled: bool
) -> None:
    assert classify_keyword(body).intent is not Intent.STOP


@pytest.mark.parametrize("word", sorted(CARRIER_KEYWORDS))
def test_every_carrier_keyword_alone_is_carrier_handled(word: str) -> None:
    for body in (word, word.upper(), word.title(), f" {word}. ", f"{word.upper()}!!"):
        assert classify_keyword(body).carrier_handled, body


@pytest.mark.parametrize("body", ["stop pls", "STOP texting me", "ALTO", "yes", "help", "S T O P"])
def test_only_bare_carrier_words_are_carrier_handled(body: str) -> None:
    assert not classify_keyword(body).carrier_handled


def test_intent_values_are_stable_strings() -> None:
    # Stored in the database and compared by other services: the values are part of the contract.
    assert [i.value for i in Intent] == [
        "stop",
        "start",
        "help",
        "yes",
        "no",
        "call_me",
        "next",
        "pause",
        "resume",
        "wrong_number",
        "none",
    ]


def test_normalize_folds_case_accents_punctuation_and_repeats() -> None:
    assert normalize("  Don't STOOOP!! 🙏 ") == "dont stop"
    assert normalize("SÍ, ¡gracias!") == "si gracias"


_WORDS = [
    body
    for body, _intent, _carrier in ALL_CASES
    if body.strip() and any(ch.isalpha() for ch in body)
]
_EDGES = st.text(alphabet=" .,!?¡¿\"'()*-~…🙏😊👋\n\t", max_size=4)


@given(body=st.sampled_from(_WORDS), before=_EDGES, after=_EDGES)
def test_surrounding_punctuation_and_whitespace_do_not_change_the_intent(
    body: str, before: str, after: str
) -> None:
    assert classify_keyword(before + body + after).intent == classify_keyword(body).intent


@given(body=st.sampled_from(_WORDS))
def test_case_does_not_change_the_result(body: str) -> None:
    expected = classify_keyword(body)
    assert classify_keyword(body.upper()) == expected
    assert classify_keyword(body.lower()) == expected
    assert classify_keyword(body.swapcase()) == expected


@given(body=st.text(max_size=500))
def test_any_text_is_classified_without_raising(body: str) -> None:
    result = classify_keyword(body)
    assert isinstance(result.intent, Intent)
    assert not result.carrier_handled or result.intent in (Intent.STOP, Intent.START)
