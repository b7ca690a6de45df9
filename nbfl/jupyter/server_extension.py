"""The Jupyter server's half of the Federation panel (the other half is ``extensions/federation``).

The panel asks the server, the server asks each controller and participant on this
machine over its control socket (:mod:`nbfl.transport.control`), never through a kernel: a kernel
busy with ``%fl_round`` still answers, because its control socket has a thread of its own.

Routes, all behind Jupyter's own authentication (token or cookie, plus XSRF for POST)
and authorization (the ``kernels`` resource: steering a run is like running code):

* ``GET  nbfl/federation``: every registered controller and participant with its status;
* ``POST nbfl/federation/<id>/stop`` | ``remove`` (``{"name": ...}``) | ``leave`` | ``detach``.
"""

from __future__ import annotations

import asyncio
import json
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from ..transport import control

ACTIONS = ("stop", "remove", "leave", "detach")
_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="nbfl-panel")  # one blocking request each


def snapshot(root_dir: str = "") -> list[dict[str, Any]]:
    """Every registered controller and participant, each with its status or why there is none.

    Requests go out at once, so one that hangs costs its timeout, not the sum of all.
    """
    entries = control.registered()
    futures = [_pool.submit(control.request, entry, "status") for entry in entries]
    out = []
    for entry, future in zip(entries, futures):
        try:
            status, error = future.result(), None
        except control.ControlError as exc:
            status, error = None, str(exc)
        out.append(
            {
                "id": entry["id"],
                "kind": entry.get("kind"),
                "pid": entry["pid"],
                "started": entry.get("started"),
                "notebook": _notebook(entry.get("notebook"), root_dir),
                "error": error,
                "status": status,
            }
        )
    return out


def _notebook(path: Any, root_dir: str) -> str | None:
    """The notebook's path as the file browser shows it (relative to the server's root)."""
    if not isinstance(path, str) or not path:
        return None
    if root_dir and os.path.isabs(path):
        relative = os.path.relpath(path, root_dir)
        return relative if not relative.startswith("..") else os.path.basename(path)
    return path


class _Handler(APIHandler):
    auth_resource = "kernels"

    def reply(self, status: int, body: dict[str, Any]) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))


class FederationHandler(_Handler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        root = str(self.settings.get("server_root_dir", ""))
        entries = await asyncio.get_running_loop().run_in_executor(None, snapshot, root)
        self.reply(200, {"entries": entries})


class ActionHandler(_Handler):
    @tornado.web.authenticated
    @authorized
    async def post(self, entry_id: str, op: str) -> None:
        entry = next((e for e in control.registered() if e["id"] == entry_id), None)
        if entry is None:
            return self.reply(404, {"message": f"{entry_id} is not running any more"})
        try:
            args = json.loads(self.request.body or b"{}")
        except ValueError:
            return self.reply(400, {"message": "the request's body is not JSON"})
        if not isinstance(args, dict):
            return self.reply(400, {"message": "the request's body is not a JSON object"})
        try:
            message = await asyncio.get_running_loop().run_in_executor(_pool, control.request, entry, op, args)
        except control.ControlError as exc:
            return self.reply(409, {"message": str(exc)})
        self.reply(200, {"message": message})


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Add the panel's routes to the Jupyter server (found through ``jupyter_server_config.d``)."""
    base = url_path_join(serverapp.web_app.settings["base_url"], "nbfl", "federation")
    serverapp.web_app.add_handlers(
        ".*$",
        [
            (base, FederationHandler),
            (url_path_join(base, r"([\w.-]+)", f"({'|'.join(ACTIONS)})"), ActionHandler),
        ],
    )
    serverapp.log.info("nbfl: Federation panel routes at %s", base)
