"""Words that would disclose sensitive detail if they appeared in a text body.

A text can be read by anyone holding the phone: family, an employer, a cellmate's friend.
Coordinators are warned (not blocked) when a template contains one of these; the shipped
defaults contain none. The list covers supervision, courts, custody, treatment, health and
drug testing, in English and Spanish. "court" is allowed if a coordinator insists (DESIGN.md),
which is why this is a warning and not a refusal.
"""

from __future__ import annotations

import re
import unicodedata

SENSITIVE_TERMS: tuple[str, ...] = (
    # supervision and courts
    "probation", "parole", "parole officer", "PO", "court", "judge", "sentencing", "warrant",
    "felony", "offender", "arrest", "bail", "ankle monitor",
    # custody
    "jail", "prison", "inmate", "incarcerated", "incarceration", "release from custody",
    "correctional", "reentry", "re-entry",
    # treatment and health
    "treatment", "methadone", "suboxone", "buprenorphine", "naloxone", "rehab", "rehabilitation",
    "detox", "recovery", "overdose", "sober", "sobriety", "relapse", "addiction", "substance",
    "drug test", "urinalysis", "UA", "diagnosis", "HIV", "hepatitis", "mental health",
    "psychiatric", "psychiatrist", "therapy", "therapist", "counseling", "medication",
    # Spanish
    "libertad condicional", "libertad vigilada", "agente de libertad", "corte", "tribunal",
    "juez", "jueza", "cárcel", "prisión", "preso", "presa", "reclusión", "tratamiento",
    "metadona", "rehabilitación", "desintoxicación", "recuperación", "sobredosis",
    "prueba de drogas", "diagnóstico", "salud mental", "psiquiátrico", "psiquiatra", "terapia",
    "adicción", "antidoping",
)  # fmt: skip


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _pattern(term: str) -> re.Pattern[str]:
    words = [re.escape(w) for w in _fold(term).split()]
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)")


# Short abbreviations only match in capitals: "po" and "ua" are common inside other words and
# in Spanish ("po" as slang, "ua" in names).
_CASE_SENSITIVE = {"PO", "UA"}
_PATTERNS = [(term, _pattern(term)) for term in SENSITIVE_TERMS if term not in _CASE_SENSITIVE]
_CAPS = [(term, re.compile(rf"(?<!\w){term}(?!\w)")) for term in _CASE_SENSITIVE]


def find_sensitive_terms(text: str) -> list[str]:
    """The sensitive terms present in `text` (whole words, case- and accent-insensitive)."""
    folded = _fold(text)
    found = [term for term, pattern in _PATTERNS if pattern.search(folded)]
    found += [term for term, pattern in _CAPS if pattern.search(text)]
    return found
