"""Template rendering in a sandbox with an allow-list of placeholders.

Coordinators write templates; a template is data, not code. Only plain `{{ name }}` output of
an allowed placeholder is accepted: no attribute or item access, no filters, calls, loops,
conditions, includes or imports. The check walks Jinja's own parse tree, so it sees exactly what
Jinja would run, and rendering still happens in Jinja's SandboxedEnvironment with StrictUndefined
as a second wall.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, nodes
from jinja2.sandbox import SandboxedEnvironment

MAX_BODY_CHARS = 1600

ALLOWED_PLACEHOLDERS: Mapping[str, str] = {
    "first_name": "The participant's first name",
    "coach_first_name": "Their peer coach's first name",
    "program_name": "The program's name",
    "program_phone": "The program's phone line for people",
    "appointment_date": "Appointment date, in their language (reminders only)",
    "appointment_time": "Appointment time, in their time zone (reminders only)",
    "appointment_place": "Appointment place (reminders only)",
}
_APPOINTMENT = ("appointment_date", "appointment_time", "appointment_place")
_PARTICIPANT = tuple(name for name in ALLOWED_PLACEHOLDERS if name not in _APPOINTMENT)
STAFF_PAGE_PLACEHOLDERS: Mapping[str, str] = {
    "severity": "How urgent the flag is (urgent, high ...)",
    "participant_label": "Short label of the participant (first name and initial)",
    "dashboard_url": "Link to the flag in the dashboard",
    "program_name": "The program's name",
}

_env = SandboxedEnvironment(
    undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False
)


class TemplateError(ValueError):
    def __init__(self, reason: str, line: int | None = None, column: int | None = None) -> None:
        self.reason = reason
        self.line = line
        self.column = column
        where = ""
        if line is not None:
            where = f"line {line}, column {column}: " if column is not None else f"line {line}: "
        super().__init__(f"{where}{reason}")


def allowed_placeholders_for(key: str) -> Mapping[str, str]:
    """The placeholders a template key may use: reminders add the appointment's date, time and
    place; the staff page has its own; everything else gets the participant's neutral facts."""
    if key == "coach_page":
        return STAFF_PAGE_PLACEHOLDERS
    names = ALLOWED_PLACEHOLDERS.keys() if key.startswith("reminder") else _PARTICIPANT
    return {name: ALLOWED_PLACEHOLDERS[name] for name in names}


def _column(body: str, line: int, needle: str | None) -> int:
    """1-based column of the offending expression on `line` (best effort)."""
    lines = body.splitlines() or [""]
    text = lines[min(max(line, 1), len(lines)) - 1]
    if needle is not None:
        match = re.search(r"\{\{-?\s*" + re.escape(needle) + r"\b", text)
        if match:
            return match.start() + 1
    for opener in ("{{", "{%", "{#"):
        index = text.find(opener)
        if index >= 0:
            return index + 1
    return 1


def validate_template(body: str, allowed: Collection[str] | None = None) -> None:
    """Raise TemplateError unless `body` is plain text with `{{ name }}` of allowed names."""
    allowed_names = set(ALLOWED_PLACEHOLDERS if allowed is None else allowed)
    if not body.strip():
        raise TemplateError("the message is empty")
    if len(body) > MAX_BODY_CHARS:
        raise TemplateError(f"the message is {len(body)} characters; the limit is {MAX_BODY_CHARS}")
    try:
        tree = _env.parse(body)
    except TemplateSyntaxError as exc:
        line = exc.lineno or 1
        raise TemplateError(
            f"syntax error: {exc.message}", line, _column(body, line, None)
        ) from None
    for output in tree.body:
        if not isinstance(output, nodes.Output):
            line = output.lineno
            raise TemplateError(
                "only {{ placeholder }} is allowed (no {% ... %} statements)",
                line,
                _column(body, line, None),
            )
        for node in output.nodes:
            if isinstance(node, nodes.TemplateData):
                continue
            if isinstance(node, nodes.Name) and node.ctx == "load":
                if node.name not in allowed_names:
                    raise TemplateError(
                        f"unknown placeholder {node.name!r}; allowed: {', '.join(sorted(allowed_names))}",
                        node.lineno,
                        _column(body, node.lineno, node.name),
                    )
                continue
            raise TemplateError(
                "only a plain {{ placeholder }} is allowed (no dots, brackets, filters or calls)",
                node.lineno,
                _column(body, node.lineno, None),
            )


def render_template(
    body: str, context: Mapping[str, str], allowed: Collection[str] | None = None
) -> str:
    validate_template(body, allowed)
    try:
        text = _env.from_string(body).render(**context).strip()
    except UndefinedError as exc:
        raise TemplateError(f"missing value: {exc.message}") from None
    if len(text) > MAX_BODY_CHARS:
        raise TemplateError(
            f"the rendered message is {len(text)} characters; the limit is {MAX_BODY_CHARS}"
        )
    return text


def sample_context(language: str) -> dict[str, str]:
    """A sample participant for live previews in the template editor."""
    if language == "es":
        return {
            "first_name": "María",
            "coach_first_name": "Luis",
            "program_name": "Regreso a Casa",
            "program_phone": "(555) 010-0100",
            "appointment_date": "martes 10 de marzo",
            "appointment_time": "10:30",
            "appointment_place": "100 Main St",
            "severity": "urgente",
            "participant_label": "María G.",
            "dashboard_url": "https://checkin.example.org/flags/1",
        }
    return {
        "first_name": "Maria",
        "coach_first_name": "Luis",
        "program_name": "Homecoming Peers",
        "program_phone": "(555) 010-0100",
        "appointment_date": "Tuesday, March 10",
        "appointment_time": "10:30 AM",
        "appointment_place": "100 Main St",
        "severity": "urgent",
        "participant_label": "Maria G.",
        "dashboard_url": "https://checkin.example.org/flags/1",
    }
