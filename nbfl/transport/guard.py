"""What the controller's IO thread does about peers that misbehave: budgets, counts, quiet logs.

A workshop controller listens on a room's network, where anyone can connect, finish a
CurveZMQ handshake (a workshop admits any key; the join token is checked in the join
message) and send whatever they like. The IO thread must stay free for the honest
participants' heartbeats and results, so before it decodes anything it asks the
:class:`Guard`:

* each peer has budgets, token buckets of messages, bytes and (for participants) header
  bytes a second: a peer that has not joined (a *stranger*) gets a small one, a
  participant a large one, far above what heartbeats and results need (each task sent
  grants a few messages more); what exceeds a budget is dropped unread and the peer's
  connection closed, and a participant is dropped as lost;
* a stranger gets at most a few answers (then one every few seconds), so a peer that
  never reads cannot fill its queue and block a send; sends never block anyway
  (:class:`~nbfl.transport.threads.ServerIO`);
* joins are limited per peer, per address and, for newcomers, in total, so a flood from
  one place does not lock out everyone else, and a key that joined before is not
  counted against newcomers;
* strangers are tracked in a bounded table (the oldest forgotten first), and the
  offending addresses in a bounded counter, so a flood of new peers cannot grow memory;
* log lines about the same kind of event are written at most once per
  :data:`QUIET_SECONDS`, with a count of those left out, and the counters
  (:meth:`Guard.report`) reach the instructor through ``%fl_controller status``, the
  dashboard and the Federation panel.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

from .limits import RateLimit

log = logging.getLogger(__name__)

TASK_MESSAGES = 4  # messages a participant may send for each task it is sent, beyond its steady budget
QUIET_SECONDS = 10.0  # one log line per kind of event per this many seconds
TOP_ADDRESSES = 5  # offending addresses the report names
TRACKED_ADDRESSES = 256  # addresses counted at once; the least offending are forgotten first

Bucket = tuple[float, int]  # (per second, burst)


@dataclass(frozen=True)
class GuardSettings:
    """Budgets an instructor may tune (``nbfl.Controller(guard=GuardSettings(...))``).

    Each budget is ``(per second, burst)``. The defaults sit far above what an honest
    client sends (a heartbeat a second, a few messages a round) and far below a flood.
    ``max_frame`` (bytes) is the largest frame the socket accepts, checked by ZeroMQ
    before it allocates: by default twice the model's largest tensor and at least
    :data:`MIN_FRAME`, so a frame declared as gigabytes is refused at once, before and
    after the handshake.
    """

    messages: Bucket = (200.0, 400)  # a participant's messages
    bytes: Bucket | None = None  # a participant's bytes; None: derived from the model (:meth:`for_model`)
    headers: Bucket = (
        1 << 20,
        4 << 20,
    )  # a participant's header bytes: JSON costs the IO thread to parse, tensors do not
    stranger_messages: Bucket = (5.0, 20)  # a peer that has not joined
    stranger_bytes: Bucket = (256 * 1024, 1 << 20)
    answers: Bucket = (0.5, 3)  # what a stranger is answered
    joins_per_peer: Bucket = (0.5, 3)
    joins_per_address: Bucket = (2.0, 32)  # a burst of 32: a room's spawned clients or one NAT
    joins: Bucket = (20.0, 100)  # newcomers from everywhere together
    max_strangers: int = 4096  # peers that have not joined, tracked at once
    max_frame: int | None = None
    max_metrics: int = 32  # metrics kept per result
    handshake_seconds: float = 5.0  # a connection that has not finished its CurveZMQ handshake by then is closed
    pending_connections: int = 128  # connections that have not joined, at most (a quarter of the fd limit if lower)
    pending_per_address: int = 32  # ... from one address
    join_seconds: float = 10.0  # a connection that has not joined by then is closed

    def for_model(self, largest_tensor: int, total: int) -> "GuardSettings":
        """These settings with what was left to the model filled in: ``largest_tensor`` and
        ``total`` are the model's bytes (its largest tensor, all of it)."""
        max_frame = self.max_frame or max(MIN_FRAME, 2 * largest_tensor)
        rate = max(MIN_BYTE_RATE, 16 * total)
        budget = self.bytes or (float(rate), int(max(4 * (total + max_frame), rate)))
        return GuardSettings(**{**vars(self), "max_frame": max_frame, "bytes": budget})


MIN_FRAME = 16 << 20  # 16 MiB: headers (1 MiB at most), ciphertexts (about 350 kB each), small models
MIN_BYTE_RATE = 256 << 20  # a participant may send 256 MiB a second, or 16 models, whichever is more


@dataclass
class Peer:
    """What the guard keeps of one peer."""

    address: str
    messages: RateLimit
    bytes: RateLimit
    headers: RateLimit | None  # a stranger's headers count in its (small) bytes
    answers: RateLimit
    joins: RateLimit
    joined: bool = False
    banned: bool = False
    user_id: str | None = None  # the name our ZAP answer gave its CurveZMQ key (a workshop: the key itself)
    fd: int | None = None  # the descriptor of the connection it joined on (nbfl.transport.connections)


