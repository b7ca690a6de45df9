"""Control sockets: how JupyterLab's Federation panel sees and steers a federation while
the kernel that holds it is busy running a cell.

While ``%fl_round`` runs, the kernel's shell channel is taken, so the Jupyter server
extension (:mod:`nbfl.jupyter.server_extension`) does not go through the kernel. Every controller,
and every client joined with ``%fl_join``, serves a control socket of its own: a ROUTER
bound to 127.0.0.1 on a free port, owned by one thread, answering one JSON request with
one JSON reply::

    {"token": "...", "op": "status" | "stop" | "remove" | "leave", "args": {...}}
    {"ok": true, "status": {...}} | {"ok": true, "message": "..."} | {"ok": false, "error": "..."}

It is no new way into a controller from the network: it listens on loopback only, and
each request must carry a token that is written, with the address, to a registration file
only this user can read (mode 0600, in a 0700 folder of Jupyter's runtime directory,
beside the kernels' connection files). The server extension finds controllers by
listing those files; the browser reaches it only with the Jupyter server's own token.
"""

from __future__ import annotations

import atexit
import hmac
import itertools
import json
import logging
import math
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import zmq

from ..errors import NbflError
from ..protocol import wire

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 64 * 1024  # a control request is a few hundred bytes; anything bigger is refused by ZeroMQ
_serial = itertools.count(1)

Action = Callable[[Mapping[str, Any]], str]


class ControlError(NbflError, RuntimeError):
    """A control request was refused, or nobody answered it."""


def registry_dir() -> Path:
    """``<Jupyter runtime dir>/nbfl``, where controllers and participants register.

    The runtime directory is where a Jupyter server keeps its kernels' connection files;
    ``JUPYTER_RUNTIME_DIR`` moves both. jupyter_core comes with JupyterLab; the core of
    nbfl does without it.
    """
    try:
        from jupyter_core.paths import jupyter_runtime_dir

        base = Path(jupyter_runtime_dir())
    except ImportError:
        base = Path(os.environ.get("JUPYTER_RUNTIME_DIR") or Path.home() / ".local/share/jupyter/runtime")
    return base / "nbfl"


