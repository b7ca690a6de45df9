"""``%fl_join`` and ``%fl_leave``: this notebook as a participant, training in the background."""

from __future__ import annotations

import html
import time
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from ...participant.client import Client
from ...protocol.joining import Share, is_join_code
from ..cell_context import in_cell
from ..text import Html
from .session import Session, TopicMagics


@magics_class
class ParticipantMagics(TopicMagics):
    """Join a controller as a client, and leave it."""

    @magic_arguments()
    @argument(
        "endpoint",
        nargs="?",
        help="what %%fl_controller start showed: a join line's nbfl://... code, or an address tcp://HOST:PORT",
    )
    @argument("--name", nargs="+", help="how the controller will list you, spaces allowed (with --kit: the kit's name)")
    @argument("--kit", help="your startup kit folder (nbfl provision): endpoint, name and CurveZMQ keys")
    @argument("--insecure", action="store_true", help="allow plaintext to a non-loopback controller")
    @argument("--data", default="digits", choices=["digits", "none"], help="'none': use your @nbfl.task functions")
    @argument("--index", type=int, help="your share of the partition (default: the workshop assigns one, else 0)")
    @argument("--num-clients", type=int, default=1)
    @argument("--partition", default="dirichlet:0.5")
    @argument("--seed", type=int, default=0)
    @argument("--accept-code", action="store_true", help="run task code the controller sends (%%fl_task)")
    @line_magic
    def fl_join(self, line: str) -> None:
        """Join a controller as a client and return at once; training runs in the background.

        With no arguments: this notebook's client again (after a page reload, say).
        """
        args = parse_argstring(self.fl_join, line)
        args.name = typed_name(args.name)
        if not line.strip() and self.session.client is not None:
            show_client(self.session)
            return
        if self.session.client is not None and self.session.client.state != "stopped":
            raise UsageError(
                f"this notebook is already client {self.session.client.name!r} (%fl_join alone shows it); "
                "%fl_leave first to join another controller"
            )
        if args.kit is None and (args.endpoint is None or args.name is None):
            raise UsageError("%fl_join needs the join line's code (or ENDPOINT) and --name, or --kit YOUR_KIT_FOLDER")
        where = args.endpoint or f"the controller of kit {args.kit}"
        status = self.session.status_line(
            Html(f"joining {html.escape(where)} as {html.escape(args.name or 'the kit name')} ...")
        )
        kwargs = self._local_training(args)
        try:
            self.session.client = Client(
                args.endpoint,
                args.name,
                kit=args.kit,
                insecure=args.insecure,
                accept_code=args.accept_code,
                on_update=in_cell(self._client_updated),
                control=True,
                **kwargs,
            )
            self.session.client_status = status
            self.session.client.start(wait=30)
        except (ConnectionError, ValueError) as exc:
            raise UsageError(str(exc)) from None
        self.shell.user_ns["nbfl_client"] = self.session.client
        status.set(Html(client_status(self.session.client)))

    @line_magic
    def fl_leave(self, line: str = "") -> None:
        """Leave the controller this notebook joined with %fl_join (to join another, say).
        Works in every state: joining, training, waiting for a controller that went quiet,
        or already stopped (then it says why)."""
        if self.session.client is None:
            raise UsageError("this notebook has not joined a controller: %fl_join LINE")
        client = self.session.client
        if client.state == "stopped":
            display(
                Html(
                    f"{html.escape(client.name)} had already stopped ({html.escape(client.ended or 'left')}); "
                    "%fl_join LINE joins again"
                )
            )
            return
        client.stop()
        display(Html(f"{html.escape(client.name)} left {html.escape(client.endpoint)}"))

    def _client_updated(self, client: Client) -> None:
        # a terminal reprints an updated display: there the status shows when asked (%fl_status)
        if self.session.client_status is not None and self.session.rich():
            self.session.client_status.set(Html(client_status(client)))

    def _local_training(self, args: Any) -> dict[str, Any]:
        """The built-in trainer on a share of digits: the one given, else one the workshop assigns."""
        if args.data == "none":
            return {}
        from ...participant.builtin import built_in_client

        share = None
        if args.index is not None or not is_join_code(args.endpoint):
            share = Share(args.index or 0, args.num_clients, args.partition, args.seed)
            if not 0 <= share.index < share.of:
                raise UsageError(f"--index must be between 0 and {share.of - 1} (--num-clients {share.of})")
        try:
            return built_in_client(share, epochs=2)  # torch's or numpy's, as $NBFL_TRAINER says
        except ValueError as exc:
            raise UsageError(str(exc)) from None


def typed_name(words: list[str] | None) -> str | None:
    """``--name`` as typed: its words joined by spaces, without quotes around them. A name
    with a space arrives in pieces from ``$NAME`` and with its quotes from ``"Grace Hopper"``
    (IPython keeps them); either way the name is ``Grace Hopper``."""
    if not words:
        return None
    return " ".join(words).strip("'\"") or None


def client_status(client: Client) -> str:
    metrics = ", ".join(f"{k} {v:.3g}" for k, v in sorted(client.last_metrics.items()))
    error = f"<br><span style='color:#b00'>{html.escape(client.last_error)}</span>" if client.last_error else ""
    if client.controller_lost is not None and client.state != "stopped":
        since = time.strftime("%H:%M:%S", time.localtime(client.controller_lost))
        error += f"<br><span style='color:#a60'>the controller has not answered since {since}; still trying</span>"
    if client.share is not None:
        share = f", share {client.share} ({client.samples} samples)"
    else:  # a workshop's share comes with the welcome, and is set up just after
        share = ", share being assigned" if client.from_share is not None else ""
    if client.state == "stopped" and client.ended and client.ended != client.last_error:
        error += f"<br>stopped: {html.escape(client.ended)}"
    return (
        f"<b>{html.escape(client.name)}</b> at {html.escape(client.endpoint)} on {html.escape(client.device)}"
        f"{share}: {client.state}, {client.rounds_done} rounds done{'; ' + html.escape(metrics) if metrics else ''}{error}"
    )


def show_client(session: Session) -> None:
    """This kernel's client, in a new status line that keeps updating (the old one may be gone with a page)."""
    assert session.client is not None
    session.client_status = session.status_line(Html(client_status(session.client)))
