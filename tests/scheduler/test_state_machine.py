"""A hypothesis state machine: plan, ticks at random times, STOP/START (texted in, through the
webhook's path: the real opt-out and opt-in), appointment moves and status callbacks. Whatever
the order: nothing after STOP, nothing in quiet hours, nothing twice."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from sqlalchemy import select, update

from bot.config import Config
from bot.db import make_engine, make_session_factory, upgrade_to_head
from bot.models import OutboundMessage, Participant, PlannedContact
from bot.services.inbound import InboundForm, receive
from bot.transport.base import SendRequest, SendResult
from scheduler.tick import tick
from tests.factories import make_appointment, make_participant

ZONES = ["America/New_York", "America/Phoenix", "Pacific/Honolulu"]
START = datetime(2026, 3, 6, 12, 0, tzinfo=UTC)  # brackets the US spring-forward (2026-03-08)
_template: Path | None = None


def _database() -> str:
    global _template
    if _template is None:
        _template = Path(tempfile.mkdtemp()) / "template.sqlite3"
        upgrade_to_head(f"sqlite:///{_template}")
    path = Path(tempfile.mkdtemp()) / "machine.sqlite3"
    shutil.copy(_template, path)
    return f"sqlite:///{path}"


@dataclass
class Recorder:
    name: str = "recorder"
    now: datetime = START
    sent: list[tuple[str, str, datetime]] = field(default_factory=list)

    def send(self, request: SendRequest) -> SendResult:
        self.sent.append((request.idempotency_key, request.to, self.now))
        return SendResult(provider_sid=f"SM{len(self.sent):032d}", status="queued")


class OutboundMachine(RuleBasedStateMachine):
    @initialize(zones=st.lists(st.sampled_from(ZONES), min_size=2, max_size=3))
    def setup(self, zones: list[str]) -> None:
        self.url = _database()
        self.engine = make_engine(self.url)
        self.sessions = make_session_factory(self.engine)
        self.config = Config(
            database_url=self.url, public_base_url="https://x.example.org", testing=True
        )
        self.transport = Recorder()
        self.now = START
        # address -> list of (sends before the STOP, sends before the START or None): ordered by
        # events, not by clock, so a STOP at the same instant as a tick is judged correctly.
        self.stops: dict[str, list[tuple[int, int | None]]] = {}
        self.zone_of: dict[str, str] = {}
        self.texts = 0
        with self.sessions.begin() as session:
            self.ids = []
            for i, zone in enumerate(zones):
                p = make_participant(
                    session,
                    START,
                    timezone=zone,
                    release_date=date(2026, 3, 5),
                    phone=f"+1312555{7000 + i:04d}",
                    enrolled_at=START,
                )
                self.ids.append(p.id)
                self.zone_of[p.phone] = zone

    def teardown(self) -> None:
        if hasattr(self, "engine"):
            self.engine.dispose()

    @rule(hours=st.integers(0, 40), minutes=st.integers(0, 59))
    def run_tick(self, hours: int, minutes: int) -> None:
        self.now += timedelta(hours=hours, minutes=minutes)
        self.transport.now = self.now
        tick(self.sessions, self.transport, self.config, self.now, rate_limited=False)

    def _text(self, pid: int, body: str) -> str:
        """The person texts `body` through the webhook's path (the real opt-out and opt-in,
        bot.services.consent); returns their status afterwards."""
        with self.sessions() as session:
            person = session.get_one(Participant, pid)
            phone = person.phone
        self.texts += 1
        outcome = receive(
            self.sessions,
            InboundForm(
                message_sid=f"SM{self.texts:032d}",
                from_address=phone,
                to_address="+13125550000",
                body=body,
                num_media=0,
            ),
            now=self.now,
            config=self.config,
        )
        assert not outcome.failed
        with self.sessions() as session:
            return session.get_one(Participant, pid).status

    def _status(self, pid: int) -> tuple[str, str]:
        with self.sessions() as session:
            person = session.get_one(Participant, pid)
            return person.status, person.phone

    @rule(index=st.integers(0, 2), wording=st.sampled_from(["STOP", "stop", "Stop texting me"]))
    def stop(self, index: int, wording: str) -> None:
        pid = self.ids[index % len(self.ids)]
        before, phone = self._status(pid)
        sent_before = len(self.transport.sent)
        assert self._text(pid, wording) == "opted_out"
        if before != "opted_out":
            self.stops.setdefault(phone, []).append((sent_before, None))

    @rule(index=st.integers(0, 2), later=st.integers(0, 600))
    def start(self, index: int, later: int) -> None:
        self.now += timedelta(minutes=later)
        pid = self.ids[index % len(self.ids)]
        before, phone = self._status(pid)
        after = self._text(pid, "START")
        if before != "opted_out":
            assert after == before  # START changes nothing for someone not opted out
            return
        assert after == "active"
        since, _ = self.stops[phone][-1]
        self.stops[phone][-1] = (since, len(self.transport.sent))

    @rule(index=st.integers(0, 2), days=st.integers(1, 12), hour=st.integers(0, 23))
    def move_appointment(self, index: int, days: int, hour: int) -> None:
        starts = (self.now + timedelta(days=days)).replace(hour=hour, minute=0)
        with self.sessions.begin() as session:
            pid = self.ids[index % len(self.ids)]
            from bot.models import Appointment

            appt = session.scalars(
                select(Appointment).where(Appointment.participant_id == pid)
            ).first()
            if appt is None:
                make_appointment(session, session.get(Participant, pid), starts, self.now)  # type: ignore[arg-type]
            else:
                appt.starts_at = starts
                appt.version += 1

    @rule()
    def status_callback(self) -> None:
        with self.sessions.begin() as session:
            session.execute(
                update(OutboundMessage)
                .where(OutboundMessage.status == "queued")
                .values(status="delivered", status_updated_at=self.now)
            )

    @invariant()
    def never_twice(self) -> None:
        if not hasattr(self, "transport"):
            return
        keys = [key for key, _, _ in self.transport.sent]
        assert len(keys) == len(set(keys))
        with self.sessions() as session:
            done = session.execute(
                select(
                    PlannedContact.participant_id,
                    PlannedContact.rule,
                    PlannedContact.occurrence,
                    PlannedContact.version,
                    PlannedContact.kind,
                ).where(PlannedContact.state == "sent")
            ).all()
        seen = set()
        for pid, rule_, occurrence, version, kind in done:
            key = (pid, rule_, occurrence, version.split(".")[1] if kind == "reminder" else "")
            assert key not in seen, key
            seen.add(key)

    @invariant()
    def never_after_stop_never_in_quiet_hours(self) -> None:
        if not hasattr(self, "transport"):
            return
        for index, (_, to, at) in enumerate(self.transport.sent):
            for since, until in self.stops.get(to, []):
                assert not (since <= index and (until is None or index < until)), (to, at)
            local = at.astimezone(ZoneInfo(self.zone_of[to])).time()
            assert not (local.hour >= 21 or local.hour < 8), (to, at, local)


OutboundMachine.TestCase.settings = settings(
    max_examples=30,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_outbound_state_machine = OutboundMachine.TestCase
