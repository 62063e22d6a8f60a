from __future__ import annotations

import pytest

from messages.sensitive import SENSITIVE_TERMS, find_sensitive_terms

REQUIRED = [
    "probation",
    "parole",
    "court",
    "treatment",
    "methadone",
    "suboxone",
    "rehab",
    "jail",
    "prison",
    "inmate",
    "felony",
    "offender",
    "incarcerated",
    "recovery",
    "detox",
    "overdose",
    "drug test",
    "urinalysis",
    "diagnosis",
    "HIV",
    "mental health",
    "psychiatric",
    "sentencing",
    "warrant",
    "PO",
    "libertad condicional",
    "corte",
    "tribunal",
    "cárcel",
    "prisión",
    "tratamiento",
    "metadona",
    "rehabilitación",
]


def test_the_list_has_every_required_term_once() -> None:
    assert set(REQUIRED) <= set(SENSITIVE_TERMS)
    assert len(SENSITIVE_TERMS) == len(set(SENSITIVE_TERMS))


@pytest.mark.parametrize("term", SENSITIVE_TERMS)
def test_every_listed_term_finds_itself(term: str) -> None:
    assert find_sensitive_terms(f"About your {term} tomorrow.") == [term]


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("Your court date is Monday", ["court"]),
        ("COURT at 9", ["court"]),
        ("Call your PO today", ["PO"]),
        ("See your probation officer", ["probation"]),
        ("Tu cita en la Corte", ["corte"]),
        ("Saliste de la CARCEL", ["cárcel"]),
        ("salida de prision", ["prisión"]),
        ("Tu cita de rehabilitacion", ["rehabilitación"]),
        ("Libertad  Condicional", ["libertad condicional"]),
        ("drug-test on Friday", ["drug test"]),
        ("two courts and three prisons", ["court", "prison"]),
        ("varias prisiones y cárceles", ["prisión", "cárcel"]),
        ("Treatment, then court, then treatment again", ["treatment", "court"]),
        ("Your HIV and mental health appointment", ["HIV", "mental health"]),
        ("(methadone)", ["methadone"]),
        ("tu oficial de supervisión", ["supervision"]),
        ("una prueba de drogas y drogas", ["prueba de drogas", "drogas"]),
        ("orden de arresto", ["orden de arresto"]),
    ],
)
def test_terms_are_found_whole_word_ignoring_case_accents_and_plurals(
    text: str, found: list[str]
) -> None:
    assert find_sensitive_terms(text) == found


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Hi Maria, it's Luis. How are things going today?",
        "Thanks for the courtesy",
        "This is important",
        "Portland potluck at the pool",
        "Your appointment on Tuesday at 2:30 PM",
        "Tu cita es el martes a las 2:30 p. m.",
        "A jailbreak phone",
        "Cortesía y recortes",
        "Prisoner's dilemma",  # not in the list; whole words only
    ],
)
def test_neutral_text_has_no_sensitive_terms(text: str) -> None:
    assert find_sensitive_terms(text) == []


def test_results_are_in_order_of_first_appearance() -> None:
    assert find_sensitive_terms("parole, then jail, then parole") == ["parole", "jail"]


@pytest.mark.parametrize(
    ("text", "term"),
    [
        ("cоurt", "court"),  # a Cyrillic о
        ("Cоurthоuse", "courthouse"),  # two of them
        ("c0urt", "court"),
        ("p.o.", "PO"),
        ("Meet your P. O. at 3", "PO"),
        ("prob@tion", "probation"),
        ("ј4il", "jail"),  # a Cyrillic ј and a digit
        ("pаrole", "parole"),  # a Cyrillic а
        ("τherapy", "therapy"),  # a Greek τ
    ],
)
def test_look_alike_letters_digits_and_dots_do_not_hide_a_sensitive_word(
    text: str, term: str
) -> None:
    assert find_sensitive_terms(text) == [term]


@pytest.mark.parametrize("text", ["courtesy", "10 a.m. at the library", "Main St. Library"])
def test_abbreviations_and_longer_words_stay_innocent(text: str) -> None:
    assert find_sensitive_terms(text) == []
