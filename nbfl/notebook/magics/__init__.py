"""``%fl_*`` magics: a thin layer over :class:`~nbfl.Controller` and :class:`~nbfl.Client`.

One class per topic, as IPython's own magics are organised: the controller
(:mod:`.controller`), the participant (:mod:`.participant`), runs (:mod:`.runs`) and
reports (:mod:`.reports`), all made with one :class:`~.session.Session`. Each magic
parses its arguments (``%fl_round?`` shows them), calls the Python API and shows the
result; the logic lives in the API. Errors in arguments raise ``UsageError``.
"""

from __future__ import annotations

import logging
from typing import Any

from ..waiting import await_blocking_magics, unregister
from .controller import ControllerMagics
from .participant import ParticipantMagics
from .reports import ReportMagics
from .runs import RunMagics
from .session import Session

TOPICS = (ControllerMagics, ParticipantMagics, RunMagics, ReportMagics)


def session_of(shell: Any) -> Session | None:
    """The session the loaded magics of ``shell`` share, if nbfl is loaded there."""
    magics = shell.magics_manager.registry.get(RunMagics.__name__)
    return magics.session if magics is not None else None


def load(shell: Any) -> None:
    """Register the magics; nbfl's log goes quiet, since the dashboard shows what matters
    and a log line from a background thread would land in whichever cell runs."""
    logger = logging.getLogger("nbfl")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
    session = Session(shell)
    shell.register_magics(*(topic(shell, session) for topic in TOPICS))
    if await_blocking_magics not in shell.input_transformers_post:
        shell.input_transformers_post.append(await_blocking_magics)


def unload(shell: Any) -> None:
    """``%unload_ext``/``%reload_ext``: close this kernel's controller, spawned clients and client."""
    unregister(shell)
    session = session_of(shell)
    if session is not None:
        session.stop_all()
        if session.client is not None:
            session.client.stop()
