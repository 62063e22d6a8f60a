"""Words that would disclose someone's legal, health or treatment situation to whoever sees a text.

Participants' phones are often shared or seen by family, employers and landlords, so default
messages say only first names, the program's name, a date, a time and a place. The template editor
uses :func:`find_sensitive_terms` to warn a coordinator who writes, say, "court" or "probation"
into a message. It is a warning, not a ban: a coordinator may decide a word is fine for their
program.

Text and terms are read by :mod:`messages.normalize`, as crisis and keyword matching read a text,
so matching is whole-word, case-insensitive and accent-insensitive ("CARCEL" finds "cárcel"),
sees through look-alike characters ("j4il") and stretched letters ("jaiil"); a term also
matches with a plural "s" or "es" ("courts", "prisiones"); the words of a multi-word term may be
separated by any spaces or punctuation ("drug-test"). Because matching is whole-word, "courtesy"
and "important" do not match. Some terms have innocent meanings ("corte de pelo", "PO Box",
"audiencia"); they are listed anyway because a false warning costs a coordinator a glance, while a
missed one may cost a participant their privacy.

The list, by theme (English, then Spanish). A word spelt the same in
both languages once accents are ignored ("supervision" / "supervisión", "hepatitis") is listed once.

- criminal legal system: probation, parole, PO, supervision, supervised release, court,
  courthouse, judge, hearing, sentencing, warrant, arrest, bail, custody, conviction, convicted,
  criminal, felony (and felonies), felon, misdemeanor, offender, inmate, jail, prison,
  penitentiary, incarcerated, incarceration, correctional, detention, reentry (re-entry),
  halfway house, public defender;
  libertad condicional, libertad vigilada, libertad supervisada, libertad bajo palabra,
  probatoria, corte, tribunal, juzgado, juez (and jueces), jueza, audiencia, sentencia, condena,
  orden de arresto, arresto, fianza, delito, delincuente, recluso, reclusa, reo, preso, cárcel,
  prisión, penitenciaría, detención, reinserción;
- substance use and treatment: treatment, rehab, rehabilitation, recovery, detox, methadone,
  suboxone, buprenorphine, naloxone, narcan, vivitrol, opioid, overdose, addiction, substance
  abuse, substance use, sobriety, sober, relapse, drug test, drug screen, urinalysis;
  tratamiento, rehabilitación, recuperación, desintoxicación, metadona, sobredosis, adicción,
  drogas, prueba de drogas, prueba de orina, análisis de orina, antidoping;
- health: diagnosis, diagnosed, HIV, hepatitis, mental health, behavioral health, psychiatric,
  psychiatrist, therapy, suicide, suicidal, self-harm; diagnóstico, VIH, SIDA,
  salud mental, psiquiátrico, psiquiátrica, psiquiatra, terapia, suicidio.
"""

from __future__ import annotations

import re
from functools import cache

from messages.normalize import normalize

__all__ = ["SENSITIVE_TERMS", "find_sensitive_terms"]

SENSITIVE_TERMS: tuple[str, ...] = (
    # criminal legal system (English)
    "probation",
    "parole",
    "PO",
    "supervision",
    "supervised release",
    "court",
    "courthouse",
    "judge",
    "hearing",
    "sentencing",
    "warrant",
    "arrest",
    "bail",
    "custody",
    "conviction",
    "convicted",
    "criminal",
    "felony",
    "felonies",
    "felon",
    "misdemeanor",
    "offender",
    "inmate",
    "jail",
    "prison",
    "penitentiary",
    "incarcerated",
    "incarceration",
    "correctional",
    "detention",
    "reentry",
    "re-entry",
    "halfway house",
    "public defender",
    # criminal legal system (Spanish)
    "libertad condicional",
    "libertad vigilada",
    "libertad supervisada",
    "libertad bajo palabra",
    "probatoria",
    "corte",
    "tribunal",
    "juzgado",
    "juez",
    "jueza",
    "jueces",
    "audiencia",
    "sentencia",
    "condena",
    "orden de arresto",
    "arresto",
    "fianza",
    "delito",
    "delincuente",
    "recluso",
    "reclusa",
    "reo",
    "preso",
    "cárcel",
    "prisión",
    "penitenciaría",
    "detención",
    "reinserción",
    # substance use and treatment (English)
    "treatment",
    "rehab",
    "rehabilitation",
    "recovery",
    "detox",
    "methadone",
    "suboxone",
    "buprenorphine",
    "naloxone",
    "narcan",
    "vivitrol",
    "opioid",
    "overdose",
    "addiction",
    "substance abuse",
    "substance use",
    "sobriety",
    "sober",
    "relapse",
    "drug test",
    "drug screen",
    "urinalysis",
    # substance use and treatment (Spanish)
    "tratamiento",
    "rehabilitación",
    "recuperación",
    "desintoxicación",
    "metadona",
    "sobredosis",
    "adicción",
    "drogas",
    "prueba de drogas",
    "prueba de orina",
    "análisis de orina",
    "antidoping",
    # health (English)
    "diagnosis",
    "diagnosed",
    "HIV",
    "hepatitis",
    "mental health",
    "behavioral health",
    "psychiatric",
    "psychiatrist",
    "therapy",
    "suicide",
    "suicidal",
    "self-harm",
    # health (Spanish)
    "diagnóstico",
    "VIH",
    "SIDA",
    "salud mental",
    "psiquiátrico",
    "psiquiátrica",
    "psiquiatra",
    "terapia",
    "suicidio",
)


@cache
def _patterns() -> tuple[tuple[str, re.Pattern[str]], ...]:
    compiled = []
    for term in SENSITIVE_TERMS:
        body = re.escape(normalize(term))
        compiled.append((term, re.compile(rf"(?<![a-z0-9]){body}(?:e?s)?(?![a-z0-9])")))
    return tuple(compiled)


def find_sensitive_terms(text: str) -> list[str]:
    """The sensitive terms found in ``text``, as spelled in :data:`SENSITIVE_TERMS`.

    Each term is listed once, in the order of its first appearance in ``text``. A match inside
    a longer term's match counts only as the longer term: "prueba de drogas" is reported as that,
    not also as "drogas".
    """
    folded = normalize(text)
    matches = [
        (match.start(), match.end(), order, term)
        for order, (term, pattern) in enumerate(_patterns())
        for match in pattern.finditer(folded)
    ]
    found: dict[str, int] = {}
    for start, end, _, term in sorted(matches):
        inside_longer = any(
            s <= start and end <= e and (e - s) > (end - start) for s, e, _, _ in matches
        )
        if not inside_longer and term not in found:
            found[term] = start
    return sorted(found, key=lambda term: found[term])
