"""A warm template process that forks spawned clients, so they share its imported pages.

Each ``nbfl client`` process imports torch, numpy, pyzmq and nbfl: some
200 MB of anonymous memory apiece, the same in every one. The template imports all of
that once and then forks a child per client. Until a child writes to a page, the page
is shared copy-on-write, so four clients cost little more than one (on Binder's 2 GB
pod that decides whether the quickstart fits).

The template does nothing but import before it forks: no threads (OpenBLAS is told to
start none, and every fork first checks ``/proc/self/task``), no zmq context, no torch
operation, no CUDA (the CUDA driver must not be loaded: checked before every fork).
A template that cannot fork safely says why, and the clients start as separate
processes instead. It runs in a session of its own (Jupyter interrupts the kernel's whole
process group; the clients must survive that), and it leaves when its parent goes:
end of its stdin, or a new parent pid.

Each child calls ``os.setsid()``, sends its output to its log file, takes the kernel's
environment and working folder as they were at the spawn, runs
the module a separate process would have run with ``-m`` (:func:`runpy.run_module`, as
``python -m`` does), with that process's arguments, and ends
with ``os._exit``. ``--exit-with-parent`` makes it leave when the template goes.

The kernel and the template talk in JSON lines (no pickle): the kernel writes requests
to the template's stdin, the template writes events to its stdout.

    {"op": "spawn", "id": 1, "module": "...", "argv": [...], "log": PATH, "env": {...}, "cwd": PATH}
    {"op": "signal", "pid": 1234, "sig": 15}       # only to a child not yet reaped
    {"event": "ready", "pid": 1233, "threads": 1, "unsafe": null}
    {"event": "spawned", "id": 1, "pid": 1234, "start": 98765}
    {"event": "failed", "id": 1, "error": "..."}
    {"event": "exit", "pid": 1234, "code": 0}      # as Popen.returncode: -N for signal N

The template reaps its children, so only it can tell their exit codes; the kernel's
:class:`TemplateChild` has the ``Popen`` methods that callers use (``pid``, ``poll``,
``wait``, ``terminate``, ``kill``, ``returncode``) plus ``log`` and ``tail``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import NbflError

log = logging.getLogger(__name__)

# Thread pools that start at import time. One thread per pool is the rule for clients
# anyway (cli sets torch to one thread: many clients share few cores).
SINGLE_THREADED = {"OPENBLAS_NUM_THREADS": "1"}
# torch.cuda.is_available() counts devices through NVML then, without initialising
# CUDA, which a forked child could not use any more (the children get the kernel's
# environment back, so for them it is the usual check)
NO_CUDA_INIT = {"PYTORCH_NVML_BASED_CUDA_CHECK": "1"}
# The template's own program: gc is off before the first import, so imports leave no
# freed holes in pages the children will share (see gc.freeze's documentation).
# It imports the modules named after it (``python -c BOOT MODULE ...``), then serves.
BOOT = "import gc; gc.disable(); from nbfl.launch.template import serve; serve()"
# Exit code a child gets when the template went away before telling it
LOST = 255


class TemplateError(NbflError, RuntimeError):
    """The template could not be started, or could not fork a client."""


# -- the kernel's side ------------------------------------------------------------
class TemplateChild:
    """A client forked by the template: the parts of ``subprocess.Popen`` callers use.

    The template reaps it and reports its exit code. If the template itself went away
    first, the child (started with ``--exit-with-parent``) leaves too; its code cannot
    be known then, and :attr:`returncode` becomes :data:`LOST` once it is gone.
    """

    def __init__(self, template: Template, args: list[str], log: Path):
        self.args = args
        self.log = log
        self.pid: int = 0
        self.returncode: int | None = None
        self._template = template
        self._start: int | None = None  # its start time (/proc/PID/stat), against pid reuse
        self._started = threading.Event()
        self._done = threading.Event()
        self._error: str | None = None

    def __repr__(self) -> str:
        return f"<TemplateChild pid={self.pid} returncode={self.returncode} log={str(self.log)!r}>"

    def poll(self) -> int | None:
        if self.returncode is None and self._template.gone:
            self._check_orphan()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            step = 0.05 if self._template.gone else 0.5
            if timeout is not None and deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise subprocess.TimeoutExpired(self.args, timeout)
                step = min(step, left)
            self._done.wait(step)
        return code

    def send_signal(self, sig: int) -> None:
        if self.poll() is not None:
            return
        if not self._template.gone:
            try:  # the template signals it only if it has not reaped it: the pid is still its
                self._template.send({"op": "signal", "pid": self.pid, "sig": int(sig)})
                return
            except (OSError, ValueError):  # the template is gone this moment
                pass
        if _alive(self.pid, self._start):
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def tail(self, lines: int = 20) -> str:
        """The end of what the process printed (why it failed to start, say)."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def _exited(self, code: int) -> None:
        self.returncode = code
        self._done.set()

    def _check_orphan(self) -> None:
        if not _alive(self.pid, self._start):
            self._exited(LOST)


