"""The urgent lane (scheduler/urgent.py): pages, crisis replies and staff replies leave ahead of
a routine backlog, at the next rate slot, exactly once, never to an opted-out number."""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.models import OutboundMessage
from bot.services import unknown_numbers
from bot.services.inbound_store import store
from bot.services.outbox import enqueue
from bot.services.outbox.claims import SendCounts
from bot.transport.base import SendRequest, SendResult, Transport
from bot.transport.simulated import SimulatedTransport
from scheduler.rate import Priority, RateLimiter
from scheduler.send import send_due
from scheduler.urgent import UrgentLane, send_urgent
from tests.factories import make_participant, make_user
from tests.scheduler.fake_twilio import FakeTwilio
from tests.scheduler.helpers import max_in_window
from tests.services.test_inbound import form

NOW = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)  # 10:00 in New York
NIGHT = datetime(2026, 3, 4, 4, 0, tzinfo=UTC)  # 23:00 in New York: quiet hours
ACCOUNT = "AC" + "0" * 32


def _at(instant: datetime) -> Callable[[], datetime]:
    return lambda: instant


def _routine_backlog(sessions: sessionmaker[Session], count: int) -> list[str]:
    """`count` routine texts due now (late webhook replies, which are not urgent), each to its
    own person; returns their numbers."""
    phones = []
    with sessions.begin() as session:
        for i in range(count):
            participant = make_participant(session, NOW, phone=f"+1312555{6000 + i:04d}")
            enqueue(
                session,
                idempotency_key=f"routine:{i}",
                purpose="reply",
                channel="sms",
                to_address=participant.phone,
                body="routine",
                now=NOW,
                participant_id=participant.id,
                ignore_quiet_hours=True,
            )
            phones.append(participant.phone)
    return phones


def _page(sessions: sessionmaker[Session], key: str, now: datetime = NOW) -> str:
    """A page to a staff member, due now, as bot/services/paging.py enqueues an urgent one."""
    with sessions.begin() as session:
        user = make_user(session, now)
        enqueue(
            session,
            idempotency_key=f"page:{key}",
            purpose="page",
            channel="sms",
            to_address=user.phone or "",
            body="A flag needs you",
            now=now,
            user_id=user.id,
            ignore_quiet_hours=True,
        )
        return user.phone or ""


class Releases:
    """A transport that records the instant each request is handed over (the rate limiter's
    clock, read just before the call), then passes it on."""

    name = "releases"

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.at: list[float] = []
        self.lock = threading.Lock()

    def send(self, request: SendRequest) -> SendResult:
        with self.lock:
            self.at.append(time.time())
        return self.inner.send(request)


def test_a_page_queued_during_a_routine_backlog_reaches_twilio_before_the_backlog_ends(
    sessions: sessionmaker[Session], config: Config
) -> None:
    rate, backlog = 10, 50
    routine = _routine_backlog(sessions, backlog)
    with FakeTwilio() as twilio:
        from bot.transport.twilio import TwilioTransport

        twilio_config = dataclasses.replace(
            config,
            twilio_account_sid=ACCOUNT,
            twilio_auth_token="token",
            twilio_from_number="+15550100000",
            twilio_api_base=twilio.url,
            send_rate_per_second=rate,
        )
        # One transport per thread, as the worker does; both record their release instants
        # into one list, the combined stream.
        tick_transport = Releases(TwilioTransport.from_config(twilio_config))
        lane_transport = Releases(TwilioTransport.from_config(twilio_config))
        lane_transport.at, lane_transport.lock = tick_transport.at, tick_transport.lock
        priority = Priority()
        results: list[SendCounts] = []

        def tick_sends() -> None:
            with RateLimiter(sessions, rate, just_in_time=True, priority=priority) as limiter:
                results.append(
                    send_due(
                        sessions,
                        tick_transport,
                        twilio_config,
                        NOW,
                        worker_id="tick",
                        limiter=limiter,
                    )
                )

        lane = UrgentLane(
            sessions,
            lane_transport,
            twilio_config,
            worker_id="lane",
            priority=priority,
            poll_seconds=0.05,
            clock=_at(NOW),
        )
        lane.start()
        tick = threading.Thread(target=tick_sends)
        tick.start()
        try:
            while len(twilio.arrivals) < 5 and tick.is_alive():
                time.sleep(0.01)
            page_to = _page(sessions, "mid-backlog")
            tick.join(timeout=60)
        finally:
            lane.stop()
        addresses = twilio.to_addresses()

    assert not tick.is_alive()
    assert results[0].sent == backlog
    assert lane.counts.sent == 1
    # Exactly once each, and the page went while routine texts were still waiting.
    assert collections.Counter(addresses) == collections.Counter([*routine, page_to])
    assert addresses.index(page_to) < len(addresses) - 1
    assert set(addresses[addresses.index(page_to) + 1 :]) <= set(routine)
    # The combined stream kept the rate.
    assert len(tick_transport.at) == backlog + 1
    assert max_in_window(tick_transport.at) <= rate
    with sessions() as session:
        page = session.scalars(
            select(OutboundMessage).where(OutboundMessage.purpose == "page")
        ).one()
        assert (page.status, page.claimed_by) == ("queued", "lane")