@dataclass
class _Quiet:
    last: float = 0.0
    left_out: int = 0


@dataclass
class Report:
    """What the instructor is shown: counts since the controller started, and who."""

    refused_messages: int = 0  # dropped over a budget, malformed, or from a peer that may not send them
    refused_joins: int = 0
    dropped_peers: int = 0  # participants dropped because they did not read, or were removed
    closed_connections: int = 0  # connections closed before they joined (too many, or too slow)
    ended_unjoined: int = 0  # connections that ended before joining: ZeroMQ hung up, or the peer gave up
    addresses: Counter = field(default_factory=Counter)  # address -> refusals

    def as_dict(self) -> dict[str, Any]:
        return {
            "refused_messages": self.refused_messages,
            "refused_joins": self.refused_joins,
            "dropped_peers": self.dropped_peers,
            "closed_connections": self.closed_connections,
            "ended_unjoined": self.ended_unjoined,
            "top": self.addresses.most_common(TOP_ADDRESSES),
        }


def summary(report: dict[str, Any]) -> str:
    """One line for the instructor from :meth:`Guard.report`, or "" when nothing was refused."""
    messages, joins, dropped = report["refused_messages"], report["refused_joins"], report["dropped_peers"]
    closed, ended = report["closed_connections"], report["ended_unjoined"]
    if not (messages or joins or dropped or closed or ended):
        return ""
    line = f"refused {messages:,} messages and {joins:,} joins"
    if closed:
        line += f"; closed {closed:,} connections that did not join"
    if ended:
        line += f"; {ended:,} connections ended before joining"
    if dropped:
        line += f"; dropped {dropped} participant{'s' if dropped != 1 else ''}"
    top = ", ".join(f"{address} ({count:,})" for address, count in report["top"][:3])
    return line + (f"; most from {top}" if top else "")


