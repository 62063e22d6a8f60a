"""What a safety-critical reply must keep, whatever a coordinator writes (issue 17.7).

The rules are a table keyed by template-key prefix, so every crisis reply (`crisis`, and any
`crisis_*` key added later) is covered without naming it here. A body is checked as it would
be sent: rendered for a sample participant of its language, with a program phone no text
could contain by chance, so `{{program_phone}}` counts however it is spaced and a number
inside a word ("19880") does not count.

- A crisis reply names 988 and 911 (in Spanish also AYUDA, the word to text to 988).
- HELP gives the program's phone and 988 (a lone "help" may be a cry for help).
- An opt-out confirmation says how to start again: START (or UNSTOP), in every language,
  because those are the words that lift the carrier's block after STOP.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from messages.render import TemplateError, allowed_placeholders_for, render_template, sample_context

# A value the program_phone placeholder renders as, for the check only.
_PHONE_MARK = "PROGRAM-PHONE-PLACEHOLDER"


@dataclass(frozen=True)
class Must:
    """One thing a body must contain: a pattern on the rendered text, and how to say it."""

    pattern: str
    label: str

    def found_in(self, text: str) -> bool:
        return re.search(self.pattern, text, re.IGNORECASE) is not None


NUMBER_988 = Must(r"(?<!\d)988(?!\d)", "988")
NUMBER_911 = Must(r"(?<!\d)911(?!\d)", "911")
AYUDA = Must(r"\bAYUDA\b", "AYUDA (to text to 988)")
PROGRAM_PHONE = Must(re.escape(_PHONE_MARK), "the program phone ({{ program_phone }})")
START_AGAIN = Must(r"\b(?:START|UNSTOP)\b", "how to start again (reply START)")


@dataclass(frozen=True)
class Rule:
    prefix: str
    # Language -> what it must contain; "*" for every language without its own entry.
    must: dict[str, tuple[Must, ...]]
    why: str


RULES: tuple[Rule, ...] = (
    Rule(
        "crisis",
        {"*": (NUMBER_988, NUMBER_911), "es": (NUMBER_988, AYUDA, NUMBER_911)},
        "a crisis reply must give 988 (call or text) and 911 for an emergency",
    ),
    Rule(
        "help",
        {"*": (PROGRAM_PHONE, NUMBER_988)},
        "the HELP reply must give the program's phone and 988",
    ),
    Rule(
        "opt_out",
        {"*": (START_AGAIN,)},
        "an opt-out confirmation must say how to start texts again",
    ),
)


def rule_for(key: str) -> Rule | None:
    for rule in RULES:
        if key == rule.prefix or key.startswith((rule.prefix + "_", rule.prefix + ".")):
            return rule
    return None


def missing_content(key: str, language: str, body: str) -> str | None:
    """What the body lacks, as a sentence for the editor; None when it is safe to save.

    The caller has already checked that the body is a valid template."""
    rule = rule_for(key)
    if rule is None:
        return None
    must = rule.must.get(language, rule.must["*"])
    try:
        context = sample_context(language)
    except ValueError:
        context = sample_context("en")
    context["program_phone"] = _PHONE_MARK
    try:
        text = render_template(body, context, allowed_placeholders_for(key))
    except TemplateError:
        return None  # reported by the template check itself
    lacking = [item.label for item in must if not item.found_in(text)]
    if not lacking:
        return None
    return f"Missing: {', '.join(lacking)}. {rule.why[0].upper()}{rule.why[1:]}."
