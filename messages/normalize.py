"""The one way a text is read before it is matched: crisis, keyword and sensitive-word rules, and
the learned crisis layer, all see the same text.

Pure and standard-library only; every pattern is compiled once at import.

The steps, in order (:func:`light`):

1. **Case and accents.** Case-folded, then NFKD with the combining marks dropped: "SÍ" -> "si",
   "Cárcel" -> "carcel", "ñ" -> "n"; full-width and other compatibility forms fold to ASCII.
   Cyrillic and Greek letters that look like Latin ones read as those ("cоurt" with a Cyrillic
   о -> "court"), and letters written with dots between them read as one word ("P.O." -> "po").
2. **Look-alike characters** used to dodge filters or typed by accident are undone, but only
   between letters (k!ll, su1c1de, mys3lf, m0rir) or at the start of a word before two letters
   (0verdose, $uicide), so that "10 pills", "call 911!" and "4pm" keep their digits.
3. **Masked letters.** An asterisk (or a run of them) between letters stands for letters: when the
   word then reads as exactly one word of a short list of words the rules hinge on ("k*ll",
   "s**cide", "m*rir") it becomes that word; otherwise each asterisk becomes "i", the most
   common masked letter ("d*e" -> "die", "k*lling" -> "killing").
4. **Apostrophes** are dropped (don't -> dont, I'm -> im).
5. **Phonetic spellings** of a few Spanish words the rules hinge on: "kiero" -> "quiero".
6. **Everything else** that is not a letter or digit (spaces, punctuation, emoji, hyphens,
   underscores) becomes one space; the edges are trimmed.

:func:`squash` then folds runs of a repeated letter to one (stooop -> stop, killl -> kil, pills
-> pils). Patterns are written in ordinary spelling and squashed the same way when compiled
(:func:`squash_pattern`), which also absorbs single-letter misspellings ("kil myself").
:func:`normalize` is both steps, the form keyword and sensitive-word matching use.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

__all__ = ["fold", "light", "normalize", "squash", "squash_pattern"]

_APOSTROPHES = re.compile(r"['’‘`´ʼ]")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_REPEATS = re.compile(r"([a-z])\1+")
# In a pattern's source, squash doubled letters but never one that follows a backslash, so that
# escapes such as \b or \s keep their meaning.
_PATTERN_REPEATS = re.compile(r"(?<!\\)([a-z])\1+")

_LOOKALIKES = {
    "0": "o",
    "1": "i",
    "!": "i",
    "|": "i",
    "3": "e",
    "4": "a",
    "@": "a",
    "$": "s",
    "5": "s",
    "7": "t",
}
_LOOKALIKE_INSIDE = re.compile(r"(?<=[a-z])[0137!|4@$5](?=[a-z])")
_LOOKALIKE_START = re.compile(r"(?<![a-z0-9])[0@$](?=[a-z]{2})")

# Words people mask with asterisks, spelt in full, so that "k*ll" reads "kill" and "m*rir"
# reads "morir". A masked word that fits none of them, or more than one, gets "i" per asterisk.
_MASKABLE = (
    "kill",
    "killing",
    "killed",
    "die",
    "dying",
    "dead",
    "death",
    "suicide",
    "suicidal",
    "myself",
    "overdose",
    "overdosed",
    "pills",
    "cut",
    "cutting",
    "hang",
    "shoot",
    "gun",
    "unalive",
    "morir",
    "muerte",
    "muerto",
    "muerta",
    "matar",
    "matarme",
    "suicidio",
    "suicidarme",
    "ahorcarme",
    "cortarme",
    "pastillas",
    "sobredosis",
)
# Asterisks between letters only: "*sigh*" and "I want to *die*" are emphasis, not masks.
_MASKED_WORD = re.compile(r"[a-z]+(?:\*+[a-z]+)+")
_SPELLINGS = {"kiero": "quiero", "qiero": "quiero", "kieren": "quieren", "aki": "aqui"}
_SPELLING_WORDS = re.compile(r"\b(?:" + "|".join(_SPELLINGS) + r")\b")


# Cyrillic and Greek letters (after case-folding) that look like a Latin letter.
_CONFUSABLES = str.maketrans(
    {
        "а": "a",
        "в": "b",
        "е": "e",
        "ё": "e",
        "з": "3",
        "і": "i",
        "ї": "i",
        "ј": "j",
        "к": "k",
        "м": "m",
        "н": "h",
        "о": "o",
        "р": "p",
        "с": "c",
        "т": "t",
        "у": "y",
        "х": "x",
        "ѕ": "s",
        "ԁ": "d",
        "ԛ": "q",
        "ԝ": "w",
        "α": "a",
        "β": "b",
        "ε": "e",
        "ι": "i",
        "κ": "k",
        "ν": "v",
        "ο": "o",
        "ρ": "p",
        "τ": "t",
        "υ": "u",
        "χ": "x",
    }
)
# Single letters with dots between them, an abbreviation: "p.o.", "P. O.", "u.s.a".
_DOTTED = re.compile(r"(?<![a-z0-9])[a-z](?:\.\s?[a-z])+\.?(?![a-z0-9])")


def fold(text: str) -> str:
    """Case-fold, strip accents (NFKD, then drop combining marks) and read look-alike Cyrillic
    and Greek letters as Latin: "SÍ" -> "si", "cоurt" (Cyrillic о) -> "court"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return plain.translate(_CONFUSABLES)


@cache
def _mask_pattern(masked: str) -> re.Pattern[str]:
    return re.compile("".join("[a-z]+" if ch == "*" else ch for ch in re.sub(r"\*+", "*", masked)))


def _unmask(match: re.Match[str]) -> str:
    masked = match.group()
    if len(masked) > 40:  # Not a word: leave the cost of matching bounded.
        return masked.replace("*", "i")
    pattern = _mask_pattern(masked)
    fits = [word for word in _MASKABLE if pattern.fullmatch(word)]
    if len(fits) == 1:
        return fits[0]
    return masked.replace("*", "i")


def light(body: str) -> str:
    """Steps 1-6 of the module docstring, without squashing: "K!LL mys3lf..." -> "kill myself"."""
    text = fold(body)
    if "." in text:
        text = _DOTTED.sub(lambda m: re.sub(r"[.\s]", "", m.group()), text)
    text = _LOOKALIKE_INSIDE.sub(lambda m: _LOOKALIKES[m.group()], text)
    text = _LOOKALIKE_START.sub(lambda m: _LOOKALIKES[m.group()], text)
    if "*" in text:
        text = _MASKED_WORD.sub(_unmask, text)
    text = _APOSTROPHES.sub("", text)
    text = _SPELLING_WORDS.sub(lambda m: _SPELLINGS[m.group()], text)
    return _NON_ALNUM.sub(" ", text).strip()


def squash(text: str) -> str:
    """Runs of one repeated letter become one letter: "stooop" -> "stop", "pills" -> "pils"."""
    return _REPEATS.sub(r"\1", text)


def squash_pattern(source: str) -> str:
    """Squash a regular expression's source like a text, leaving escapes (\\bb) intact."""
    return _PATTERN_REPEATS.sub(r"\1", source)


def normalize(body: str) -> str:
    """The canonical form the keyword and sensitive-word patterns match: :func:`light`, squashed.

    "Don't STOOOP!! 🙏" -> "dont stop"; "su1c1de" -> "suicide"; "k*ll" -> "kil".
    """
    return squash(light(body))