class Guard:
    """Per-peer budgets and the counters behind :meth:`report`. IO thread only, except
    :meth:`report` (any thread)."""

    def __init__(self, settings: GuardSettings, clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self._clock = clock
        self._joined: dict[bytes, Peer] = {}
        self._strangers: OrderedDict[bytes, Peer] = OrderedDict()
        self._addresses: dict[str, RateLimit] = {}  # joins per address, for addresses seen lately
        self._newcomers = RateLimit(*settings.joins, clock=clock)
        self._report = Report()
        self._lock = threading.Lock()  # for the report, read by other threads
        self._quiet: dict[str, _Quiet] = {}

    # -- peers ----------------------------------------------------------------------
    def peer(self, peer: bytes, address: Callable[[], str]) -> Peer:
        """The peer's entry; a stranger's is made (and the oldest stranger's forgotten) if new.
        ``address()`` is asked only for a new peer."""
        known = self._joined.get(peer) or self._strangers.get(peer)
        if known is not None:
            return known
        return self._stranger(peer, address())

    def _stranger(self, peer: bytes, address: str) -> Peer:
        s, clock = self.settings, self._clock
        entry = self._strangers[peer] = Peer(
            address,
            RateLimit(*s.stranger_messages, clock=clock),
            RateLimit(*s.stranger_bytes, clock=clock),
            None,
            RateLimit(*s.answers, clock=clock),
            RateLimit(*s.joins_per_peer, clock=clock),
        )
        while len(self._strangers) > s.max_strangers:
            self._strangers.popitem(last=False)
        return entry

    def joined(self, peer: bytes) -> None:
        """``peer`` joined: it gets a participant's budgets."""
        entry = self._strangers.pop(peer, None)
        if entry is None or entry.banned:
            return
        assert self.settings.bytes is not None, "GuardSettings.for_model() fills in a participant's byte budget"
        entry.joined = True
        entry.messages = RateLimit(*self.settings.messages, clock=self._clock)
        entry.bytes = RateLimit(*self.settings.bytes, clock=self._clock)
        entry.headers = RateLimit(*self.settings.headers, clock=self._clock)
        self._joined[peer] = entry

    def left(self, peer: bytes) -> None:
        """``peer`` left, was lost or dropped: a stranger again, with a stranger's budgets, should it send more."""
        entry = self._joined.get(peer)
        if entry is not None and not entry.banned:
            del self._joined[peer]
            self._stranger(peer, entry.address)

    def ban(self, peer: bytes) -> None:
        """Nothing more from ``peer`` is read (a removed participant's connection)."""
        entry = self._joined.pop(peer, None) or self._strangers.pop(peer, None)
        if entry is not None:
            entry.banned = True
            self._joined[peer] = entry  # kept with the participants: bounded by the room, not by strangers
            self.dropped(entry.address)

    def expect(self, address: str, joins: int) -> None:
        """``joins`` more joins from ``address`` are expected (the controller's own user
        started that many clients there): they pass the per-address and newcomers' limits."""
        self._joins_from(address).grant(joins)
        self._newcomers.grant(joins)

    def _joins_from(self, address: str) -> RateLimit:
        """The join bucket of ``address``, made if new (the oldest address's, long full again, forgotten)."""
        bucket = self._addresses.get(address)
        if bucket is None:
            bucket = self._addresses[address] = RateLimit(*self.settings.joins_per_address, clock=self._clock)
            if len(self._addresses) > TRACKED_ADDRESSES:
                del self._addresses[next(iter(self._addresses))]
        return bucket

    # -- decisions ----------------------------------------------------------------------
    def tasked(self, peer: bytes) -> None:
        """``peer`` was sent a task: its answers (a ready, a result, an abort's reply) do not count
        against its steady budget, so rounds as fast as loopback allows stay within it."""
        entry = self._joined.get(peer)
        if entry is not None:
            entry.messages.grant(TASK_MESSAGES)

    def allow(self, entry: Peer, size: int, header: int) -> bool:
        """Whether a message of ``size`` bytes (``header`` of them its header) from this peer
        is read; counted if not. A peer over its budget is no honest client: the caller
        closes its connection, and drops a participant as lost."""
        if entry.banned:
            return self._refuse(entry.address, "banned", "a removed participant's connection sent a message: dropped")
        headers_ok = entry.headers is None or entry.headers.take(header)
        if not entry.messages.allow() or not entry.bytes.take(size) or not headers_ok:
            if entry.joined:
                return self._refuse(
                    entry.address,
                    "budget-joined",
                    "a participant at %s sent more than its budget: dropped as lost and its connection closed",
                    entry.address,
                )
            return self._refuse(
                entry.address,
                "budget",
                "a peer at %s that has not joined sent more than its "
                "budget: messages dropped unread and its connection closed",
                entry.address,
            )
        return True

    def take_bytes(self, entry: Peer, size: int) -> bool:
        """Whether ``size`` bytes fit this peer's byte budget (a host's connection, for its clients
        that have not joined); counted if not."""
        if entry.bytes.take(size):
            return True
        return self._refuse(entry.address, "budget-hosted", "a host at %s sent more than its budget", entry.address)

    def answer(self, entry: Peer) -> bool:
        """Whether a stranger may be answered now (participants always are)."""
        return entry.joined or entry.answers.allow()

    def join_refusal(self, entry: Peer, known: bool) -> str | None:
        """Why a join is refused for load, or None. ``known``: a key that joined before,
        which is not counted against newcomers (only against its own peer's budget)."""
        if not entry.joins.allow():
            return "too many joins from this connection"
        if known:
            return None
        if not self._joins_from(entry.address).allow():
            return "too many joins from this address"
        if not self._newcomers.allow():
            return "too many joins at once"
        return None

    # -- counting and saying ----------------------------------------------------------
    def refused_message(self, address: str, key: str, text: str, *args: Any) -> None:
        self._refuse(address, key, text, *args)

    def refused_join(self, address: str, text: str, *args: Any) -> None:
        with self._lock:
            self._report.refused_joins += 1
            self._blame(address)
        self.warn("join", text, *args)

    def dropped(self, address: str) -> None:
        with self._lock:
            self._report.dropped_peers += 1
            self._blame(address)

    def closed_connection(self, address: str, why: str) -> None:
        with self._lock:
            self._report.closed_connections += 1
            self._blame(address)
        self.warn(f"closed-{why}", "closed a connection from %s: %s", address, why)

    def ended_unjoined(self, address: str) -> None:
        """A connection ended before it joined, not closed by nbfl: ZeroMQ refused a frame over
        the limit or a handshake, or the peer left (a wrong token, say). Counted, not logged."""
        with self._lock:
            self._report.ended_unjoined += 1
            self._blame(address)

    def report(self) -> dict[str, Any]:
        """Counts since the controller started and the most offending addresses (JSON values)."""
        with self._lock:
            return self._report.as_dict()

    def warn(self, key: str, text: str, *args: Any) -> None:
        """Log a warning at most once per :data:`QUIET_SECONDS` for each ``key``, saying how many were left out."""
        quiet = self._quiet.setdefault(key, _Quiet())
        now = self._clock()
        if quiet.last and now - quiet.last < QUIET_SECONDS:
            quiet.left_out += 1
            return
        more = f" ({quiet.left_out} more like it in the last {now - quiet.last:.0f} s)" if quiet.left_out else ""
        quiet.last, quiet.left_out = now, 0
        log.warning(text + more, *args)

    def _refuse(self, address: str, key: str, text: str, *args: Any) -> bool:
        with self._lock:
            self._report.refused_messages += 1
            self._blame(address)
        self.warn(key, text, *args)
        return False

    def _blame(self, address: str) -> None:
        counts = self._report.addresses
        counts[address] += 1
        if len(counts) > TRACKED_ADDRESSES:
            del counts[min(counts, key=counts.__getitem__)]
