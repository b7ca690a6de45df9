"""The SHA-256 of the Federation panel's sources (extensions/federation, as git tracks it).

The built panel (nbfl/labextension) is committed, so that ``pip install .`` from a
clone, Binder and the wheel need no node. ``scripts/build_panel.sh`` writes this hash
into ``nbfl/labextension/source.sha256`` when it builds; a test compares it with the
sources, so a change to the TypeScript that was not rebuilt fails CI instead of
shipping an old panel.

``python scripts/panel_source.py`` prints the hash; ``--check`` exits 1 if the
committed bundle was built from other sources.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "extensions" / "federation"
BUILT = ROOT / "nbfl" / "labextension" / "source.sha256"
# what the build reads; README.md and install.json (copied as is) do not change the bundle
PARTS = ("src", "style", "package.json", "package-lock.json", "tsconfig.json")


def source_hash() -> str:
    digest = hashlib.sha256()
    for part in PARTS:
        path = SOURCES / part
        for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if file.is_file():
                digest.update(file.relative_to(SOURCES).as_posix().encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def built_hash() -> str | None:
    return BUILT.read_text().strip() if BUILT.is_file() else None


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        sys.exit(0 if built_hash() == source_hash() else 1)
    print(source_hash())
