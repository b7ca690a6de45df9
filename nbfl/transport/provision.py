"""Startup kits: one folder per party with its CurveZMQ keys and whom it trusts.

``nbfl provision PROJECT.toml --out DIR`` reads a project file such as::

    name = "hospital-study"
    host = "10.0.0.5"          # the address clients dial
    port = 5555
    clients = ["site-1", "site-2"]
    he = false                 # true: also a TenSEAL context for homomorphic encryption

and writes ``DIR/controller/`` and ``DIR/<client>/`` for each client. A kit is plain
files, so it can be read, copied and audited without nbfl:

* ``kit.json``   role, project, name, endpoint, this party's public key (z85) and, for
  a client, the controller's public key; for the controller, every allowed client
  public key mapped to its name;
* ``secret.key`` this party's CurveZMQ secret key (z85 text, mode 0600);
* with ``he = true``: ``he_public.ctx`` (controller: the TenSEAL context without the
  secret key, enough to add ciphertexts) or ``he_secret.ctx`` (clients, mode 0600: the
  same full context for every client, so they can encrypt and decrypt).

Each kit holds its own secret only: the controller's kit has no client secret key,
and a client's has no other party's. Nothing here is pickled.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq
from zmq.utils import z85

from ..errors import NbflError
from .threads import CurveConfig

log = logging.getLogger(__name__)

KIT_FILE = "kit.json"
SECRET_FILE = "secret.key"
HE_PUBLIC_FILE = "he_public.ctx"
HE_SECRET_FILE = "he_secret.ctx"
CONTROLLER_DIR = "controller"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # a client name is also a folder name


class ProvisionError(NbflError, ValueError):
    """A project file or kit that cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class Kit:
    """One party's startup kit, as :func:`load_kit` reads it."""

    path: Path
    role: str  # "controller" or "client"
    project: str
    name: str
    endpoint: str
    public_key: bytes  # z85
    secret_key: bytes = field(repr=False)  # z85
    controller_key: bytes | None = None  # a client's: the controller's public key (z85)
    allowed_clients: dict[bytes, str] = field(default_factory=dict)  # a controller's: public key -> name
    he_context_file: Path | None = None

    def curve(self) -> CurveConfig:
        """The keys the transport needs."""
        return CurveConfig(self.public_key, self.secret_key, self.controller_key, dict(self.allowed_clients))

    def endpoint_with(self, host: str | None = None, port: int | None = None) -> str:
        """The kit's endpoint with its host or port replaced: a controller behind NAT binds
        0.0.0.0 while clients dial the address in their kits."""
        kit_host, _, kit_port = self.endpoint.removeprefix("tcp://").rpartition(":")
        return f"tcp://{kit_host if host is None else host}:{kit_port if port is None else port}"

    def he_context(self) -> bytes | None:
        """The serialized TenSEAL context of a ``he = true`` project (read when asked: it can be large)."""
        return self.he_context_file.read_bytes() if self.he_context_file is not None else None


def provision(project_file: str | os.PathLike[str], out: str | os.PathLike[str]) -> dict[str, Path]:
    """Write one startup kit per party for ``project_file``; return party name -> kit folder.

    Refuses to overwrite an existing kit: new keys would silently lock out parties
    that already received the old ones.
    """
    project = _read_project(Path(project_file))
    out = Path(out)
    folders = {CONTROLLER_DIR: out / CONTROLLER_DIR, **{c: out / c for c in project["clients"]}}
    existing = [str(f) for f in folders.values() if f.exists()]
    if existing:
        raise ProvisionError(f"kit folders already exist, not overwriting: {', '.join(existing)}")
    he_public, he_full = _he_contexts() if project["he"] else (None, None)  # once: every client shares it

    endpoint = f"tcp://{project['host']}:{project['port']}"
    ctl_public, ctl_secret = zmq.curve_keypair()
    clients = {name: zmq.curve_keypair() for name in project["clients"]}
    common = {"project": project["name"], "endpoint": endpoint, "he": project["he"]}
    _write_kit(
        folders[CONTROLLER_DIR],
        {
            **common,
            "role": "controller",
            "name": CONTROLLER_DIR,
            "public_key": ctl_public.decode(),
            "allowed_clients": {pub.decode(): name for name, (pub, _) in clients.items()},
        },
        ctl_secret,
        (HE_PUBLIC_FILE, he_public, 0o644) if he_public is not None else None,
    )
    for name, (public, secret) in clients.items():
        _write_kit(
            folders[name],
            {
                **common,
                "role": "client",
                "name": name,
                "public_key": public.decode(),
                "controller_key": ctl_public.decode(),
            },
            secret,
            (HE_SECRET_FILE, he_full, 0o600) if he_full is not None else None,
        )
    return folders