def test_the_lane_sends_only_urgent_purposes(
    sessions: sessionmaker[Session], config: Config
) -> None:
    routine = _routine_backlog(sessions, 3)
    page_to = _page(sessions, "only")
    transport = SimulatedTransport()

    counts, looked = send_urgent(
        sessions, transport, config, worker_id="lane", limiter=None, clock=_at(NOW)
    )

    assert (counts.sent, looked) == (1, 1)
    assert [m.to for m in transport.sent] == [page_to]
    with sessions() as session:
        statuses = collections.Counter(
            session.execute(select(OutboundMessage.purpose, OutboundMessage.status)).all()
        )
    assert statuses == {("page", "queued"): 1, ("reply", "pending"): len(routine)}


def test_the_lane_never_texts_an_opted_out_number(
    sessions: sessionmaker[Session], config: Config
) -> None:
    with sessions.begin() as session:
        person = make_participant(session, NOW, status="opted_out")
        for purpose in ("crisis_reply", "coach_reply"):
            enqueue(
                session,
                idempotency_key=f"{purpose}:{person.id}",
                purpose=purpose,
                channel="sms",
                to_address=person.phone,
                body="x",
                now=NOW,
                participant_id=person.id,
                ignore_quiet_hours=True,
            )
    transport = SimulatedTransport()

    send_urgent(sessions, transport, config, worker_id="lane", limiter=None, clock=_at(NOW))

    assert transport.sent == []
    with sessions() as session:
        rows = session.execute(select(OutboundMessage.status, OutboundMessage.error_message))
        assert set(rows) == {("cancelled", "participant_opted_out")}


def test_a_staff_reply_sent_now_in_quiet_hours_goes_through_the_lane(
    sessions: sessionmaker[Session], config: Config
) -> None:
    with sessions.begin() as session:
        person = make_participant(session, NIGHT)
        # As the inbox's "send now" enqueues it: due now, quiet hours not applied.
        enqueue(
            session,
            idempotency_key="coach_reply:night",
            purpose="coach_reply",
            channel="sms",
            to_address=person.phone,
            body="I'm here, call me when you can",
            now=NIGHT,
            participant_id=person.id,
            ignore_quiet_hours=True,
        )
        # An automated check-in due at the same instant waits for the morning (the tick's).
        enqueue(
            session,
            idempotency_key="checkin:night",
            purpose="checkin",
            channel="sms",
            to_address=person.phone,
            body="How are you doing?",
            now=NIGHT,
            participant_id=person.id,
        )
    transport = SimulatedTransport()

    counts, _ = send_urgent(
        sessions, transport, config, worker_id="lane", limiter=None, clock=_at(NIGHT)
    )

    assert counts.sent == 1
    assert [m.body for m in transport.sent] == ["I'm here, call me when you can"]
    with sessions() as session:
        checkin = session.scalars(
            select(OutboundMessage).where(OutboundMessage.purpose == "checkin")
        ).one()
        assert checkin.status == "pending"