class ControlServer:
    """One control socket and its thread, registered in :func:`registry_dir` while it runs.

    ``status()`` returns what the panel shows (JSON values); ``actions`` maps an op name to
    a function of the request's ``args`` that returns a sentence for the panel and raises
    ``KeyError``, ``ValueError`` or ``RuntimeError`` with one when it cannot.
    """

    def __init__(self, kind: str, status: Callable[[], Mapping[str, Any]], actions: Mapping[str, Action]):
        self.kind = kind
        self.token = secrets.token_urlsafe(32)
        self.id = f"{kind}-{os.getpid()}-{next(_serial)}"
        self.address = ""
        self.path: Path | None = None
        self._status = status
        self._actions = dict(actions)
        self._stop = threading.Event()
        self._bound = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, name=f"nbfl-control-{kind}", daemon=True)

    def start(self) -> "ControlServer":
        """Serve and register; a federation runs on without a panel if neither can be done here."""
        self._thread.start()
        self._bound.wait()
        if self._error is not None:
            log.warning("no Federation panel for this %s: %s", self.kind, self._error)
            return self
        try:
            self.path = self._register()
        except OSError as exc:  # a read-only home, say
            log.warning("no Federation panel for this %s: cannot register in %s: %s", self.kind, registry_dir(), exc)
            self.close()
            return self
        atexit.register(self.close)
        return self

    def close(self) -> None:
        """Unregister and stop; safe to call twice, and from an action on the socket's own thread."""
        self._stop.set()
        if threading.current_thread() is not self._thread and self._thread.is_alive():
            self._thread.join(timeout=5)
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None
        atexit.unregister(self.close)

    # -- the socket's thread ----------------------------------------------------------
    def _serve(self) -> None:
        sock: zmq.Socket = zmq.Context.instance().socket(zmq.ROUTER)
        try:
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.MAXMSGSIZE, MAX_REQUEST_BYTES)
            sock.bind("tcp://127.0.0.1:*")
            self.address = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        except zmq.ZMQError as exc:
            self._error = ControlError(f"no control socket: {exc}")
            sock.close()
            return
        finally:
            self._bound.set()
        try:
            while not self._stop.is_set():
                if sock.poll(200):
                    frames = sock.recv_multipart()
                    if len(frames) == 3 and frames[1] == b"":  # [peer, empty delimiter, request] from a REQ socket
                        sock.send_multipart([frames[0], b"", json.dumps(self.answer(frames[2])).encode()])
        finally:
            sock.close()

    def answer(self, raw: bytes) -> dict[str, Any]:
        """The reply to one request; never raises (no input ends the thread)."""
        try:
            request = wire.parse_json(raw)
        except wire.WireError as exc:
            return {"ok": False, "error": f"not a control request: {exc}"}
        if not isinstance(request, dict):
            return {"ok": False, "error": "not a control request: not a JSON object"}
        token = request.get("token")
        if not isinstance(token, str) or not hmac.compare_digest(token.encode(), self.token.encode()):
            log.warning("control request refused: wrong or missing token")
            return {"ok": False, "error": "refused: a control request needs this socket's token"}
        op, args = request.get("op"), request.get("args", {})
        if not isinstance(args, dict):
            return {"ok": False, "error": "'args' is not a JSON object"}
        try:
            if op == "status":
                return {"ok": True, "status": _finite(self._status())}
            if not isinstance(op, str) or op not in self._actions:
                known = ", ".join(["status", *self._actions])
                return {"ok": False, "error": f"unknown operation {op!r:.40}; a {self.kind} knows {known}"}
            return {"ok": True, "message": self._actions[op](args)}
        except (KeyError, ValueError, RuntimeError) as exc:
            return {"ok": False, "error": str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)}
        except Exception as exc:  # a bug of ours, not the caller's: reported, and the socket lives on
            log.exception("control operation %r failed", op)
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}

    def _register(self) -> Path:
        """Write the address and token to a file only this user can read, atomically."""
        folder = registry_dir()
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        entry = {
            "id": self.id,
            "kind": self.kind,
            "address": self.address,
            "token": self.token,
            "pid": os.getpid(),
            "notebook": os.environ.get("JPY_SESSION_NAME"),  # set by the Jupyter server for a notebook's kernel
            "started": time.time(),
        }
        path = folder / f"{self.id}.json"
        temp = folder / f".{self.id}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(entry, out)
        os.replace(temp, path)
        return path


# -- the other end: the Jupyter server extension, tests ---------------------------------------
def registered() -> list[dict[str, Any]]:
    """Every live registration, oldest first; files of processes that are gone are removed."""
    folder = registry_dir()
    entries = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            entry = json.loads(path.read_text())
            pid = int(entry["pid"])
            str(entry["address"]), str(entry["token"]), str(entry["id"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # being written, or not ours
        if not _alive(pid):
            path.unlink(missing_ok=True)  # a kernel that was killed left it behind
            continue
        entries.append(entry)
    return sorted(entries, key=lambda e: e.get("started") or 0)


def request(entry: Mapping[str, Any], op: str, args: Mapping[str, Any] | None = None, timeout: float = 2.0) -> Any:
    """Send one request to a registered control socket; return its status or message.

    Raises :class:`ControlError` with the socket's own sentence when it refuses, or when
    it does not answer within ``timeout`` seconds.
    """
    sock: zmq.Socket = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(entry["address"])
        sock.send(json.dumps({"token": entry.get("token"), "op": op, "args": dict(args or {})}).encode())
        if not sock.poll(int(timeout * 1000)):
            raise ControlError(f"did not answer within {timeout:g} s")
        reply = json.loads(sock.recv())
    finally:
        sock.close()
    if not reply.get("ok"):
        raise ControlError(reply.get("error") or "refused")
    return reply["status"] if op == "status" else reply.get("message", "")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        pass
    return True


def _finite(value: Any) -> Any:
    """JSON for a browser: NaN and infinite metrics become null (``JSON.parse`` refuses ``NaN``)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