def load_kit(path: str | os.PathLike[str]) -> Kit:
    """Read and check a kit folder: its keys must be well-formed and the secret key
    must belong to the public key, so a mixed-up kit fails here, not in a handshake."""
    path = Path(path)
    try:
        meta = json.loads((path / KIT_FILE).read_text())
        secret = (path / SECRET_FILE).read_text().strip().encode()
    except FileNotFoundError as exc:
        raise ProvisionError(f"{path} is not a startup kit: {exc.filename} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProvisionError(f"{path / KIT_FILE} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict) or meta.get("role") not in ("controller", "client"):
        raise ProvisionError(f"{path / KIT_FILE}: role must be 'controller' or 'client'")
    if os.name == "posix" and (path / SECRET_FILE).stat().st_mode & 0o077:
        log.warning("%s can be read by other users; chmod 600 it", path / SECRET_FILE)
    public = _key(meta.get("public_key"), path, "public_key")
    _key(secret, path, SECRET_FILE)
    if zmq.curve_public(secret) != public:
        raise ProvisionError(f"{path}: {SECRET_FILE} does not belong to the public key in {KIT_FILE}")
    for name in ("project", "name", "endpoint"):
        if not isinstance(meta.get(name), str):
            raise ProvisionError(f"{path / KIT_FILE}: {name!r} must be a string")
    role = meta["role"]
    allowed: dict[bytes, str] = {}
    controller_key = None
    if role == "controller":
        listed = meta.get("allowed_clients")
        if not isinstance(listed, dict) or not all(isinstance(v, str) for v in listed.values()):
            raise ProvisionError(f"{path / KIT_FILE}: allowed_clients must map public keys to names")
        allowed = {_key(k, path, "allowed_clients"): v for k, v in listed.items()}
    else:
        controller_key = _key(meta.get("controller_key"), path, "controller_key")
    he_file = path / (HE_PUBLIC_FILE if role == "controller" else HE_SECRET_FILE)
    return Kit(
        path=path,
        role=role,
        project=meta["project"],
        name=meta["name"],
        endpoint=meta["endpoint"],
        public_key=public,
        secret_key=secret,
        controller_key=controller_key,
        allowed_clients=allowed,
        he_context_file=he_file if meta.get("he") is True and he_file.exists() else None,
    )


def as_kit(kit: Kit | str | os.PathLike[str], role: str) -> Kit:
    """A :class:`Kit` or a kit folder, checked to be ``role``'s kit."""
    kit = kit if isinstance(kit, Kit) else load_kit(kit)
    if kit.role != role:
        raise ProvisionError(f"{kit.path} is a {kit.role}'s kit; a {role} needs its own")
    return kit


def _read_project(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise ProvisionError("reading a project file needs Python 3.11, or: pip install tomli") from None
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ProvisionError(f"no project file {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProvisionError(f"{path} is not valid TOML: {exc}") from None
    clients = data.get("clients")
    port = data.get("port")
    problems = []
    if not isinstance(data.get("name"), str) or not data["name"]:
        problems.append("name must be a non-empty string")
    if not isinstance(data.get("host"), str) or not data["host"] or any(c in data["host"] for c in "/ :;"):
        problems.append("host must be a host name or IPv4 address (what clients dial)")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        problems.append("port must be an integer from 1 to 65535")
    if not isinstance(clients, list) or not clients:
        problems.append("clients must be a non-empty list of names")
    else:
        bad = [c for c in clients if not isinstance(c, str) or not NAME.match(c) or c == CONTROLLER_DIR]
        if bad:
            problems.append(f"client names must be 1-64 of A-Z a-z 0-9 . _ - (and not {CONTROLLER_DIR!r}): {bad}")
        if len(set(map(str, clients))) != len(clients):
            problems.append("client names must be unique")
    if not isinstance(data.get("he", False), bool):
        problems.append("he must be true or false")
    unknown = sorted(set(data) - {"name", "host", "port", "clients", "he"})
    if unknown:
        problems.append(f"unknown keys {unknown}")
    if problems:
        raise ProvisionError(f"{path}: " + "; ".join(problems))
    return {**data, "he": data.get("he", False)}


def _he_contexts() -> tuple[bytes, bytes]:
    """(public context, full context) from :mod:`nbfl.filters.he`, imported only when asked."""
    try:
        from ..protocol.he import new_contexts

        public, full = new_contexts()
    except ImportError as exc:
        raise ProvisionError(
            f"he = true needs homomorphic encryption (nbfl.filters.he and TenSEAL): {exc}. "
            "Install it with: pip install 'nbfl-jupyter[he]'"
        ) from None
    return bytes(public), bytes(full)


def _write_kit(folder: Path, meta: dict[str, Any], secret: bytes, he: tuple[str, bytes, int] | None) -> None:
    folder.mkdir(parents=True, mode=0o700)
    (folder / KIT_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    _write_private(folder / SECRET_FILE, secret + b"\n", 0o600)
    if he is not None:
        _write_private(folder / he[0], he[1], he[2])


def _write_private(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode`` from the start, so a secret is never readable by others."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        if hasattr(os, "fchmod"):
            os.fchmod(f.fileno(), mode)  # the umask may have taken bits away; set exactly
        f.write(data)


def _key(value: Any, path: Path, what: str) -> bytes:
    key = value.encode() if isinstance(value, str) else value
    if not isinstance(key, bytes) or len(key) != 40:
        raise ProvisionError(f"{path}: {what} is not a 40-character z85 CurveZMQ key")
    try:
        z85.decode(key)
    except Exception:  # KeyError for a character outside z85, struct.error for an overflow
        raise ProvisionError(f"{path}: {what} is not valid z85") from None
    return key