def test_a_staff_reply_to_an_unknown_number_goes_through_the_lane(
    sessions: sessionmaker[Session], config: Config
) -> None:
    stranger = "+13125550177"
    with sessions.begin() as session:
        coordinator = make_user(session, NIGHT, role="coordinator")
        stored = store(session, form(stranger, "got a text from this number"), now=NIGHT)
        assert stored is not None
        number, _ = unknown_numbers.from_message(session, stored.id)
        assert number is not None
        unknown_numbers.send_reply(
            session,
            number,
            body="Hi, this is Homecoming Peers. Who is this?",
            staff_user_id=coordinator.id,
            now=NIGHT,
        )
    _routine_backlog(sessions, 3)  # due too, but not the lane's
    transport = SimulatedTransport()

    counts, _ = send_urgent(
        sessions, transport, config, worker_id="lane", limiter=None, clock=_at(NIGHT)
    )

    assert counts.sent == 1
    assert [(m.to, m.body) for m in transport.sent] == [
        (stranger, "Hi, this is Homecoming Peers. Who is this?")
    ]


def test_two_lanes_and_a_tick_at_once_send_each_urgent_text_exactly_once(
    sessions: sessionmaker[Session], config: Config
) -> None:
    pages = [_page(sessions, f"race-{i}") for i in range(30)]
    routine = _routine_backlog(sessions, 10)
    transport = SimulatedTransport()
    priority = Priority()
    start = threading.Barrier(3)
    errors: list[BaseException] = []

    def run(body: Callable[[RateLimiter], object], limiter: RateLimiter) -> Callable[[], None]:
        def target() -> None:
            try:
                start.wait()
                with limiter:
                    body(limiter)
            except BaseException as exc:  # reported below
                errors.append(exc)

        return target

    def lane(name: str) -> Callable[[RateLimiter], object]:
        return lambda limiter: send_urgent(
            sessions,
            transport,
            config,
            worker_id=name,
            limiter=limiter,
            priority=priority,
            clock=_at(NOW),
            limit=4,
        )

    def tick(limiter: RateLimiter) -> object:
        return send_due(sessions, transport, config, NOW, worker_id="tick", limiter=limiter)

    threads = [
        threading.Thread(target=run(lane("lane-a"), RateLimiter(sessions, 1000))),
        threading.Thread(target=run(lane("lane-b"), RateLimiter(sessions, 1000))),
        threading.Thread(
            target=run(tick, RateLimiter(sessions, 1000, just_in_time=True, priority=priority))
        ),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    assert collections.Counter(m.to for m in transport.sent) == collections.Counter(
        [*pages, *routine]
    )
    with sessions() as session:
        rows = session.execute(select(OutboundMessage.status, OutboundMessage.claimed_by)).all()
    assert {status for status, _ in rows} == {"queued"}
    assert len(rows) == len(pages) + len(routine)


def test_a_lane_stopped_mid_pass_gives_back_what_it_never_sent(
    sessions: sessionmaker[Session], config: Config
) -> None:
    for i in range(3):
        _page(sessions, f"stop-{i}")
    stop = threading.Event()

    class StopAfterOne(SimulatedTransport):
        def send(self, request: SendRequest) -> SendResult:
            stop.set()
            return super().send(request)

    transport = StopAfterOne()
    send_urgent(
        sessions,
        transport,
        config,
        worker_id="lane",
        limiter=None,
        clock=_at(NOW),
        should_stop=stop.is_set,
    )

    assert len(transport.sent) == 1
    with sessions() as session:
        statuses = collections.Counter(session.scalars(select(OutboundMessage.status)))
    assert statuses == {"queued": 1, "pending": 2}  # never `sending`: nothing turns `unknown`


def test_a_page_not_due_yet_is_left_for_later(
    sessions: sessionmaker[Session], config: Config
) -> None:
    with sessions.begin() as session:
        user = make_user(session, NOW)
        enqueue(
            session,
            idempotency_key="page:morning",
            purpose="page",
            channel="sms",
            to_address=user.phone or "",
            body="A flag needs you",
            now=NOW,
            send_after=NOW + timedelta(hours=1),  # a normal-severity page held to the morning
            user_id=user.id,
        )
    transport = SimulatedTransport()

    _, looked = send_urgent(
        sessions, transport, config, worker_id="lane", limiter=None, clock=_at(NOW)
    )

    assert (looked, transport.sent) == (0, [])
