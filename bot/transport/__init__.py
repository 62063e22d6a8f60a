"""Transports: one interface, a Twilio implementation and a simulated one."""

from .base import SendRequest, SendResult, Transport, TransportError

__all__ = ["SendRequest", "SendResult", "Transport", "TransportError"]
