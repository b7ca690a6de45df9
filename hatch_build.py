"""Wheel build hook: the prebuilt Federation panel goes into the wheel as a JupyterLab
extension (``share/jupyter/labextensions/nbfl-federation``) when it is there.

The panel is built with node by ``scripts/build_panel.sh`` and committed, so building
from a clone needs no node. If ``nbfl/labextension`` is missing (deleted, or a partial
copy), the wheel is built without the panel and this says so in one line, rather than
failing the install: nbfl itself works without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

PANEL = Path("nbfl") / "labextension"
DEST = "share/jupyter/labextensions/nbfl-federation"
INSTALL_JSON = "extensions/federation/install.json"


class PanelHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        root = Path(self.root)
        if not (root / PANEL / "static" / "style.js").is_file():
            self.app.display_warning(
                "nbfl: building without the JupyterLab Federation panel (nbfl/labextension is not built; "
                "scripts/build_panel.sh builds it, with node >= 18)"
            )
            return
        shared = build_data.setdefault("shared_data", {})
        for file in sorted((root / PANEL).rglob("*")):
            if file.is_file():
                shared[str(file.relative_to(root))] = f"{DEST}/{file.relative_to(root / PANEL).as_posix()}"
        shared[INSTALL_JSON] = f"{DEST}/install.json"
