"""Typed SQLAlchemy models, one module per concept. Importing this has no side effects."""

from .appointments import Appointment
from .audit import AuditLog
from .base import Base, UTCDateTime
from .contacts import PlannedContact
from .flags import Expectation, Flag, FlagEvent
from .heartbeat import WorkerHeartbeat
from .imports import PendingImport
from .messages import EarlyStatusCallback, InboundMessage, OutboundMessage
from .participants import ConsentEvent, Participant, PhoneChange
from .ratelimit import SendRateSlot
from .settings import ProgramSetting
from .staff_sessions import PasswordReset, StaffSession
from .templates import Template, TemplateVersion, WhatsAppTemplate
from .users import User

__all__ = [
    "Appointment",
    "AuditLog",
    "Base",
    "ConsentEvent",
    "EarlyStatusCallback",
    "Expectation",
    "Flag",
    "FlagEvent",
    "InboundMessage",
    "OutboundMessage",
    "Participant",
    "PasswordReset",
    "PendingImport",
    "PhoneChange",
    "PlannedContact",
    "ProgramSetting",
    "SendRateSlot",
    "StaffSession",
    "Template",
    "TemplateVersion",
    "UTCDateTime",
    "User",
    "WhatsAppTemplate",
    "WorkerHeartbeat",
]
