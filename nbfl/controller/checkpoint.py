"""Checkpoints: what a controller needs to continue after its process or kernel restarts.

After every round a controller with ``checkpoint_dir`` writes one folder,
``round-000007/``, holding:

* ``model.safetensors``     the global model (safetensors: tensors and a JSON header,
  nothing executable, readable without nbfl);
* ``workflow.safetensors``  the workflow's arrays, if it keeps any (FedOpt's moments,
  SCAFFOLD's control variate);
* ``checkpoint.json``       the round number, the history, the workflow's name and its
  other state, the names of the clients spawned on the controller's machine
  (``spawned``: they end with its kernel, so a resumed controller says which to start
  again; a checkpoint written before this field reads as none), and the SHA-256 of each
  file above.

The folder is written under a temporary name, each file flushed to disk, then renamed
into place: a crash mid-write leaves a temporary folder that is ignored, never a
half-written checkpoint under a real name. The last :data:`KEEP` checkpoints are kept.
:func:`latest` reads the newest whole one: a checkpoint whose JSON does not parse,
whose files do not match their checksums or whose arrays hold NaN or Inf is reported (a
warning, and in :attr:`Checkpoint.skipped`) and the one before it is used. A model or
workflow state with NaN or Inf is never written: resuming from it could only go on
computing NaN.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from safetensors.numpy import load_file, save_file

from ..errors import NbflError
from ..protocol.records import RoundRecord, RoundStatus
from ..protocol.weights import Weights, first_not_finite
from ..workflows.base import Stateful

log = logging.getLogger(__name__)

KEEP = 2
MODEL = "model.safetensors"
WORKFLOW = "workflow.safetensors"
MANIFEST = "checkpoint.json"
FOLDER = re.compile(r"^round-(\d{6,})$")


class CheckpointError(NbflError, ValueError):
    """No usable checkpoint where one was asked for; the message says what was found."""


@dataclass
class Checkpoint:
    """One checkpoint as read back: enough to continue after ``round``."""

    path: Path
    round: int
    weights: Weights
    history: list[RoundRecord]
    workflow: str | None = None  # the name of the workflow whose state this is
    workflow_arrays: dict[str, np.ndarray] = field(default_factory=dict)
    workflow_meta: dict[str, Any] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # newer checkpoints that were damaged, and why
    spawned: list[str] = field(default_factory=list)  # clients spawned beside the controller (Controller.spawned)


def save(
    directory: str | os.PathLike[str],
    weights: Mapping[str, np.ndarray],
    history: list[RoundRecord],
    workflow: Any = None,
    spawned: list[str] | None = None,
) -> Path:
    """Write the checkpoint after ``len(history)`` rounds; return its folder. ``spawned``
    names the clients started on the controller's machine for it (:attr:`Checkpoint.spawned`).

    Raises ValueError, writing nothing, if the model or the workflow's arrays hold NaN or Inf.
    """
    files = {MODEL: {k: np.ascontiguousarray(v) for k, v in weights.items()}}
    name, arrays, meta = _workflow_state(workflow)
    if arrays:
        files[WORKFLOW] = arrays
    for filename, tensors in files.items():
        if (bad := first_not_finite(tensors)) is not None:
            raise ValueError(f"{bad} in {filename} holds NaN or Inf; the previous checkpoint stays the latest")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    number = len(history)
    final = directory / f"round-{number:06d}"
    staging = Path(tempfile.mkdtemp(prefix=".writing-", dir=directory))
    try:
        sums = {}
        for filename, tensors in files.items():
            save_file(tensors, str(staging / filename))
            sums[filename] = _sha256(staging / filename)
        manifest = {
            "round": number,
            "workflow": name,
            "workflow_meta": meta,
            "sha256": sums,
            "history": [_record_json(r) for r in history],
            "spawned": list(spawned or []),
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, default=_plain))
        for path in staging.iterdir():
            _fsync(path)
        if final.exists():  # the same round written again (a round re-run after a resume)
            shutil.rmtree(final)
        os.replace(staging, final)
        _fsync(directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for old in _folders(directory)[KEEP:]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest(directory: str | os.PathLike[str]) -> Checkpoint:
    """The newest whole checkpoint in ``directory``; damaged newer ones are reported and skipped."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"no checkpoint folder {directory}")
    skipped = []
    for folder in _folders(directory):
        try:
            checkpoint = load(folder)
        except CheckpointError as exc:
            log.warning("checkpoint %s is damaged, using the one before it: %s", folder.name, exc)
            skipped.append(f"{folder.name}: {exc}")
            continue
        checkpoint.skipped = skipped
        return checkpoint
    found = "; ".join(skipped) if skipped else "it holds none"
    raise CheckpointError(f"no usable checkpoint in {directory}: {found}")


def load(folder: str | os.PathLike[str]) -> Checkpoint:
    """Read one checkpoint folder, checking every file against its checksum and every array for NaN and Inf."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        sums = manifest["sha256"]
        for filename, expected in sums.items():
            if _sha256(folder / filename) != expected:
                raise CheckpointError(f"{filename} does not match its checksum (cut short or changed)")
        weights = load_file(str(folder / MODEL))
        arrays = load_file(str(folder / WORKFLOW)) if WORKFLOW in sums else {}
        for filename, tensors in ((MODEL, weights), (WORKFLOW, arrays)):
            if (bad := first_not_finite(tensors)) is not None:
                raise CheckpointError(f"{filename}: {bad} holds NaN or Inf")
        history = [_record(r) for r in manifest["history"]]
        number = int(manifest["round"])
    except CheckpointError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:  # missing files, bad JSON, a bad header
        raise CheckpointError(f"{type(exc).__name__}: {exc}") from None
    return Checkpoint(
        folder,
        number,
        weights,
        history,
        manifest.get("workflow"),
        arrays,
        dict(manifest.get("workflow_meta") or {}),
        spawned=_names(manifest.get("spawned")),
    )


def _workflow_state(workflow: Any) -> tuple[str | None, dict[str, np.ndarray], dict[str, Any]]:
    """(name, arrays, other state) of a workflow that keeps state across rounds (:class:`~nbfl.workflows.base.Stateful`)."""
    if workflow is None:
        return None, {}, {}
    arrays, meta = workflow.state() if isinstance(workflow, Stateful) else ({}, {})
    return workflow.name, {k: np.ascontiguousarray(v) for k, v in arrays.items()}, meta


def _folders(directory: Path) -> list[Path]:
    """Checkpoint folders, newest first."""
    found = [(int(m.group(1)), p) for p in directory.iterdir() if p.is_dir() and (m := FOLDER.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def _record_json(record: RoundRecord) -> dict[str, Any]:
    return {**dataclasses.asdict(record), "status": str(record.status)}


def _record(data: dict[str, Any]) -> RoundRecord:
    data = dict(data)
    data["status"] = RoundStatus(data["status"])
    data["traffic"] = tuple(data.get("traffic", (0, 0)))
    return RoundRecord(**data)


def _names(value: Any) -> list[str]:
    """The spawned clients' names a manifest lists; none where it lists none (a checkpoint
    written before they were recorded) or something else: they only inform a message."""
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _plain(value: Any) -> Any:
    """JSON for what a round's notes may hold: numpy scalars and arrays."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    """Flush a file's (or a folder's entries') data to disk, so a rename never exposes an empty file."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
