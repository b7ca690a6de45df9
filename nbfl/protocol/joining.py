"""Join codes and shares: what a workshop's controller and its participants both read.

A workshop's join code, ``nbfl://HOST:PORT/KEY/TOKEN``, carries the controller's address
as an IP, its public key (base64url, since IPython expands ``$`` and ``{}`` in a magic's
line and z85 contains them) and a join token. The controller makes it
(:class:`~nbfl.controller.workshop.Workshop`); a participant parses it. A :class:`Share`
travels in the welcome: which part of a built-in dataset's partition a newcomer trains on.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any, Mapping, TypeGuard

from zmq.utils import z85

SCHEME = "nbfl://"
CODE = re.compile(
    r"^nbfl://(?P<host>[^/:\s]+):(?P<port>\d{1,5})/(?P<key>[A-Za-z0-9_-]{43})/(?P<token>[A-Za-z0-9_-]{8,64})$"
)


@dataclass(frozen=True)
class JoinCode:
    """What a participant needs to join: the controller's address, its public key, a token."""

    host: str
    port: int
    server_key: bytes  # z85, as CurveZMQ takes it
    token: str

    @property
    def endpoint(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    def __str__(self) -> str:
        key = base64.urlsafe_b64encode(z85.decode(self.server_key)).decode().rstrip("=")
        return f"{SCHEME}{self.host}:{self.port}/{key}/{self.token}"

    @classmethod
    def parse(cls, text: str) -> "JoinCode":
        """Read a pasted code; ValueError says what is wrong with it."""
        match = CODE.match(text.strip())
        if match is None or not 0 < int(match["port"]) < 65536:
            raise ValueError(
                f"{text!r} is not a join code: expected nbfl://HOST:PORT/KEY/TOKEN; paste the whole line the instructor shows"
            )
        try:
            raw = base64.urlsafe_b64decode(match["key"] + "=")
        except (binascii.Error, ValueError):
            raise ValueError("the controller key in this join code is damaged; paste the line again") from None
        return cls(match["host"], int(match["port"]), z85.encode(raw), match["token"])


def is_join_code(text: str | None) -> TypeGuard[str]:
    return isinstance(text, str) and text.startswith(SCHEME)


@dataclass(frozen=True)
class Share:
    """Which part of a built-in dataset's partition a participant trains on."""

    index: int  # 0 .. of - 1
    of: int
    partition: str = "dirichlet:0.5"
    seed: int = 0

    def __str__(self) -> str:
        return f"{self.index + 1}/{self.of}"

    def fields(self) -> dict[str, Any]:
        return {"index": self.index, "of": self.of, "partition": self.partition, "seed": self.seed}

    @classmethod
    def from_fields(cls, value: Any) -> "Share | None":
        """The share a welcome carries, or None if there is none or it does not make sense."""
        if not isinstance(value, Mapping):
            return None
        index, of = value.get("index"), value.get("of")
        partition, seed = value.get("partition"), value.get("seed")
        if (
            not (isinstance(index, int) and isinstance(of, int) and isinstance(seed, int))
            or any(isinstance(v, bool) for v in (index, of, seed))
            or not 0 <= index < of <= 100_000
            or not isinstance(partition, str)
            or len(partition) > 64
        ):
            return None
        return cls(index, of, partition, seed)
