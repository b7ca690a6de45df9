"""Control sockets: how JupyterLab's Federation panel sees and steers a federation while
the kernel that holds it is busy running a cell.

While ``%fl_round`` runs, the kernel's shell channel is taken, so the Jupyter server
extension (:mod:`nbfl.jupyter_server`) does not go through the kernel. Every controller,
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
from typing import TYPE_CHECKING, Any, Callable, Mapping

import zmq

from . import wire

if TYPE_CHECKING:
    from .client import Client
    from .controller import Controller

log = logging.getLogger("nbfl.control")

MAX_REQUEST_BYTES = 64 * 1024  # a control request is a few hundred bytes; anything bigger is refused by ZeroMQ
HISTORY_SHOWN = 500  # rounds of history a status carries: enough for a chart, bounded for a long run
_serial = itertools.count(1)

Action = Callable[[Mapping[str, Any]], str]


class ControlError(RuntimeError):
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

    def __init__(self, kind: str, status: Callable[[], dict[str, Any]], actions: Mapping[str, Action]):
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
        self._thread.start()
        self._bound.wait()
        if self._error is not None:
            raise self._error
        self.path = self._register()
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
        sock = zmq.Context.instance().socket(zmq.ROUTER)
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
            "id": self.id, "kind": self.kind, "address": self.address, "token": self.token, "pid": os.getpid(),
            "notebook": os.environ.get("JPY_SESSION_NAME"),  # set by the Jupyter server for a notebook's kernel
            "started": time.time(),
        }  # fmt: skip
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
    sock = zmq.Context.instance().socket(zmq.REQ)
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


# -- what a controller and a participant show -------------------------------------------------
def controller_server(controller: "Controller") -> ControlServer:
    """The control socket of ``controller``: status, stop, remove."""

    def stop(args: Mapping[str, Any]) -> str:
        run = controller.active_run
        if run is None:
            raise RuntimeError("no run is going on")
        run.stop()
        return f"stopping the run in round {run.round} of {run.rounds}: clients are told to abort"

    def remove(args: Mapping[str, Any]) -> str:
        name = args.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError("remove needs the client's name")
        controller.remove(name)
        return f"{name} was removed" + ("; the join line is new" if controller.workshop is not None else "")

    return ControlServer("controller", lambda: controller_status(controller), {"stop": stop, "remove": remove})


def controller_status(controller: "Controller") -> dict[str, Any]:
    """The controller as the panel shows it: its run, its clients, its rounds."""
    code = controller.join_code
    run = controller.last_run
    status: dict[str, Any] = {
        "endpoint": controller.endpoint,
        "security": controller.security,
        "workshop": controller.workshop is not None,
        "join_line": f"%fl_join {code} --name YOUR_NAME --accept-code" if code is not None else None,
        "run": None,
        "clients": [
            {
                "name": c.name, "device": c.device, "host": c.host, "state": c.state, "share": c.share,
                "round": c.last_round, "seconds": c.last_seconds, "metrics": dict(c.last_metrics),
            }  # fmt: skip
            for c in controller.clients
        ],
        "history": [
            {"round": r.round, "status": str(r.status), "outcome": r.outcome, "metrics": dict(r.metrics)}
            for r in controller.history[-HISTORY_SHOWN:]
        ],
    }
    if run is not None:
        answered, asked = run.progress
        state = "running" if not run.done() else "failed" if run.exception() else "stopped" if run.stopped else "finished"
        status["run"] = {
            "state": state, "summary": run.summary(), "round": run.round, "rounds": run.rounds,
            "answered": answered, "asked": asked, "workflow": run.workflow.name,
        }  # fmt: skip
    return status


def participant_server(client: "Client") -> ControlServer:
    """The control socket of a client joined from a notebook: status, leave."""

    def leave(args: Mapping[str, Any]) -> str:
        if client.state == "stopped":
            raise RuntimeError(f"{client.name} has already left")
        # stop() closes this socket too: it runs on a thread of its own, after this answer
        threading.Thread(target=client.stop, name="nbfl-leave", daemon=True).start()
        return f"{client.name} is leaving {client.controller_address}"

    return ControlServer("participant", lambda: participant_status(client), {"leave": leave})


def participant_status(client: "Client") -> dict[str, Any]:
    """A participant as its own panel shows it: its controller, state and accuracy beside the global one."""
    lost = client.controller_lost
    return {
        "name": client.name,
        "controller": client.controller_address,
        "state": client.state,
        "controller_lost": None if lost is None else round(time.time() - lost, 1),
        "share": str(client.share) if client.share is not None else None,
        "device": str(client.device),
        "rounds_done": client.rounds_done,
        "local": dict(client.last_metrics),
        "global": dict(client.global_metrics),
        "global_round": client.global_round,
        "last_error": client.last_error,
    }
