"""Coordinator-editable message templates, rendered in a Jinja2 sandbox.

A template may contain only plain text and plain ``{{ name }}`` placeholders whose names are on
an allow-list. Everything else Jinja2 offers (attribute or item access, filters, calls, literals,
expressions, ``{% ... %}`` statements) is refused by :func:`validate_template` before anything is
rendered, and rendering itself happens in :class:`jinja2.sandbox.SandboxedEnvironment` with
:class:`jinja2.StrictUndefined` as a second line of defence.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import jinja2
from jinja2 import meta, nodes
from jinja2.sandbox import SandboxedEnvironment

__all__ = [
    "ALLOWED_PLACEHOLDERS",
    "APPOINTMENT_PLACEHOLDERS",
    "MAX_BODY_CHARS",
    "PARTICIPANT_PLACEHOLDERS",
    "PAUSE_PLACEHOLDERS",
    "STAFF_PLACEHOLDERS",
    "TemplateError",
    "allowed_placeholders_for",
    "compile_template",
    "render_template",
    "sample_context",
    "validate_template",
]

MAX_BODY_CHARS = 1600

PARTICIPANT_PLACEHOLDERS: Mapping[str, str] = MappingProxyType(
    {
        "first_name": "The participant's first name",
        "coach_first_name": "Their peer coach's first name",
        "program_name": "Your program's name",
        "program_phone": "The program's phone number that people can call for help",
    }
)

APPOINTMENT_PLACEHOLDERS: Mapping[str, str] = MappingProxyType(
    {
        "appointment_date": (
            "The appointment's date, written out in the participant's language (reminders only)"
        ),
        "appointment_time": (
            "The appointment's start time, in the participant's time zone (reminders only)"
        ),
        "appointment_place": "Where the appointment is (reminders only)",
    }
)

ALLOWED_PLACEHOLDERS: Mapping[str, str] = MappingProxyType(
    {**PARTICIPANT_PLACEHOLDERS, **APPOINTMENT_PLACEHOLDERS}
)
"""Every placeholder a participant-facing template may use, with a plain-language description."""

PAUSE_PLACEHOLDERS: Mapping[str, str] = MappingProxyType(
    {
        **PARTICIPANT_PLACEHOLDERS,
        "resume_date": (
            "The date check-ins start again, in the participant's language (PAUSE reply only)"
        ),
    }
)
"""What the reply to PAUSE (``pause_confirm``) may use."""

STAFF_PLACEHOLDERS: Mapping[str, str] = MappingProxyType(
    {
        "severity": "How serious the flag is (urgent, high, normal or info)",
        "participant_label": "Who the flag is about, shortened (first name and last initial)",
        "dashboard_url": "A link to the flag in the dashboard",
    }
)
"""Extra placeholders for the staff page (``coach_page``) only."""


def allowed_placeholders_for(key: str) -> Mapping[str, str]:
    """The placeholders a template with this key may use, with their descriptions.

    Reminders (``reminder.<kind>.<offset>``) and the replies to NEXT
    (``next_appointment.<kind>``) may use the appointment placeholders; the reply to PAUSE
    (``pause_confirm``) the date check-ins start again (``resume_date``); the staff page
    (``coach_page``) uses only the staff placeholders; every other key may use the participant
    placeholders (first name, coach's first name, program name and phone).
    """
    if key == "coach_page":
        return STAFF_PLACEHOLDERS
    if key.startswith(("reminder.", "next_appointment.")):
        return ALLOWED_PLACEHOLDERS
    if key == "pause_confirm":
        return PAUSE_PLACEHOLDERS
    return PARTICIPANT_PLACEHOLDERS


class TemplateError(ValueError):
    """A template that may not be saved or rendered, with a reason a coordinator can act on.

    ``line`` and ``column`` are 1-based and point at the offending ``{{`` or ``{%`` when known.
    """

    def __init__(self, reason: str, line: int | None = None, column: int | None = None) -> None:
        self.reason = reason
        self.line = line
        self.column = column
        super().__init__(self._formatted())

    def _formatted(self) -> str:
        if self.line is None:
            return self.reason
        if self.column is None:
            return f"line {self.line}: {self.reason}"
        return f"line {self.line}, column {self.column}: {self.reason}"

    def __str__(self) -> str:
        return self._formatted()


_ENV = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)

_NEWLINE_RE = re.compile(r"\r\n|\r|\n")  # what Jinja2 counts as a line break
_BEGIN_RE = re.compile(r"\{\{|\{%|\{#")
_RAW_RE = re.compile(r"\{%[-+]?\s*raw\s*[-+]?%\}")
_ENDRAW_RE = re.compile(r"\{%[-+]?\s*endraw\s*[-+]?%\}")
_TAG_NAME_RE = re.compile(r"[-+]?\s*(\w+)")


@dataclass(frozen=True)
class _Tag:
    kind: str  # "variable" ({{ }}) or "block" ({% %})
    line: int
    column: int
    end_line: int
    content: str


def _position(source: str, offset: int) -> tuple[int, int]:
    line, line_start = 1, 0
    for match in _NEWLINE_RE.finditer(source, 0, offset):
        line += 1
        line_start = match.end()
    return line, offset - line_start + 1


def _scan_tags(source: str) -> list[_Tag]:
    """The ``{{ }}`` and ``{% %}`` tags of ``source`` in order, as Jinja2's lexer sees them.

    Comments and ``{% raw %}`` sections are skipped, as Jinja2 turns them into plain text.
    """
    tags: list[_Tag] = []
    pos = 0
    while (begin := _BEGIN_RE.search(source, pos)) is not None:
        start, opener = begin.start(), begin.group()
        if opener == "{#":
            end = source.find("#}", begin.end())
            if end < 0:
                break
            pos = end + 2
            continue
        if opener == "{%" and (raw := _RAW_RE.match(source, start)) is not None:
            endraw = _ENDRAW_RE.search(source, raw.end())
            if endraw is None:
                break
            pos = endraw.end()
            continue
        closer = "}}" if opener == "{{" else "%}"
        i = begin.end()
        while i < len(source) and not source.startswith(closer, i):
            if source[i] in "'\"":  # a string literal may contain the closing delimiter
                quote, i = source[i], i + 1
                while i < len(source) and source[i] != quote:
                    i += 2 if source[i] == "\\" else 1
            i += 1
        line, column = _position(source, start)
        kind = "variable" if opener == "{{" else "block"
        end_line, _ = _position(source, i)
        tags.append(_Tag(kind, line, column, end_line, source[begin.end() : i]))
        pos = i + len(closer)
    return tags


def _expression_problem(node: nodes.Node) -> str:
    if isinstance(node, nodes.Getattr | nodes.Getitem):
        return "attribute and item access ('.' or '[...]') is not allowed"
    if isinstance(node, nodes.Filter):
        return f"filters such as '|{node.name}' are not allowed"
    if isinstance(node, nodes.Call):
        return "function and method calls are not allowed"
    if isinstance(node, nodes.Literal):
        return "only a placeholder name can go inside {{ }}; write plain text outside the braces"
    return "only a plain placeholder such as {{ first_name }} can go inside {{ }}"


def _parse(body: str) -> nodes.Template:
    try:
        return _ENV.parse(body)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error: {exc.message}", line=exc.lineno) from None


def _check(body: str, allowed: Collection[str]) -> nodes.Template:
    if not body.strip():
        raise TemplateError("the message is empty")
    if len(body) > MAX_BODY_CHARS:
        raise TemplateError(
            f"the message is {len(body)} characters long; the limit is {MAX_BODY_CHARS}"
        )
    ast = _parse(body)
    tags = _scan_tags(body)
    variable_tags = [t for t in tags if t.kind == "variable"]
    block_tags = [t for t in tags if t.kind == "block"]
    seen_variables = 0
    has_content = False
    for top in ast.body:
        if not isinstance(top, nodes.Output):
            tag = block_tags[0] if block_tags else None
            name = None
            if tag is not None and (m := _TAG_NAME_RE.match(tag.content)) is not None:
                name = m.group(1)
            what = f"'{{% {name} %}}'" if name else "'{% ... %}'"
            raise TemplateError(
                f"{what} statements are not allowed; use only text and placeholders "
                "such as {{ first_name }}",
                line=tag.line if tag else top.lineno,
                column=tag.column if tag else None,
            )
        for child in top.nodes:
            if isinstance(child, nodes.TemplateData):
                has_content = has_content or bool(child.data.strip())
                continue
            tag = variable_tags[seen_variables] if seen_variables < len(variable_tags) else None
            seen_variables += 1
            if tag is not None and not tag.line <= child.lineno <= tag.end_line:
                tag = None  # the scan disagrees with Jinja2: give the line only
            line, column = (tag.line, tag.column) if tag else (child.lineno, None)
            if not isinstance(child, nodes.Name):
                raise TemplateError(_expression_problem(child), line=line, column=column)
            if child.name not in allowed:
                raise TemplateError(f"unknown placeholder '{child.name}'", line=line, column=column)
            has_content = True
    # Belt and braces: the walk above must have seen every variable Jinja2 would look up.
    unknown = meta.find_undeclared_variables(ast) - set(allowed)
    if unknown:
        raise TemplateError(f"unknown placeholder '{sorted(unknown)[0]}'")
    if not has_content:
        raise TemplateError("the message is empty")
    return ast


def validate_template(body: str, allowed: Collection[str] | None = None) -> None:
    """Raise :class:`TemplateError` unless ``body`` is a template coordinators may save.

    ``allowed`` is the set of placeholder names the template may use (default: every name in
    :data:`ALLOWED_PLACEHOLDERS`; see :func:`allowed_placeholders_for` for the per-key sets).
    Refused: syntax errors (with the line), unknown placeholders (with line and column), any
    attribute/item access, filter, call, literal or expression inside ``{{ }}``, any
    ``{% ... %}`` statement, an empty body and a body longer than :data:`MAX_BODY_CHARS`.
    """
    _check(body, ALLOWED_PLACEHOLDERS if allowed is None else allowed)


def render_template(
    body: str, context: Mapping[str, str], allowed: Collection[str] | None = None
) -> str:
    """Validate ``body``, fill in its placeholders from ``context`` and strip surrounding space.

    Raises :class:`TemplateError` when the template is not valid, when a placeholder it uses has
    no value in ``context``, or when the rendered message is empty or longer than
    :data:`MAX_BODY_CHARS`. Keys in ``context`` that the template does not use are ignored.
    """
    return _cached_template(body, None if allowed is None else frozenset(allowed))(context)


@functools.lru_cache(maxsize=512)
def _cached_template(
    body: str, allowed: frozenset[str] | None
) -> Callable[[Mapping[str, str]], str]:
    # Replies are rendered one per request from a handful of bodies; compiling Jinja each time
    # cost more than the rest of the reply. Keyed by the body itself, so an edit is a new entry.
    return compile_template(body, allowed)


def compile_template(
    body: str, allowed: Collection[str] | None = None
) -> Callable[[Mapping[str, str]], str]:
    """Validate and compile ``body`` once; the returned function renders it like
    :func:`render_template` (same checks, same errors). The scheduler renders one template for
    thousands of people in a tick: parsing and compiling it each time would dominate the tick."""
    ast = _check(body, ALLOWED_PLACEHOLDERS if allowed is None else allowed)
    used = meta.find_undeclared_variables(ast)
    compiled = _ENV.from_string(body)

    def render(context: Mapping[str, str]) -> str:
        missing = sorted(used - set(context))
        if missing:
            raise TemplateError(f"no value for placeholder '{missing[0]}'")
        values = {name: str(context[name]) for name in used}
        try:
            text = compiled.render(values).strip()
        except jinja2.TemplateError as exc:  # pragma: no cover - the checks above prevent this
            raise TemplateError(f"the message could not be filled in: {exc}") from None
        if not text:
            raise TemplateError("the message is empty once its placeholders are filled in")
        if len(text) > MAX_BODY_CHARS:
            raise TemplateError(
                f"with its placeholders filled in, the message is {len(text)} characters long; "
                f"the limit is {MAX_BODY_CHARS}"
            )
        return text

    return render


_SAMPLES: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "en": MappingProxyType(
            {
                "first_name": "Maria",
                "coach_first_name": "Luis",
                "program_name": "Next Step",
                "program_phone": "(555) 010-0142",
                "appointment_date": "Tuesday, March 4",
                "appointment_time": "2:30 PM",
                "appointment_place": "120 Main St, Room 4",
                "resume_date": "Tuesday, March 11",
                "severity": "urgent",
                "participant_label": "Maria R.",
                "dashboard_url": "https://checkin.example.org/flags/42",
            }
        ),
        "es": MappingProxyType(
            {
                "first_name": "Maria",
                "coach_first_name": "Luis",
                "program_name": "Next Step",
                "program_phone": "(555) 010-0142",
                "appointment_date": "martes 4 de marzo",
                "appointment_time": "2:30 p. m.",
                "appointment_place": "120 Main St, Room 4",
                "resume_date": "martes 11 de marzo",
                "severity": "urgent",
                "participant_label": "Maria R.",
                "dashboard_url": "https://checkin.example.org/flags/42",
            }
        ),
    }
)


def sample_context(language: str) -> dict[str, str]:
    """A made-up participant for the editor's live preview, formatted for ``language``.

    Holds a value for every participant, appointment and staff placeholder, so any template
    (including ``coach_page``) previews. Raises :class:`ValueError` for a language other than
    ``"en"`` or ``"es"``.
    """
    try:
        return dict(_SAMPLES[language])
    except KeyError:
        raise ValueError(f"no sample for language {language!r}; expected 'en' or 'es'") from None
