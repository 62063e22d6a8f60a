"""Recognise the reply keywords of an inbound text: STOP, START, HELP, the self-service
keywords (CALL ME, NEXT, PAUSE, RESUME), YES, NO.

Pure and standard-library only: no I/O, no database, nothing but precompiled regexes.

How a body is read
------------------
1. ``carrier_handled`` is decided on the body with only its edges trimmed: Twilio answers its own
   single-word opt-out/opt-in keywords (see ``CARRIER_KEYWORDS``) and our webhook must then stay
   silent, so this flag is exact and deliberately narrow ("STOP." yes, "stop pls" no).
2. Everything else works on :func:`messages.normalize.normalize`, the text crisis and
   sensitive-word matching see too: accents removed (SÍ -> si), case folded, look-alike
   characters undone inside words (st0p -> stop), apostrophes dropped (don't -> dont), any other
   punctuation or emoji turned into a space, and runs of a repeated letter squashed to one letter
   (stooop -> stop, yesss -> yes, all -> al). The
   phrase lists below are squashed the same way when they are compiled, so they are written in
   ordinary spelling and match the stretched spellings people type.
3. Intents are tried in a fixed order: STOP, START, HELP, CALL ME, NEXT, PAUSE, RESUME, YES,
   NO. STOP comes first because a missed opt-out is the costlier mistake for the program ("stop
   calling me" is STOP, never CALL ME). The self-service keywords are whole-message phrases
   with no word in common with YES or NO; they come before YES/NO so that a message that is
   only a request is answered as one, while a decline anywhere in a longer message ("call me,
   I can't make it") is still NO.

The precision/recall trade-off for STOP
---------------------------------------
A missed opt-out is a legal risk: under the TCPA, and the FCC's 2024 revocation rule as we read
it, words such as stop, quit, end, revoke, opt out, cancel and unsubscribe sent in reply are a
per-se revocation of consent. A false opt-out silently cuts someone off from the peer support
this program exists to give, at the most fragile point of their re-entry. So:

* every carrier word alone, with courtesy words ("stop pls", "please stop", "STOP!!!") and the
  clear "stop texting/messaging me", "no more texts", "take me off this list", "unsubscribe me"
  forms (English and Spanish) are STOP, wherever they stand in the message;
* an opt-out phrase right after a negation ("please don't stop texting me", "no dejen de
  escribirme") is not STOP;
* a bare carrier word inside other text ("cancel my appointment?", "the bus stop", "I want to
  stop using", "I can't stop crying", "stop by the office") is NONE: a coach reads every NONE,
  and can ask the person, which a silent opt-out never allows. "leave me alone" on its own and
  "I quit" are NONE for the same reason: they may be distress, not an opt-out.

HELP and pleas for help
-----------------------
A lone HELP / INFO / AYUDA (any case and punctuation) is HELP; our HELP reply names 988, because
a lone "help" may be a cry for help. "help me", "I need help", "please help" and "ayúdenme" are
NONE here on purpose: they are left to :mod:`messages.crisis` and to a human, not answered with
a canned program description.

Self-service
------------
CALL ME / LLÁMAME (a call back, a person answers), NEXT / PRÓXIMA (the next appointment),
PAUSE / PAUSA (check-ins paused for a week) and RESUME / SEGUIR are recognised only as the
whole message, with courtesy words around them ("can you call me when you can?", "next appt
pls", "pausa por favor"). Inside a sentence they are NONE: "they call me Jay", "next week",
"I had to pause my classes". RESUME took the word "resume" from START: an opted-out person who
texts it is still opted back in (bot/services/self_service.py).

YES and NO
----------
YES/Y/C/CONFIRM/SÍ and clear confirmations ("yes I'll be there", a lone 👍) are YES. "ok" is *not*
YES: in reply to a check-in it usually means "I'm ok", and a wrong confirmation hides a missed
appointment, whereas an unconfirmed one only raises a flag. NO/N/NOPE and "can't make it"
anywhere in the message are NO, because the flag that follows ("coach, reschedule") is cheap;
so are the Spanish ways of saying it ("no puedo ir", "no voy a poder llegar", "no alcanzo a
llegar", "no voy a ir a la cita"), but not "no voy a llegar a tiempo" (late is not a no).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass

from messages.normalize import normalize, squash_pattern

__all__ = [
    "CARRIER_KEYWORDS",
    "CARRIER_OPT_IN",
    "CARRIER_OPT_OUT",
    "Intent",
    "KeywordResult",
    "classify_keyword",
    "normalize",
]


class Intent(enum.StrEnum):
    """What a reply asks for. NONE means "free text: a human reads it"."""

    STOP = "stop"
    START = "start"
    HELP = "help"
    YES = "yes"
    NO = "no"
    CALL_ME = "call_me"
    NEXT = "next"
    PAUSE = "pause"
    RESUME = "resume"
    # "wrong number", "who is this", "número equivocado": the number may belong to someone else
    # now (bot/services/numbers.py raises `number_changed`).
    WRONG_NUMBER = "wrong_number"
    NONE = "none"


@dataclass(frozen=True)
class KeywordResult:
    """The intent of a reply, and whether Twilio itself has already answered it."""

    intent: Intent
    # True only when Twilio answers this keyword itself (the body is exactly one of
    # CARRIER_KEYWORDS apart from case, whitespace and surrounding punctuation/emoji), so the
    # webhook must reply with an empty <Response/> to avoid a double confirmation.
    carrier_handled: bool


# Twilio's default Advanced Opt-Out keywords (REVOKE and OPTOUT were added in 2025).
CARRIER_OPT_OUT: frozenset[str] = frozenset(
    {"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "revoke", "optout"}
)
CARRIER_OPT_IN: frozenset[str] = frozenset({"start", "unstop"})
CARRIER_KEYWORDS: frozenset[str] = CARRIER_OPT_OUT | CARRIER_OPT_IN

# Keyword replies are short; a long message is free text for a coach even if it happens to be
# made only of courtesy words, and the cap also bounds the work of the anchored patterns.
_MAX_COMPOSED_LEN = 80


def _alt(phrases: Iterable[str]) -> str:
    """A non-capturing alternation, longest phrase first so that the longest reading wins."""
    return "(?:" + "|".join(sorted(phrases, key=len, reverse=True)) + ")"


def _compose(core: Iterable[str], courtesy: Iterable[str]) -> re.Pattern[str]:
    """The whole message is core phrases, optionally wrapped in courtesy words.

    "stop", "please stop", "stop pls thanks", "stop stop stop" and "yes sir ill be there thank
    you" all match; anything with a word outside the two lists does not.
    """
    core_rx, courtesy_rx = _alt(core), _alt(courtesy)
    source = rf"^(?:{courtesy_rx} )*{core_rx}(?: (?:{core_rx}|{courtesy_rx}))*$"
    return re.compile(squash_pattern(source))


def _search(source: str) -> re.Pattern[str]:
    return re.compile(squash_pattern(source))


_COURTESY = (
    "please",
    "pls",
    "plz",
    "plse",
    "plez",
    "pleez",
    "thanks",
    "thank you",
    "thankyou",
    "thx",
    "ty",
    "por favor",
    "porfa",
    "porfavor",
    "gracias",
    "sir",
    "maam",
    "mam",
    "miss",
    "ok",
    "okay",
)

# --- STOP -------------------------------------------------------------------------------------

_STOP_WORDS = (
    # Twilio's words and their obvious variants.
    "stop",
    "stopall",
    "stop all",
    "unsubscribe",
    "unsub",
    "cancel",
    "cancel all",
    "cancel everything",
    "end",
    "quit",
    "revoke",
    "optout",
    "opt out",
    "opt me out",
    "stop it",
    "stop this",
    "remove me",
    "dont text me",
    "do not text me",
    "dont message me",
    "do not message me",
    "dont contact me",
    "do not contact me",
    # Spanish.
    "alto",
    "parar",
    "para",
    "pare",
    "paren",
    "basta",
    "cancelar",
    "detener",
    "detente",
    "baja",
    "quitenme",
    "quitame",
    "borrenme",
    "no me escriban",
    "no me escribas",
    "no me manden",
    "no me mandes",
    "no me envien",
    "no me textees",
)
# Leading/trailing words that do not change an opt-out: "no, stop", "just stop", "stop now",
# "I said stop", "basta ya".
_STOP_COURTESY = (
    *_COURTESY,
    "no",
    "just",
    "now",
    "right now",
    "already",
    "asap",
    "i said",
    "seriously",
    "enough",
    "ya",
    "ahora",
    "again",
)
_STOP_COMPOSED = _compose(_STOP_WORDS, _STOP_COURTESY)

_EN_NEGATORS = frozenset(
    {"dont", "not", "never", "cant", "cannot", "wont", "didnt", "doesnt", "shouldnt", "wouldnt"}
)
_ES_NEGATORS = frozenset({"no", "nunca", "jamas"})
# Words allowed between a negation and the phrase it negates: "don't you ever stop texting me".
_NEGATION_FILLERS = frozenset(
    {"you", "u", "ever", "please", "pls", "plz", "just", "ya", "yall", "guys", "me", "por", "favor"}
)

_TEXTS = "(?:texts|text messages|messages|msgs|msg|txts|txt|sms|reminders|notifications|alerts)"
_TEXTING = (
    "(?:texting|txting|texing|text|txt|messaging|msging|message|msg|sending|sending me|contacting"
    "|contact|calling|bothering|hitting me up)"
)

# Opt-out phrases that count anywhere in a message, unless negated (see _negated).
_STOP_PHRASES_EN = _search(
    "|".join(
        [
            rf"\bstop {_TEXTING}\b",
            rf"\bstop (?:all |the |these |this |your |ur |those |sending |sending me )*{_TEXTS}\b",
            rf"\bstop (?:getting|receiving) (?:all |the |these |this |your |ur |those )*{_TEXTS}\b",
            rf"\bno more {_TEXTS}\b",
            r"\bno more (?:texting|messaging)\b",
            rf"\b(?:dont|do not|never) (?:text|txt|message|msg|contact|send) (?:me|this number)"
            rf"(?: {_TEXTS})? (?:anymore|any more|again|no more|ever again)\b",
            r"\bunsubscribe\b",
            r"\bunsub\b",
            r"\bopt ?out\b",
            r"\bopt me out\b",
            r"\b(?:take|remove|delete|drop|erase) (?:me|my (?:number|phone|phone number|name|info))"
            r" (?:off|from|out)\b",
            r"\blose my number\b",
            r"\b(?:delete|remove|erase) my (?:number|phone number|info)\b",
            r"\brevoke (?:my )?consent\b",
            rf"\bcancel (?:all |the |these |my |this )*(?:subscription|{_TEXTS})\b",
        ]
    )
)
_STOP_PHRASES_ES = _search(
    "|".join(
        [
            r"\bno me (?:manden|mandes|mande|envien|envies|envie|escriban|escribas|escriba"
            r"|texteen|textees|contacten|contactes) (?:mas|nunca mas|mensajes|textos|msjs|msj)\b",
            r"\b(?:dejen|deja|dejar|deje|dejes|dejan) de (?:escribirme|mandarme|enviarme"
            r"|textearme|contactarme|molestarme|escribir|mandar|enviar|textear)\b",
            r"\b(?:ya )?no (?:quiero|deseo) (?:recibir |seguir recibiendo |mas )*"
            r"(?:mensajes|textos|msjs)\b",
            r"\bno mas (?:mensajes|textos|msjs)\b",
            r"\b(?:quitenme|quitame|quiteme|borrenme|borrame|sacame|saquenme|eliminenme)"
            r" (?:de|del)\b",
            r"\b(?:dar|darme|darse|dame|denme) de baja\b",
            r"\bcancelar (?:los |mis |la |el |las )?(?:mensajes|textos|suscripcion)\b",
        ]
    )
)

# --- START ------------------------------------------------------------------------------------

_START_WORDS = (
    "start",
    "unstop",
    "subscribe",
    "resubscribe",
    "restart",
    "start again",
    "start back",
    "start back up",
    "yes start",
    "opt in",
    "optin",
    "opt me in",
    "opt me back in",
    "sign me up",
    "sign me back up",
    "comenzar",
    "iniciar",
    "empezar",
    "alta",
    "darme de alta",
    "suscribir",
    "suscribirme",
)
_START_COMPOSED = _compose(_START_WORDS, _COURTESY)
_START_PHRASES = _search(
    r"\b(?:start|resume|restart) (?:texting|messaging|sending|the texts|texts|messages)"
    r"(?: me)? (?:again|back)\b|\bunstop\b|\b(?:opt|sign) me back in\b"
)

# --- HELP -------------------------------------------------------------------------------------

# Only a lone HELP/AYUDA is the keyword (see the module docstring); INFO may carry courtesy.
_HELP_ALONE = _search(r"^(?:help|ayuda|halp)$")
_HELP_COMPOSED = _compose(
    ("info", "information", "informacion", "more info", "help info", "mas informacion"), _COURTESY
)

# --- self-service: CALL ME, NEXT, PAUSE, RESUME ---------------------------------------------
#
# Whole-message phrases only, like INFO: "call me when you can" asks for a call, "they call me
# Jay" and "don't call me" do not; "NEXT" or "next appt?" asks for the next appointment, "next
# week" does not; "pause" alone pauses, "pause" inside a sentence is for a coach to read.

# Words that may stand around a self-service keyword without changing it ("call me tomorrow
# please", "llámame cuando puedas", "next appointment coach?").
_SELF_SERVICE_COURTESY = (
    *_COURTESY,
    "coach",
    "hi",
    "hey",
    "hello",
    "hola",
    "now",
    "asap",
    "today",
    "tomorrow",
    "when you can",
    "when you get a chance",
    "when you get a minute",
    "ahora",
    "hoy",
    "manana",
    "cuando puedas",
    "cuando puedes",
    "cuando tengas tiempo",
)
_CALL_ME_WORDS = (
    "call me",
    "call me back",
    "callback",
    "call back",
    "can you call me",
    "can you call me back",
    "could you call me",
    "could you call me back",
    "can u call me",
    "could u call me",
    "can you give me a call",
    "give me a call",
    "i need a call",
    "i need you to call me",
    "please call me",
    "call me pls",
    "llamame",
    "me llamas",
    "me puedes llamar",
    "me podes llamar",
    "me podrias llamar",
    "puedes llamarme",
    "podrias llamarme",
    "me puede llamar",
    "puede llamarme",
    "me pueden llamar",
    "pueden llamarme",
    "necesito que me llames",
    "llamenme",
)
_CALL_ME_COMPOSED = _compose(_CALL_ME_WORDS, _SELF_SERVICE_COURTESY)

_NEXT_WORDS = (
    "next",
    "next appt",
    "next appointment",
    "my next appt",
    "my next appointment",
    "next appt when",
    "when is my next appt",
    "when is my next appointment",
    "whens my next appt",
    "whens my next appointment",
    "when is the next appointment",
    "what is my next appointment",
    "whats my next appointment",
    "whats my next appt",
    "proxima",
    "proxima cita",
    "mi proxima cita",
    "siguiente cita",
    "mi siguiente cita",
    "cual es mi proxima cita",
    "cuando es mi proxima cita",
    "cuando es la proxima cita",
    "cuando es mi cita",
    "cuando es mi siguiente cita",
)
_NEXT_COMPOSED = _compose(_NEXT_WORDS, _SELF_SERVICE_COURTESY)

_PAUSE_WORDS = (
    "pause",
    "pause it",
    "pause texts",
    "pause the texts",
    "pause messages",
    "pause check ins",
    "pause checkins",
    "pause for a week",
    "pausa",
    "pausar",
    "pausa por una semana",
    "pausar mensajes",
    "pausar los mensajes",
)
_PAUSE_COMPOSED = _compose(_PAUSE_WORDS, _COURTESY)

# "resume" and "reanudar" were START words; from someone who opted out they still opt back in
# (bot/services/self_service.py hands them to the START handling).
_RESUME_WORDS = (
    "resume",
    "resume texts",
    "resume check ins",
    "resume checkins",
    "unpause",
    "un pause",
    "seguir",
    "continuar",
    "reanudar",
    "reanudar mensajes",
    "seguir con los mensajes",
)
_RESUME_COMPOSED = _compose(_RESUME_WORDS, _COURTESY)

# --- YES / NO ---------------------------------------------------------------------------------

_YES_WORDS = (
    "yes",
    "y",
    "ye",
    "yea",
    "yeah",
    "yep",
    "yup",
    "yas",
    "c",
    "confirm",
    "confirmed",
    "confirming",
    "i confirm",
    "si",
    "claro",
    "claro que si",
    "de acuerdo",
    "confirmo",
    "confirmado",
    "sure",
    "for sure",
    "of course",
    "definitely",
    "absolutely",
    "will do",
    "i will be there",
    "ill be there",
    "i will",
    "will be there",
    "be there",
    "see you there",
    "see you then",
    "see you tomorrow",
    "see you soon",
    "ahi estare",
    "alli estare",
    "ahi nos vemos",
    "alli nos vemos",
    "si voy",
    "ahi voy",
    "ahi estoy",
    "yes i can",
    "i can make it",
    "i can",
)
_NO_WORDS = (
    "no",
    "n",
    "nope",
    "nah",
    "no thanks",
    "no thank you",
    "cant",
    "i cant",
    "cant go",
    "i cant go",
    "i cant come",
    "i cant be there",
    "i wont be there",
    "wont be there",
    "not going",
    "im not going",
    "i am not going",
    "no puedo",
    "no puedo ir",
    "no voy",
    "no voy a ir",
    "no voy a poder",
    "no voy a poder ir",
    "no podre",
    "no podre ir",
    "no puedo llegar",
    "no puedo asistir",
    "no voy a llegar",
    "no llego",
    "no alcanzo",
    "no alcanzo a llegar",
    "no alcanzo a ir",
    "no ire",
    "no asistire",
    "no podre asistir",
    "no voy a poder llegar",
    "no voy a poder ir",
    "no voy a ir a la cita",
    "no puedo ir a la cita",
    "no gracias",
)
_YES_COMPOSED = _compose(_YES_WORDS, (*_COURTESY, "coach", "lol"))
_NO_COMPOSED = _compose(_NO_WORDS, (*_COURTESY, "sorry", "lo siento", "coach"))
# A declined appointment anywhere in a message: the flag that follows asks a coach to reschedule.
_NO_PHRASES = _search(
    r"\b(?:cant|cannot|can not|wont|will not|not going to|not gonna|unable to|couldnt|could not)"
    r" (?:make it|make the appointment|make my appointment|be there)\b"
    # Spanish "can't make it": "no puedo ir", "no voy a poder llegar", "no alcanzo a llegar",
    # "no voy a ir a la cita". Not "no voy a llegar a tiempo" (late is not a no), nor a bare
    # "no voy a ir" inside a sentence ("no voy a ir a trabajar"): a coach reads those.
    r"|\bno (?:puedo|podre|podria|voy a poder|alcanzo a|alcanzare a|voy a alcanzar a)"
    r" (?:ir|llegar|asistir)\b(?! a tiempo)"
    r"|\bno (?:voy a (?:ir|llegar|asistir)|ire|llegare|asistire|llego) a (?:la|mi) cita\b"
)

# "Wrong number" anywhere in a message, unless negated ("not a wrong number").
_WRONG_NUMBER_PHRASES = _search(
    r"\b(?:wrong (?:number|num|no|phone|person|#)|wrong numb"
    r"|(?:got|have|texting|texted|text|messaging) the wrong (?:number|person|phone)"
    r"|(?:this|that) (?:is not|isnt|aint|is no longer|isnt no longer) (?:their|his|her|the) "
    r"(?:number|phone)"
    r"|(?:no one|nobody|noone) (?:here )?(?:by|named|with) that name"
    r"|(?:dont|do not) know (?:who (?:this|that) is|who you are|anyone named|any)"
    r"|new (?:phone|number|fone) who (?:dis|this|is this)"
    r"|how did you get (?:this|my) number"
    r"|numero (?:equivocado|incorrecto|errado|equivocao)"
    r"|(?:se equivoco|te equivocaste|se equivocaron|esta equivocado) de numero"
    r"|(?:aqui )?no (?:vive|hay) (?:nadie|ninguna persona) (?:con ese nombre|asi|que se llame)"
    r"|no conozco a (?:esa persona|nadie con ese nombre|ningun|ninguna)"
    r"|(?:este|ese) (?:ya )?no es (?:su|el) (?:numero|telefono|cel|celular)"
    r"|quien (?:me )?(?:da|dio) (?:este|mi) numero)\b"
)
# Asking who is writing, as the whole message: "who is this?", "new phone who dis", "¿quién
# es?". Not inside a longer question ("who is this appointment with").
_WHO_IS_THIS_WORDS = (
    "who is this",
    "whos this",
    "who this",
    "who dis",
    "who is dis",
    "who is it",
    "who are you",
    "who r u",
    "who ru",
    "who are u",
    "who is texting me",
    "whos texting me",
    "who is messaging me",
    "quien es",
    "quien eres",
    "quien habla",
    "quien me escribe",
    "quien es usted",
    "quien sos",
    "con quien hablo",
    "quienes son",
)
_WHO_IS_THIS_COMPOSED = _compose(
    _WHO_IS_THIS_WORDS,
    (
        *_COURTESY,
        "hi",
        "hey",
        "hello",
        "hola",
        "um",
        "uh",
        "sorry",
        "lol",
        "new phone",
        "new number",
        "new phone who dis",
        "perdon",
        "disculpe",
        "buenas",
        "and",
        "y",
    ),
)
_YES_EMOJI = frozenset("👍✅👌✔☑")
_NO_EMOJI = frozenset("👎❌")
# Invisible parts of emoji sequences: variation selectors, skin tones, zero-width joiner.
_EMOJI_MODIFIERS = frozenset("\ufe0f\ufe0e\u200d🏻🏼🏽🏾🏿")


def _strip_edges(body: str) -> str:
    """Drop whitespace, punctuation, symbols and emoji from both ends (letters/digits stay)."""
    start, end = 0, len(body)
    while start < end and not body[start].isalnum():
        start += 1
    while end > start and not body[end - 1].isalnum():
        end -= 1
    return body[start:end]


def _is_carrier_keyword(body: str) -> bool:
    core = _strip_edges(body)
    # ASCII only: Twilio matches its own spelling; "STÓP" is ours to confirm, not Twilio's.
    return core.isascii() and core.casefold() in CARRIER_KEYWORDS


def _emoji_intent(body: str) -> Intent:
    symbols = {ch for ch in body if not ch.isspace() and ch not in _EMOJI_MODIFIERS}
    if symbols and symbols <= _YES_EMOJI:
        return Intent.YES
    if symbols and symbols <= _NO_EMOJI:
        return Intent.NO
    return Intent.NONE


def _negated(text: str, start: int, negators: frozenset[str]) -> bool:
    """True when the words just before ``start`` negate the phrase there.

    Looks back past a few filler words ("don't you ever stop texting me") to the nearest real
    word; "I don't want it, stop texting me" is therefore still an opt-out.
    """
    words = text[:start].split()
    for word in reversed(words[-4:]):
        if word in negators:
            return True
        if word not in _NEGATION_FILLERS:
            return False
    return False


def _wrong_number_negated(text: str, start: int) -> bool:
    """ "not a wrong number", "it's not the wrong number", "no es número equivocado"."""
    before = text[:start].split()[-3:]
    # A bare "no" is an answer ("no, wrong number"); "no es" negates.
    return any(word in _WRONG_NUMBER_NEGATORS for word in before) or before[-2:] == ["no", "es"]


_WRONG_NUMBER_NEGATORS = frozenset({"not", "isnt", "aint", "never", "nunca"})


def _matches_unnegated(pattern: re.Pattern[str], text: str, negators: frozenset[str]) -> bool:
    return any(not _negated(text, m.start(), negators) for m in pattern.finditer(text))


def _intent(body: str, text: str) -> Intent:
    if not text:
        return _emoji_intent(body)
    short = len(text) <= _MAX_COMPOSED_LEN
    if (
        (short and _STOP_COMPOSED.match(text))
        or _matches_unnegated(_STOP_PHRASES_EN, text, _EN_NEGATORS)
        or _matches_unnegated(_STOP_PHRASES_ES, text, _EN_NEGATORS | _ES_NEGATORS)
    ):
        return Intent.STOP
    if (short and _START_COMPOSED.match(text)) or _matches_unnegated(
        _START_PHRASES, text, _EN_NEGATORS | _ES_NEGATORS
    ):
        return Intent.START
    if _HELP_ALONE.match(text) or (short and _HELP_COMPOSED.match(text)):
        return Intent.HELP
    if (short and _WHO_IS_THIS_COMPOSED.match(text)) or any(
        not _wrong_number_negated(text, m.start()) for m in _WRONG_NUMBER_PHRASES.finditer(text)
    ):
        return Intent.WRONG_NUMBER
    if short and _CALL_ME_COMPOSED.match(text):
        return Intent.CALL_ME
    if short and _NEXT_COMPOSED.match(text):
        return Intent.NEXT
    if short and _PAUSE_COMPOSED.match(text):
        return Intent.PAUSE
    if short and _RESUME_COMPOSED.match(text):
        return Intent.RESUME
    if short and _YES_COMPOSED.match(text):
        return Intent.YES
    if (short and _NO_COMPOSED.match(text)) or _NO_PHRASES.search(text):
        return Intent.NO
    return Intent.NONE


def classify_keyword(body: str) -> KeywordResult:
    """Classify one inbound body. Never raises; anything unrecognised is ``Intent.NONE``."""
    intent = _intent(body, normalize(body))
    carrier = intent in (Intent.STOP, Intent.START) and _is_carrier_keyword(body)
    return KeywordResult(intent=intent, carrier_handled=carrier)
