"""self-service templates: the replies to CALL ME, NEXT, PAUSE and RESUME, and a HELP reply that
lists them, for installs seeded before they existed

Only rows that are missing are added (as version 1, note "default"), and only on an install
whose templates were seeded already: a fresh database gets every default from the seeding that
follows `upgrade head` (`checkin init-db`). The HELP reply is replaced only where it is still
the shipped text, word for word, as a new version (note "default updated"): a coordinator's
own wording is never touched.

Revision ID: 0013_self_service_templates
Revises: 0010_partial_indexes
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0013_self_service_templates"
down_revision: str | Sequence[str] | None = "0010_partial_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The bodies as shipped with this revision (frozen here: later edits to the defaults file
# must not change what this migration did).
NEXT_EN = (
    "{{ first_name }}, your next appointment is {{ appointment_date }} at "
    "{{ appointment_time }}, {{ appointment_place }}."
)
NEXT_ES = (
    "{{ first_name }}, tu siguiente cita es el {{ appointment_date }} a las "
    "{{ appointment_time }} en {{ appointment_place }}."
)
NEW_TEMPLATES: dict[str, dict[str, str]] = {
    "callback_ack": {
        "en": "Thanks, {{ first_name }}. {{ coach_first_name }} will call you.",
        "es": "Gracias, {{ first_name }}. {{ coach_first_name }} te va a llamar.",
    },
    "next_appointment.court": {"en": NEXT_EN, "es": NEXT_ES},
    "next_appointment.supervision": {"en": NEXT_EN, "es": NEXT_ES},
    "next_appointment.treatment": {"en": NEXT_EN, "es": NEXT_ES},
    "next_appointment.benefits": {"en": NEXT_EN, "es": NEXT_ES},
    "next_appointment.medical": {"en": NEXT_EN, "es": NEXT_ES},
    "next_appointment.housing": {"en": NEXT_EN, "es": NEXT_ES},
    "next_appointment.other": {"en": NEXT_EN, "es": NEXT_ES},
    "no_appointment": {
        "en": "{{ first_name }}, I don't have an upcoming appointment for you. If you have one, text me the details. - {{ coach_first_name }}",
        "es": "{{ first_name }}, no tengo ninguna cita pendiente para ti. Si tienes una, cuéntame los detalles. - {{ coach_first_name }}",
    },
    "pause_confirm": {
        "en": "Got it, {{ first_name }}. Check-ins are paused for a week and start again on {{ resume_date }}. Appointment reminders still come. Reply RESUME to restart sooner.",
        "es": "Listo, {{ first_name }}. Pausamos el seguimiento una semana; vuelve el {{ resume_date }}. Los recordatorios de citas siguen. Responde SEGUIR para volver antes.",
    },
    "resume_confirm": {
        "en": "Welcome back, {{ first_name }}! Check-ins are on again. - {{ coach_first_name }}",
        "es": "¡Qué bueno, {{ first_name }}! Volvemos con los mensajes de seguimiento. - {{ coach_first_name }}",
    },
}
OLD_HELP = {
    "en": "{{ program_name }}: for help, call or text {{ program_phone }}. Reply STOP to stop texts. Need to talk to someone now? 988 answers calls and texts at any hour.",
    "es": "{{ program_name }}: para ayuda, llama o escribe al {{ program_phone }}. Responde ALTO para dejar de recibir mensajes. Si necesitas hablar con alguien ya, el 988 atiende llamadas y mensajes a cualquier hora (escribe AYUDA al 988).",
}
NEW_HELP = {
    "en": "{{ program_name }}: for help, call or text {{ program_phone }}. Reply CALL ME for a call, NEXT for your next appointment, PAUSE to pause check-ins for a week, RESUME to restart them, STOP to stop texts. Need to talk to someone now? 988 answers calls and texts at any hour.",
    "es": "{{ program_name }}: para ayuda, llama o escribe al {{ program_phone }}. Responde LLAMAME y te llamamos, PROXIMA para tu siguiente cita, PAUSA para pausar una semana, SEGUIR para volver o ALTO para no recibir mensajes. ¿Necesitas hablar ya? El 988 atiende llamadas y mensajes a toda hora (escribe AYUDA al 988).",
}

templates = sa.table(
    "templates",
    sa.column("id", sa.Integer),
    sa.column("key", sa.String),
    sa.column("language", sa.String),
    sa.column("body", sa.Text),
    sa.column("version", sa.Integer),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)
versions = sa.table(
    "template_versions",
    sa.column("template_id", sa.Integer),
    sa.column("version", sa.Integer),
    sa.column("body", sa.Text),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("note", sa.String),
)


def _now() -> datetime:
    now = datetime.now(UTC)
    # SQLite keeps instants as naive UTC (bot.models.base.UTCDateTime).
    return now.replace(tzinfo=None) if op.get_bind().dialect.name == "sqlite" else now


def _add_version(template_id: int, version: int, body: str, note: str, now: datetime) -> None:
    op.get_bind().execute(
        versions.insert().values(
            template_id=template_id, version=version, body=body, created_at=now, note=note
        )
    )


def upgrade() -> None:
    bind = op.get_bind()
    stored = {
        (row.key, row.language): row
        for row in bind.execute(
            sa.select(
                templates.c.id,
                templates.c.key,
                templates.c.language,
                templates.c.body,
                templates.c.version,
            )
        )
    }
    if not stored:
        return  # a fresh database: `checkin init-db` seeds every default after the upgrade
    now = _now()
    for key, bodies in NEW_TEMPLATES.items():
        for language, body in bodies.items():
            if (key, language) in stored:
                continue
            template_id = bind.execute(
                templates.insert()
                .values(key=key, language=language, body=body, version=1, updated_at=now)
                .returning(templates.c.id)
            ).scalar_one()
            _add_version(template_id, 1, body, "default", now)
    for language, body in NEW_HELP.items():
        row = stored.get(("help", language))
        if row is None or row.body != OLD_HELP[language]:
            continue
        latest = bind.execute(
            sa.select(sa.func.max(versions.c.version)).where(versions.c.template_id == row.id)
        ).scalar()
        number = max(latest or 0, row.version) + 1
        bind.execute(
            templates.update()
            .where(templates.c.id == row.id)
            .values(body=body, version=number, updated_at=now)
        )
        _add_version(row.id, number, body, "default updated", now)


def downgrade() -> None:
    bind = op.get_bind()
    now = _now()
    for language, body in OLD_HELP.items():
        row = bind.execute(
            sa.select(templates.c.id, templates.c.version).where(
                templates.c.key == "help",
                templates.c.language == language,
                templates.c.body == NEW_HELP[language],
            )
        ).first()
        if row is None:
            continue
        number = row.version + 1
        bind.execute(
            templates.update()
            .where(templates.c.id == row.id)
            .values(body=body, version=number, updated_at=now)
        )
        _add_version(row.id, number, body, "default restored", now)
    # The replies' rows go with the code that sends them (their versions by ON DELETE CASCADE;
    # SQLite does not enforce it without the pragma, so they are deleted first).
    ids = sa.select(templates.c.id).where(templates.c.key.in_(list(NEW_TEMPLATES)))
    bind.execute(versions.delete().where(versions.c.template_id.in_(ids)))
    bind.execute(templates.delete().where(templates.c.key.in_(list(NEW_TEMPLATES))))
