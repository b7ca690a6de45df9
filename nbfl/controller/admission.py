"""Who may join, and what becomes of each peer's messages: the controller's admission.

Runs on the controller's IO thread (:class:`~nbfl.transport.threads.ServerIO` calls
:meth:`Admission.on_io_event`), so everything here is quick and never blocks: a join is
checked (a kit's listed key, a workshop's token and name rules, a removed name) and
answered with a welcome or a refusal, heartbeats and byes update the registry, and a
round's traffic is forwarded to the run that waits for it.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from ..protocol import compress, messages, wire
from ..protocol.names import ClientState, IoEvent, MessageKind
from ..protocol.records import ClientInfo
from ..transport.provision import Kit
from ..transport.threads import ServerIO
from .registry import Registry
from .workshop import Workshop

log = logging.getLogger(__name__)


class Admission:
    """The IO thread's half of a controller: joins, byes, heartbeats and forwarding."""

    def __init__(
        self, registry: Registry, kit: Kit | None, workshop: Workshop | None, forward: Callable[[tuple], bool]
    ):
        self.registry = registry
        self.kit = kit
        self.workshop = workshop
        self.forward = forward  # to the active run: False if none takes it
        self.io: ServerIO  # set by the controller once the IO thread that calls this exists
        self.compress: str | None = None  # the codec a welcome announces (the controller's default)
        self.removed: set[str] = set()  # names the user removed; they are not let back in
        self.failure: BaseException | None = None  # what ended the IO thread, if it died

    def on_io_event(self, kind: str, peer: bytes, payload: Any) -> None:
        if kind == IoEvent.HEARTBEAT:
            self.registry.heard_from(peer)
        elif kind == IoEvent.INVALID:
            pass  # counted and logged (at most every few seconds) by the IO thread's guard
        elif kind == IoEvent.LOST:
            self.registry.set_state(peer, ClientState.LOST)
            log.warning(
                "client %s lost: no heartbeat for %s s, or its connection dropped",
                self.registry.name_of(peer),
                self.io.heartbeat_timeout,
            )
            self.forward(("lost", peer, None))
        elif kind == IoEvent.DIED:  # nbfl's own bug ended the IO thread: whoever waits is told at once
            self.failure = payload
            self.forward(("died", peer, payload))
            self.registry.wake()
        else:
            self._on_message(peer, payload)

    def _on_message(self, peer: bytes, msg: wire.Message) -> None:
        if msg.kind == MessageKind.JOIN:
            self._on_join(peer, msg)
        elif not self.registry.heard_from(peer):
            if msg.kind == MessageKind.BYE:  # e.g. a removed client leaving: nothing to undo
                return
            address = self.io.address(peer)
            self.io.guard.refused_message(
                address, "unjoined", "%s from a peer at %s that has not joined: dropped", msg.kind, address
            )
            self.io.answer(peer, wire.message(MessageKind.ERROR, reason="not joined", rejoin=True))
        elif msg.kind == MessageKind.BYE:
            self.registry.set_state(peer, ClientState.LEFT)
            self.io.forget(peer)
            log.info("client %s left", self.registry.name_of(peer))
            self.forward(("bye", peer, msg))
        elif msg.kind == MessageKind.INFO:
            self._on_info(peer, msg)
        elif msg.kind == MessageKind.ABORTED:
            self.registry.update(peer, aborted_at=time.monotonic())
        elif msg.kind in (MessageKind.READY, MessageKind.RESULT, MessageKind.ERROR):
            if not self.forward((msg.kind, peer, msg)):
                log.warning("%s from %s while no round runs: dropped", msg.kind, self.registry.name_of(peer))
        else:
            log.warning("unexpected %r from client %s: dropped", msg.kind, self.registry.name_of(peer))
            self.io.send(peer, wire.message(MessageKind.ERROR, reason=f"a client may not send {msg.kind!r}"))

    def _on_join(self, peer: bytes, msg: wire.Message) -> None:
        key = self.io.authenticated_id(peer)
        known = self.kit is not None or (self.workshop is not None and self.workshop.knows(key))
        busy = self.io.join_refusal(peer, known)
        if busy is not None:  # the client tries again later by itself
            self._refuse_join(peer, f"{busy}; trying again in a moment", retry=True)
            return
        name = msg.get("name")
        if self.kit is not None:
            # the identity is the name the kit lists for the key that passed the handshake;
            # a name claimed in the message is only compared with it
            if key is None:
                self._refuse_join(peer, "this connection was not authenticated")
                return
            if name != key:
                log.warning("a client with the key of %r joined as %r; it is listed as %r", key, name, key)
            name = key
        if not isinstance(name, str) or not 0 < len(name) <= 64 or not name.isprintable():
            self._refuse_join(peer, "join needs a name of 1 to 64 printable characters")
            return
        refusal = self._refusal(peer, name, msg)
        if refusal is not None:
            self._refuse_join(peer, refusal, name)
            return
        info = ClientInfo(
            name=name,
            host=str(msg.get("host", "?"))[:128],
            device=str(msg.get("device", "cpu"))[:64],
            samples=_int(msg.get("samples")),
            peer=peer,
            accepts_code=msg.get("accepts_code") is True,
            labels=_counts(msg.get("labels")),
            codecs=[c for c in _list(msg.get("codecs")) if c in compress.CODECS],
            share=str(msg.get("share"))[:32] if isinstance(msg.get("share"), str) else "",  # as the client was given it
        )
        shares = self.workshop is not None and msg.get("wants_share") is True
        if shares:  # it builds its data from the share in the welcome; ready once it says so (info)
            info.state = ClientState.JOINING
        if not self.registry.add(info):
            # it may be this client's own old connection, not yet noticed gone: the client asks again later
            self._refuse_join(
                peer,
                f"the name {name!r} is taken by a connected client: choose another; if it was "
                "you before a restart, joining again in a moment",
                name,
                retry=True,
            )
            return
        welcome: messages.Welcome = {"name": name}
        if self.compress is not None:  # a client that cannot decode it says so now, not in a round
            welcome["compress"] = self.compress
        if self.workshop is not None:
            share = self.workshop.joined(self.io.authenticated_id(peer), name)
            if shares:  # it trains on a built-in dataset: which part is its own
                welcome["share"] = share.fields()
                self.registry.update(peer, share=str(share))
        self.io.admit(peer)
        self.io.send(peer, wire.message(MessageKind.WELCOME, **welcome))
        log.info("client %s joined from %s (%s)", name, info.host, info.device)

    def _refuse_join(self, peer: bytes, reason: str, name: str | None = None, *, retry: bool = False) -> None:
        """Answer a refused join with ``reason`` (within a stranger's few answers), count it, log it quietly."""
        fields: messages.Error = {"reason": reason, "retry": True} if retry else {"reason": reason}
        who = f" of {name!r}" if name is not None else ""
        self.io.refuse_join(
            peer,
            wire.message(MessageKind.ERROR, **fields),
            "join%s from %s refused: %s",
            who,
            self.io.address(peer),
            reason,
        )

    def _refusal(self, peer: bytes, name: str, msg: wire.Message) -> str | None:
        """Why a join is refused, for the client to show, or None."""
        if self.workshop is None:
            return f"{name!r} was removed by whoever runs the controller; ask them" if name in self.removed else None
        return self.workshop.refusal(self.io.authenticated_id(peer), msg.get("token"), name, self.registry.present())

    def _on_info(self, peer: bytes, msg: wire.Message) -> None:
        """What a client trains on, once it knows (after its share came in the welcome): from
        now on it is ready for tasks."""
        self.registry.update(
            peer,
            samples=_int(msg.get("samples")),
            device=str(msg.get("device", "cpu"))[:64],
            labels=_counts(msg.get("labels")),
        )
        self.registry.ready(peer)


def _counts(value: Any) -> list[int]:
    """Samples per class as a client reports them: at most 1000 classes of non-negative ints."""
    if not isinstance(value, list) or len(value) > 1000:
        return []
    return [_int(v) for v in value]


def _list(value: Any) -> list:
    """A JSON list from a client, or an empty one for anything else."""
    return value if isinstance(value, list) else []


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