class Template:
    """The kernel's handle on its template process: start it, fork clients from it."""

    def __init__(self, preload: tuple[str, ...] = (), timeout: float = 180.0):
        folder = Path(tempfile.mkdtemp(prefix="nbfl-template-"))
        self.log = folder / "template.log"
        self.gone = False  # the template's stdout ended: it exited (or is exiting)
        self._write = threading.Lock()
        self._lock = threading.Lock()
        self._next_id = 0
        self._pending: dict[int, TemplateChild] = {}
        self._children: dict[int, TemplateChild] = {}
        self._abandoned: set[int] = set()  # requests the kernel stopped waiting for
        self._ready = threading.Event()
        self.threads: int | None = None  # the template's, when it was ready
        self.unsafe: str | None = None  # why it must not fork, if it must not
        env = {**os.environ, **SINGLE_THREADED, **NO_CUDA_INIT}
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", BOOT, *preload],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                start_new_session=True,
                env=env,
            )
        self.pid = self.proc.pid
        self._reader = threading.Thread(target=self._read, name="nbfl-template-reader", daemon=True)
        self._reader.start()
        if not self._ready.wait(timeout) or self.gone:
            self.close()
            raise TemplateError(f"the template process did not start; {self.log} ends:\n{self.tail()}")
        if self.unsafe:
            self.close()
            raise TemplateError(f"the template process cannot fork safely: {self.unsafe}")

    def __repr__(self) -> str:
        return f"<Template pid={self.pid} gone={self.gone} children={len(self._children)}>"

    def alive(self) -> bool:
        return not self.gone and self.proc.poll() is None

    def busy(self) -> bool:
        """Whether a client it forked runs, or one is being forked."""
        with self._lock:
            return bool(self._children or self._pending)

    def spawn(self, args: list[str], log: Path, timeout: float = 60.0) -> TemplateChild:
        """Fork a child that runs module ``args[2]`` with ``args[3:]``, as the separate
        process's command line ``args`` (``python -m MODULE ...``) would."""
        if list(args[:2]) != [sys.executable, "-m"] or len(args) < 3:
            raise TemplateError(f"the template runs only {sys.executable} -m MODULE ..., not {args[:3]}")
        child = TemplateChild(self, list(args), Path(log))
        with self._lock:
            self._next_id += 1
            ident = self._next_id
            self._pending[ident] = child
        request = {
            "op": "spawn",
            "id": ident,
            "module": args[2],
            "argv": list(args[3:]),
            "log": str(log),
            "env": dict(os.environ),
            "cwd": os.getcwd(),
        }
        try:
            self.send(request)
        except (OSError, ValueError) as exc:  # a closed pipe: the template is gone
            with self._lock:
                self._pending.pop(ident, None)
            raise TemplateError(f"the template process is gone ({exc})") from None
        if not child._started.wait(timeout):
            with self._lock:
                if self._pending.pop(ident, None) is not None:
                    self._abandoned.add(ident)  # should it fork it after all: not a second client
            if not child._started.is_set():
                raise TemplateError(f"the template did not fork within {timeout:.0f} s")
        if child._error is not None:
            raise TemplateError(child._error)
        return child

    def send(self, message: dict[str, Any]) -> None:
        line = (json.dumps(message) + "\n").encode()
        assert self.proc.stdin is not None  # started with stdin=PIPE
        with self._write:
            self.proc.stdin.write(line)
            self.proc.stdin.flush()

    def close(self, timeout: float = 5.0) -> None:
        """End the template (its stdin closes); its children leave on their own."""
        assert self.proc.stdin is not None  # started with stdin=PIPE
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout)

    def tail(self, lines: int = 20) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def _read(self) -> None:
        assert self.proc.stdout is not None  # started with stdout=PIPE
        try:
            for line in self.proc.stdout:
                try:
                    self._handle(json.loads(line))
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning("nbfl template: unreadable line %r (%s)", line[:200], exc)
        except (OSError, ValueError):
            pass
        finally:
            with self._lock:
                self.gone = True
                pending, self._pending = list(self._pending.values()), {}
            for child in pending:
                child._error = "the template process ended before it forked the client"
                child._started.set()
            self._ready.set()  # a start that waits learns it failed; waiters look at /proc now

    def _handle(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "ready":
            self.threads = event.get("threads")
            self.unsafe = event.get("unsafe")
            self._ready.set()
        elif kind == "spawned":
            with self._lock:
                child = self._pending.pop(event["id"], None)
                late = event["id"] in self._abandoned
            if late:  # its caller has started a separate process instead
                try:
                    self.send({"op": "signal", "pid": int(event["pid"]), "sig": int(signal.SIGKILL)})
                except (OSError, ValueError):
                    pass
            elif child is not None:
                child.pid, child._start = int(event["pid"]), event.get("start")
                self._children[child.pid] = child
                child._started.set()
        elif kind == "failed":
            with self._lock:
                child = self._pending.pop(event["id"], None)
            if child is not None:
                child._error = str(event.get("error"))
                child._started.set()
        elif kind == "exit":
            child = self._children.pop(int(event["pid"]), None)
            if child is not None:
                child._exited(int(event["code"]))


_template: Template | None = None
_template_owner = 0  # the pid that started it: a forked kernel must not share it
_template_failed: str | None = None
_template_lock = threading.Lock()


def get_template(preload: tuple[str, ...] = ()) -> Template | None:
    """This process's template, started on first use (importing ``preload``: what its
    children will run) and reused; ``None`` if it cannot be had (not Linux, or it failed
    to start once: then it is not tried again)."""
    global _template, _template_owner, _template_failed
    with _template_lock:
        if _template_owner == os.getpid() and _template is not None and _template.alive():
            return _template
        if _template_owner != os.getpid():
            _template, _template_failed = None, None
        if _template_failed is not None:
            return None
        if not sys.platform.startswith("linux"):
            _template_failed = "forking a warm template needs Linux"
            log.warning("nbfl: %s; starting separate client processes", _template_failed)
            return None
        try:
            _template, _template_owner = Template(preload), os.getpid()
        except (TemplateError, OSError) as exc:
            _template, _template_owner, _template_failed = None, os.getpid(), str(exc)
            log.warning("nbfl: no template process (%s); starting separate client processes", exc)
            return None
        return _template


def release_template() -> bool:
    """End this process's template if no client it forked is running: it is a process that
    imported torch, a few hundred MiB that a finished notebook should not keep (on Binder
    every kernel left running counts against one pod). The next spawn starts a new one.
    Returns whether one was ended."""
    global _template
    with _template_lock:
        template = _template
        if template is None or _template_owner != os.getpid():
            return False
        if template.busy():
            return False
        _template = None
    template.close()
    return True


def _alive(pid: int, start: int | None) -> bool:
    """Whether ``pid`` is still the process that started at ``start``, and not a zombie."""
    stat = _stat(pid)
    if stat is None:
        return False
    state, started = stat
    return state not in ("Z", "X") and (start is None or started == start)


def _stat(pid: int) -> tuple[str, int] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the name may hold spaces and parentheses
    return fields[0], int(fields[19])  # state; starttime (field 22 of proc(5))


# -- the template's side ----------------------------------------------------------
def threads() -> int:
    return len(os.listdir("/proc/self/task"))


def fork_unsafe() -> str | None:
    """Why this process must not fork clients now, or ``None``: only the forking thread
    lives on in a child (a lock another thread held stays locked forever), and CUDA,
    once initialised, cannot be used in a forked child."""
    count = threads()
    if count != 1:
        return f"the template has {count} threads; it forks with one"
    try:
        with open("/proc/self/maps") as maps:
            if any("libcuda.so" in line for line in maps):
                return "the template has loaded the CUDA driver; forked clients could not use the GPU"
    except OSError:
        pass
    return None


def serve() -> None:
    """The template's main loop (``BOOT`` runs it): import the modules its command line
    names, then fork on request."""
    import gc
    import importlib
    import select

    parent = os.getppid()  # before the imports: should it end during them, we see it
    for name in sys.argv[1:]:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - a client that needs it will say why
            print(f"nbfl template: could not import {name}: {exc!r}", file=sys.stderr, flush=True)
    gc.collect()
    gc.freeze()  # what the children inherit is never traversed by their collector

    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    children: set[int] = set()

    def report(event: dict[str, Any]) -> None:
        data = (json.dumps(event) + "\n").encode()
        while data:
            data = data[os.write(1, data) :]

    def reap() -> None:
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            children.discard(pid)
            report({"event": "exit", "pid": pid, "code": os.waitstatus_to_exitcode(status)})

    def spawn(request: dict[str, Any]) -> None:
        ident = request.get("id")
        unsafe = fork_unsafe()
        if unsafe is not None:
            report({"event": "failed", "id": ident, "error": unsafe})
            return
        try:
            logfd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            report({"event": "failed", "id": ident, "error": f"log file: {exc}"})
            return
        gc.freeze()  # objects made since the last fork too
        me = os.getpid()
        try:
            setup_r, setup_w = os.pipe2(os.O_CLOEXEC)
        except OSError as exc:
            os.close(logfd)
            report({"event": "failed", "id": ident, "error": f"pipe: {exc}"})
            return
        try:
            pid = os.fork()
        except OSError as exc:  # too many processes, or no memory
            for fd in (logfd, setup_r, setup_w):
                os.close(fd)
            report({"event": "failed", "id": ident, "error": f"fork: {exc}"})
            return
        if pid == 0:
            os.close(setup_r)
            _child(request, logfd, template=me, close=(wake_r, wake_w), setup=setup_w)  # never returns
        os.close(logfd)
        os.close(setup_w)
        try:
            os.read(setup_r, 1)  # its end closes once it has its own session, output and folder
        finally:
            os.close(setup_r)
        children.add(pid)
        stat = _stat(pid)
        report({"event": "spawned", "id": ident, "pid": pid, "start": stat[1] if stat else None})

    def handle(request: dict[str, Any]) -> None:
        op = request.get("op")
        if op == "spawn":
            spawn(request)
        elif op == "signal":
            pid = int(request["pid"])
            if pid in children:  # not yet reaped, so the pid is still this child's
                try:
                    os.kill(pid, int(request["sig"]))
                except (ProcessLookupError, ValueError, OverflowError):
                    pass

    report({"event": "ready", "pid": os.getpid(), "threads": threads(), "unsafe": fork_unsafe()})
    buffer = b""
    try:
        while True:
            ready, _, _ = select.select([0, wake_r], [], [], 1.0)
            if wake_r in ready:
                try:
                    while os.read(wake_r, 512):
                        pass
                except BlockingIOError:
                    pass
            reap()
            if os.getppid() != parent:
                return
            if 0 in ready:
                data = os.read(0, 1 << 16)
                if not data:
                    return  # the kernel closed our stdin, or ended
                buffer += data
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    try:
                        handle(json.loads(line))
                    except Exception as exc:  # noqa: BLE001 - one bad request does not end the template
                        print(f"nbfl template: bad request {line[:200]!r}: {exc!r}", file=sys.stderr, flush=True)
    except BrokenPipeError:
        return  # nobody reads our reports: the kernel is gone


def _child(request: dict[str, Any], logfd: int, template: int, close: tuple[int, ...], setup: int) -> None:
    """In the forked child: become a separate client process, run it, and exit.

    Closing ``setup`` tells the template the child is set up (as ``Popen`` returns only
    after the new session began): whoever sees its pid sees its own session.
    """
    code = 1
    try:
        try:
            os.setsid()  # out of the template's session, as a spawned process would be
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            for fd in close:
                os.close(fd)
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.close(devnull)
            os.dup2(logfd, 1)
            os.dup2(logfd, 2)
            os.close(logfd)
            import gc

            gc.enable()
            os.environ.clear()
            os.environ.update(request["env"])
            os.chdir(request["cwd"])
            sys.path[0] = request["cwd"]  # as `python -m MODULE` started there would have it
            os.close(setup)
            setup = -1
            sys.argv = [str(request["module"]), *(str(a) for a in request["argv"])]  # run_module sets [0]
            if "numpy" in sys.modules:  # forked children would share the global stream
                sys.modules["numpy"].random.seed()
            if os.getppid() != template:
                print("nbfl: the template process ended as this client started", file=sys.stderr, flush=True)
                os._exit(1)
            import runpy

            runpy.run_module(str(request["module"]), run_name="__main__", alter_sys=True)  # as `python -m` runs it
            code = 0
        except SystemExit as exc:
            if exc.code is None or isinstance(exc.code, int):
                code = exc.code or 0
            else:
                print(exc.code, file=sys.stderr)
                code = 1
        except KeyboardInterrupt:  # end as an uncaught one ends Python: by SIGINT
            code = -signal.SIGINT
        except BaseException:  # noqa: BLE001
            import traceback

            traceback.print_exc()
            code = 1
        with contextlib.suppress(BaseException):
            threading._shutdown()  # type: ignore[attr-defined]  # as multiprocessing's forked children do
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(BaseException):
                stream.flush()
    finally:  # nothing gets back into the template's loop
        with contextlib.suppress(BaseException):
            if setup >= 0:
                os.close(setup)
            if code == -signal.SIGINT:
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                os.kill(os.getpid(), signal.SIGINT)
        os._exit(code if isinstance(code, int) and 0 <= code < 256 else 1)
