"""Checkpoints: written whole or not at all, read back with their checksums checked, and a
controller that resumes from one carries on as if it had never stopped."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nbfl
from nbfl.controller import checkpoint
from nbfl.protocol.records import RoundRecord, RoundStatus
from nbfl.workflows import FedOpt

from helpers import free_port

NBFL = [sys.executable, "-m", "nbfl"]


def history(n: int) -> list[RoundRecord]:
    return [
        RoundRecord(
            i,
            "fedopt",
            RoundStatus.OK,
            metrics={"accuracy": i / 10},
            clients={"a": {"seconds": 0.1}},
            failed={"b": "ValueError: x"} if i == 2 else {},
            traffic=(10, 20),
            notes={"order": ["a"]},
        )
        for i in range(1, n + 1)
    ]


def test_a_checkpoint_reads_back_what_was_written_with_the_workflow_state(tmp_path):
    weights = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "steps": np.array([3], np.int64)}
    workflow = FedOpt("adam")
    workflow.optimizer.step({"w": weights["w"]}, {"w": weights["w"] + 1})  # some moments to keep
    checkpoint.save(tmp_path, weights, history(3), workflow)
    saved = checkpoint.latest(tmp_path)
    assert saved.round == 3 and saved.path.name == "round-000003" and not saved.skipped
    assert all(np.array_equal(saved.weights[k], v) and saved.weights[k].dtype == v.dtype for k, v in weights.items())
    assert saved.history == history(3)
    restored = FedOpt("adam")
    restored.load_state(saved.workflow_arrays, saved.workflow_meta)
    assert restored.optimizer.steps == 1
    for key in ("m", "v"):
        np.testing.assert_array_equal(restored.optimizer.state["w"][key], workflow.optimizer.state["w"][key])


@pytest.mark.parametrize("damage", ["truncate model", "truncate manifest", "remove model", "flip a byte"])
def test_a_damaged_checkpoint_is_reported_and_the_previous_one_used(tmp_path, damage):
    for n in (1, 2):
        checkpoint.save(tmp_path, {"w": np.full(4, n, np.float32)}, history(n))
    newest = tmp_path / "round-000002"
    model, manifest = newest / checkpoint.MODEL, newest / checkpoint.MANIFEST
    if damage == "truncate model":  # a crash while the file was written
        model.write_bytes(model.read_bytes()[:-7])
    elif damage == "truncate manifest":
        manifest.write_text(manifest.read_text()[:40])
    elif damage == "remove model":
        model.unlink()
    else:
        data = bytearray(model.read_bytes())
        data[-1] ^= 0xFF
        model.write_bytes(bytes(data))
    saved = checkpoint.latest(tmp_path)
    assert saved.round == 1 and saved.weights["w"][0] == 1
    assert len(saved.skipped) == 1 and saved.skipped[0].startswith("round-000002")


def test_half_written_folders_are_ignored_and_only_the_last_two_kept(tmp_path):
    for n in (1, 2, 3):
        checkpoint.save(tmp_path, {"w": np.full(2, n, np.float32)}, history(n))
    (tmp_path / ".writing-crashed").mkdir()  # what a crash before the rename leaves
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["round-000002", "round-000003"]
    assert checkpoint.latest(tmp_path).round == 3
    with pytest.raises(checkpoint.CheckpointError, match="no usable checkpoint"):
        checkpoint.latest(tmp_path / ".writing-crashed")


def shifter(name: str):
    """A client whose update depends only on the round and its name: runs are reproducible."""
    offset = {"a": 1.0, "b": 3.0}[name]

    @nbfl.task("train")
    def train(weights, ctx):
        return nbfl.Update({k: v + offset * ctx.round for k, v in weights.items()}, num_samples=1 + int(offset))

    return {"train": train}


def test_a_resumed_controller_carries_on_as_if_it_never_stopped(tmp_path, controller_factory, client_factory):
    start = {"w": np.zeros(5, np.float32)}

    def federation(weights, **kwargs):
        ctl = controller_factory(weights, **kwargs)
        for name in ("a", "b"):
            client_factory(ctl.endpoint, name, tasks=shifter(name))
        return ctl

    straight = federation(dict(start))
    straight.run(5, FedOpt("sgd", lr=1.0, momentum=0.6), min_clients=2, timeout=60)

    first = federation(dict(start), checkpoint_dir=tmp_path)
    first.run(3, FedOpt("sgd", lr=1.0, momentum=0.6), min_clients=2, timeout=60)
    first.close()
    second = federation(None, resume=tmp_path)
    assert second.resumed.round == 3 and len(second.history) == 3
    records = second.run(2, FedOpt("sgd", lr=1.0, momentum=0.6), min_clients=2, timeout=60)
    assert [r.round for r in records] == [4, 5]  # numbering, and so the clients' updates, carry on
    np.testing.assert_allclose(second.weights["w"], straight.weights["w"], rtol=1e-6)
    assert checkpoint.latest(tmp_path).round == 5


def controller(port: int, folder: Path, *more: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*NBFL, "controller", "--port", str(port), "--min-clients", "2", "--rounds", "12", *more],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def federation_run(tmp_path: Path, name: str, kill_after: int | None) -> Path:
    """12 FedAvg rounds of 2 client processes on digits from the command line, the
    controller SIGKILLed after round ``kill_after`` and started again with --resume;
    the clients are never restarted. Returns the checkpoint folder."""
    port, folder = free_port(), tmp_path / name
    ctl = controller(port, folder, "--checkpoint-dir", str(folder))
    clients = [
        subprocess.Popen(
            [
                *NBFL,
                "client",
                f"tcp://127.0.0.1:{port}",
                "--name",
                f"site-{i}",
                "--index",
                str(i),
                "--num-clients",
                "2",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i in range(2)
    ]
    try:
        if kill_after is not None:
            for line in ctl.stdout:
                if re.match(rf"^\s+{kill_after}\s", line):
                    break
            ctl.send_signal(signal.SIGKILL)  # no goodbye: the clients only stop hearing from it
            ctl.wait(30)
            ctl = controller(port, folder, "--resume", str(folder))
        out, _ = ctl.communicate(timeout=600)
        assert ctl.returncode == 0, out
        if kill_after is not None:
            assert f"resumed from {folder / f'round-{kill_after:06d}'}: {kill_after} rounds done" in out, out
            rounds = [int(m) for m in re.findall(r"^\s+(\d+)\s+0\.\d+", out, re.M)]
            assert rounds == list(range(kill_after + 1, 13)), out  # rounds 8 to 12, after the same clients rejoined
        assert [c.wait(120) for c in clients] == [0, 0]
    finally:
        for proc in [ctl, *clients]:
            if proc.poll() is None:
                proc.kill()
    return folder


def test_a_controller_killed_after_round_7_resumes_and_ends_where_an_unbroken_run_does(tmp_path):
    unbroken = checkpoint.latest(federation_run(tmp_path, "unbroken", kill_after=None))
    resumed = checkpoint.latest(federation_run(tmp_path, "resumed", kill_after=7))
    assert unbroken.round == resumed.round == 12
    assert [r.round for r in resumed.history] == list(range(1, 13)) and all(r.ok for r in resumed.history)
    for name, value in unbroken.weights.items():
        np.testing.assert_allclose(resumed.weights[name], value, rtol=1e-4, atol=1e-6)


def test_a_restarted_workshop_is_the_same_one_and_its_participants_rejoin_by_themselves(tmp_path, client_factory):
    from nbfl.controller.workshop import Workshop
    from nbfl.participant.setup import LocalSetup
    from nbfl.participant.tasks import FunctionExecutor

    fast = {"heartbeat_interval": 0.1, "heartbeat_timeout": 2.0}
    first = nbfl.Controller(
        weights={"w": np.zeros(3, np.float32)}, workshop=Workshop(host="127.0.0.1"), checkpoint_dir=tmp_path, **fast
    )
    line = str(first.join_code)
    for name in ("a", "b"):
        client_factory(line, name, tasks=shifter(name))
    sharing = client_factory(line, "c", from_share=lambda share: LocalSetup(FunctionExecutor(shifter("a")), samples=7))
    first.run(1, min_clients=3, timeout=60)
    assert oct((tmp_path / "workshop.json").stat().st_mode & 0o777) == "0o600"  # it holds the controller's secret key
    first.io.stop()  # the kernel died: no goodbye
    port = first.endpoint.rsplit(":", 1)[1]
    second = nbfl.Controller(f"tcp://0.0.0.0:{port}", workshop=Workshop(host="127.0.0.1"), resume=tmp_path, **fast)
    try:
        assert str(second.join_code) == line  # the same key and token: the line on the projector still works
        records = second.run(1, min_clients=3, timeout=60, join_timeout=120)
        assert records[0].ok and sorted(records[0].clients) == ["a", "b", "c"] and records[0].round == 2
        [c] = [info for info in second.clients if info.name == "c"]  # it kept its share, and said so again
        assert c.share == str(sharing.share) and c.samples == 7
    finally:
        second.close()
        first.close()
