"""Workshop mode: walk-in participants join one controller with one pasted line.

An instructor starts a controller with a :class:`Workshop`. It makes a CurveZMQ key
pair on the spot and shows one join code, ``nbfl://HOST:PORT/KEY/TOKEN``: the
controller's address as an IP, its public key, and a join token. A participant pastes
``%fl_join CODE --name ALICE``; their client makes its own key pair, so every byte is
encrypted from the first one, and it knows the controller by the key in the code, so a
machine that only pretends to be the controller fails the handshake. The token travels
inside that encrypted channel, in the join message: holding it is what admits a
participant. Nobody has to provision or hand out kits.

The instructor can rotate the token (the old line stops working; participants already
in stay), remove a participant (their key and name are kept out, and the token is
rotated, since they saw the old line) and cap how many take part. Each newcomer is
assigned a share of the built-in datasets (:class:`~nbfl.protocol.joining.Share`) in the welcome, so thirty
participants train on thirty different parts of one partition with nothing typed.

The code uses base64url for the key and the token: IPython expands ``$name`` and
``{expr}`` in a magic's line, and z85 (ZeroMQ's key text) contains ``$``, ``{`` and ``}``.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import secrets
import socket
import threading
import time
import unicodedata
from pathlib import Path
from typing import Any

import zmq

from ..protocol.compress import check_codec
from ..protocol.joining import Share

DEFAULT_TTL = 12 * 3600.0  # a day's workshop; rotate() makes a new token when asked
# letters of other scripts that look like Latin ones, lower case (skeleton() folds case first)
LOOKALIKES = str.maketrans(
    "авекмнорстухіјѕԁһԛԝӏѵαβεηικνορτυχω",
    "abekmhopctyxijsdhqwlvabenikvoptuxw",
)


def skeleton(name: str) -> str:
    """What a name looks like on a projector: NFKC-normalised, case-folded, with Cyrillic and
    Greek look-alikes read as the Latin letters they resemble. Two names with one skeleton
    are one name to a workshop ("honest" and "hоnest" with a Cyrillic o)."""
    return unicodedata.normalize("NFKC", name).casefold().translate(LOOKALIKES)


class Workshop:
    """The controller's side of workshop mode: the token, who is kept out, who holds which share.

    ``capacity`` caps how many participants are connected at once and is the number of
    shares the built-in data is cut into (``partition`` with ``seed``). ``host`` is the
    address put in the join code; by default the machine's LAN address
    (:func:`lan_address`). ``compress`` is the codec of the workshop's runs unless a run
    chooses (:mod:`nbfl.protocol.compress`): ``int8`` by default, since thirty laptops share one
    access point and each moves the model both ways every round. Called from the
    controller's IO thread (ZAP, joins) and from the instructor's (rotate, remove), so one
    lock guards it.
    """

    def __init__(
        self,
        capacity: int = 30,
        partition: str = "dirichlet:0.5",
        seed: int = 0,
        token_ttl: float = DEFAULT_TTL,
        host: str | None = None,
        compress: str | None = "int8",
    ):
        if capacity < 1:
            raise ValueError(f"a workshop needs room for at least 1 participant, not {capacity}")
        self.capacity = capacity
        self.partition = partition
        self.seed = seed
        self.host = host or lan_address()
        self.compress = check_codec(compress)
        self.public_key, self.secret_key = zmq.curve_keypair()  # the controller's, made now: nothing to hand out
        self._lock = threading.Lock()
        self._token = ""
        self._expires = 0.0
        self._revoked: list[str] = []
        self._known: dict[str, str] = {}  # client key (z85) -> the name it joined as
        self._banned_keys: set[str] = set()
        self._banned_names: set[str] = set()
        self._shares: dict[str, int] = {}  # participant name -> share index, kept across rejoins
        self.rotate(token_ttl)

    @property
    def token(self) -> str:
        return self._token

    @property
    def expires(self) -> float:
        """When the current token stops admitting newcomers (``time.time()`` seconds)."""
        return self._expires

    def rotate(self, ttl: float = DEFAULT_TTL) -> str:
        """A new token valid for ``ttl`` seconds; the old one is refused from now on, but
        participants who joined with it stay (their keys are known)."""
        with self._lock:
            if self._token:
                self._revoked.append(self._token)
            self._token = secrets.token_urlsafe(12)
            self._expires = time.time() + ttl
            return self._token

    def admit_key(self, key: bytes) -> str | None:
        """ZAP: any client key except a removed participant's. The key becomes the
        connection's User-Id, so the join can tell who holds it."""
        text = key.decode()
        with self._lock:
            return None if text in self._banned_keys else text

    def knows(self, key: str | None) -> bool:
        """Whether a participant joined with this key before (its joins are not counted against newcomers)."""
        with self._lock:
            return key is not None and key in self._known

    def refusal(self, key: str | None, token: Any, name: str, live: list[str]) -> str | None:
        """Why a join is refused (a sentence for the participant), or None to admit it.

        ``live`` names the participants connected now; a key that joined before may come
        back without the current token (its connection dropped, the token was rotated).
        """
        with self._lock:
            if key is None:
                return "this connection was not authenticated"
            shape = skeleton(name)
            if key in self._banned_keys or shape in {skeleton(n) for n in self._banned_names}:
                return f"{name!r} was removed from this workshop by the instructor"
            # a name is kept for the key that first joined with it (the first in _known), all session
            owner = next(((k, n) for k, n in self._known.items() if skeleton(n) == shape), None)
            if owner is not None and owner[0] != key:
                if owner[1] == name:
                    return f"{name!r} joined from another computer earlier in this workshop: choose another name"
                return f"{name!r} looks like {owner[1]!r}, who joined earlier: choose a name of your own"
            returning = self._known.get(key) == name
            if not returning:
                problem = self._token_problem(token)
                if problem:
                    return problem
            if name not in live and len(live) >= self.capacity:
                return f"the workshop is full ({self.capacity} participants); ask the instructor"
        return None

    def _token_problem(self, token: Any) -> str | None:
        if not isinstance(token, str) or not token:
            return "no join token: paste the whole join line the instructor shows"
        if hmac.compare_digest(token.encode(), self._token.encode()):
            if time.time() >= self._expires:
                when = time.strftime("%H:%M UTC", time.gmtime(self._expires))
                return f"this join line expired at {when}; ask the instructor for a new one"
            return None
        if any(hmac.compare_digest(token.encode(), old.encode()) for old in self._revoked):
            return "this join line was replaced by a new one; ask the instructor for the current line"
        return "wrong join token: check the line you pasted, or ask the instructor for the current one"

    def joined(self, key: str | None, name: str) -> Share:
        """Remember ``key`` as ``name``'s and give ``name`` its share (the same one on a rejoin)."""
        with self._lock:
            if key is not None:
                self._known[key] = name
            if name not in self._shares:
                taken = set(self._shares.values())
                free = [i for i in range(self.capacity) if i not in taken]
                # more names than shares over the day (people left, others came): reuse the least used
                self._shares[name] = free[0] if free else len(self._shares) % self.capacity
            return Share(self._shares[name], self.capacity, self.partition, self.seed)

    def remove(self, name: str) -> None:
        """Keep ``name`` and every key it joined with out, and rotate the token they saw."""
        with self._lock:
            self._banned_names.add(name)
            self._banned_keys.update(k for k, n in self._known.items() if n == name)
        self.rotate(max(self._expires - time.time(), 0.0))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write what a restarted controller needs to be the same workshop (its key pair,
        the token, who joined with which key and share, who was removed) to ``path``,
        readable by this user only, by atomic replace."""
        with self._lock:
            state = {
                "public_key": self.public_key.decode(),
                "secret_key": self.secret_key.decode(),
                "token": self._token,
                "expires": self._expires,
                "revoked": self._revoked,
                "known": self._known,
                "banned_keys": sorted(self._banned_keys),
                "banned_names": sorted(self._banned_names),
                "shares": self._shares,
            }
        path = Path(path)
        staging = path.with_name(f".{path.name}.writing")
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(staging, path)

    def restore(self, path: str | os.PathLike[str]) -> None:
        """Take up a workshop :meth:`save` wrote: the same key (so the line participants
        joined with still reaches this controller), token, known keys, removals and shares."""
        try:
            state = json.loads(Path(path).read_text())
            public, secret = state["public_key"].encode(), state["secret_key"].encode()
            if zmq.curve_public(secret) != public:
                raise ValueError("its secret key does not belong to its public key")
            known, shares = dict(state["known"]), {str(k): int(v) for k, v in state["shares"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"cannot take up the workshop saved in {path}: {exc}") from None
        with self._lock:
            self.public_key, self.secret_key = public, secret
            self._token, self._expires = str(state["token"]), float(state["expires"])
            self._revoked = [str(t) for t in state.get("revoked", [])]
            self._known, self._shares = known, shares
            self._banned_keys = set(state.get("banned_keys", []))
            self._banned_names = set(state.get("banned_names", []))


def lan_address() -> str:
    """This machine's address on its local network, as others dial it: the interface
    of the default route (a UDP socket's connect sends nothing), else an address the
    host name resolves to, else loopback."""
    candidates = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: only the route is looked up
            candidates.append(probe.getsockname()[0])
        except OSError:
            pass
    try:
        candidates += [info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)]
    except OSError:
        pass
    for address in candidates:
        ip = ipaddress.ip_address(address)
        if not (ip.is_loopback or ip.is_unspecified or ip.is_link_local):
            return address
    return "127.0.0.1"
