"""A hostile room, measured: each attack on a workshop controller beside the rounds it slows.

For each attack a fresh workshop controller on 127.0.0.1 trains with 3 honest in-process
participants: rounds a second for ``--seconds`` before the attack, then for as long again
while it goes on. The attacker runs in a process of its own (as on a laptop of its own;
on this 2-core machine it still takes CPU from the controller) from 127.0.0.66. The table
shows the process's peak RSS over both, what the instructor sees (``Controller.defense()``:
messages and joins refused, connections closed, participants dropped, the top address)
and the results the rounds rejected. Then the cost of the protections on honest rounds:
``round_overhead.py`` beside its raw ZeroMQ baseline at 1M, 10M and 50M parameters, in
the same run.

    python benchmarks/hostile.py                  # about 8 minutes
    python benchmarks/hostile.py --seconds 2 --skip-overhead
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the attacks are the tests' (tests/hostile.py)
os.environ.setdefault("NBFL_KEYS", tempfile.mkdtemp(prefix="nbfl-bench-keys-"))  # not the user's own key folder

import nbfl  # noqa: E402

import hostile  # noqa: E402
from hostile import Insider, PeakRSS, Room, open_room  # noqa: E402


# -- attacks, each in a process of its own until ``stop`` is set ------------------------
def no_read_flood(code: nbfl.JoinCode, stop) -> None:
    hostile.flood(hostile.stranger(code), 20_000)  # the burst, queued at once ...
    fast = hostile.stranger(code, queue_all=False)
    while not stop.is_set():  # ... then as fast as the link takes, reading nothing
        hostile.flood(fast, 1000, drop=True)


def reading_flood(code: nbfl.JoinCode, stop) -> None:
    sock = hostile.stranger(code, queue_all=False)
    beat = hostile.heartbeat()
    while not stop.is_set():
        hostile.flood(sock, 200, beat, drop=True)
        while sock.poll(0):
            sock.recv_multipart()


def insider(answer: str, name: str, code: nbfl.JoinCode, stop, chatter: bool = False) -> None:
    participant = Insider(code, name, answer=getattr(hostile, answer))
    if chatter:
        participant.chatter = hostile.heartbeat()
    stop.wait()
    participant.close()


def huge_frames_before_handshake(code: nbfl.JoinCode, stop) -> None:
    while not stop.is_set():
        hostile.greeting_then_huge_frame(code.host, code.port)


def big_frames_after_handshake(code: nbfl.JoinCode, stop) -> None:
    while not stop.is_set():
        hostile.big_frame(code, 256 << 20)


def join_flood(code: nbfl.JoinCode, stop) -> None:
    sock = hostile.stranger(code, queue_all=False)
    wrong = hostile.join_with("not-the-token", "mallory")
    while not stop.wait(0.02):  # 500 joins a second
        hostile.flood(sock, 10, wrong, drop=True)


def idle_connections(code: nbfl.JoinCode, stop) -> None:
    proc = hostile.connection_flood(code, 600)
    stop.wait()
    proc.kill()
    proc.wait()


ATTACKS: list[tuple[str, Callable]] = [
    ("20k 8-byte messages never read, then a steady flood (stranger)", no_read_flood),
    ("heartbeats as fast as possible, replies read (stranger)", reading_flood),
    (
        "heartbeats as fast as possible (participant with the token)",
        functools.partial(insider, "unchanged", "chatty", chatter=True),
    ),
    ("frames declared as 4 GiB before the handshake", huge_frames_before_handshake),
    ("256 MiB frames after the handshake (stranger)", big_frames_after_handshake),
    ("500 joins a second with a wrong token", join_flood),
    ("600 connections that never join", idle_connections),
    ("int8 results that claim float64 (participant)", functools.partial(insider, "claims_float64", "inflater")),
    ("30,000 metric keys in each result (participant)", functools.partial(insider, "bloated_metrics", "bloater")),
    ("1e300 steps in each result (participant)", functools.partial(insider, "huge_steps", "mallory")),
]


# -- measuring -------------------------------------------------------------------------
def rate(room: Room, seconds: float) -> tuple[float, list]:
    """Rounds a second over ``seconds`` of one-round runs, and their records."""
    records = []
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        records += room.rounds(1)[0]
    return len(records) / (time.perf_counter() - started), records


def seen(before: dict, after: dict, records: list) -> str:
    keys = ("refused_messages", "refused_joins", "closed_connections", "ended_unjoined", "dropped_peers")
    moved = {k: after[k] - before[k] for k in keys}
    parts = [
        f"{moved['refused_messages']} msgs",
        f"{moved['refused_joins']} joins",
        f"{moved['closed_connections']} closed",
        f"{moved['ended_unjoined']} ended",
        f"{moved['dropped_peers']} dropped",
    ]
    top = f"; top {after['top'][0][0]}" if after["top"] and any(moved.values()) else ""
    rejected = Counter(
        name for r in records for name, why in r.failed.items() if "rejected" in why or "could not" in why
    )
    shown = "; rejected " + ", ".join(f"{name} x{n}" for name, n in rejected.items()) if rejected else ""
    return ", ".join(parts) + top + shown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds of rounds before and during each attack")
    parser.add_argument("--skip-overhead", action="store_true", help="leave out round_overhead.py's comparison")
    args = parser.parse_args()
    spawn = multiprocessing.get_context("spawn")
    print(
        "a workshop controller, 3 honest participants (in-process), a 1,000-parameter model; attacker on "
        f"{hostile.ATTACKER} in a process of its own; {args.seconds:g} s of rounds before and during each attack"
    )
    print(
        f"{'attack':<64} {'before/s':>8} {'during/s':>8} {'ratio':>5} {'failed':>6} {'peak RSS MiB':>12}  "
        "instructor sees (counts during the attack)"
    )
    for name, attack in ATTACKS:
        room = open_room()
        try:
            room.rounds(3)
            with PeakRSS() as peak:
                before, _ = rate(room, args.seconds)
                counts = room.controller.defense()
                stop = spawn.Event()
                attacker = spawn.Process(target=attack, args=(room.code, stop), daemon=True)
                attacker.start()
                time.sleep(2.0)  # it starts (imports nbfl) and gets going
                during, records = rate(room, args.seconds)
                stop.set()
                attacker.join(30)
                alive = room.controller.io.is_alive()
            failed = sum(r.status != "ok" for r in records)
            print(
                f"{name:<64} {before:>8.1f} {during:>8.1f} {during / before:>5.2f} {failed:>6} {peak.peak:>12.0f}  "
                f"{seen(counts, room.controller.defense(), records)}{'' if alive else '; IO THREAD DEAD'}",
                flush=True,
            )
        finally:
            room.close()
    if not args.skip_overhead:
        print(
            "\nthe protections' cost on honest rounds: round_overhead.py (8 client processes, raw ZeroMQ baseline, same run)"
        )
        subprocess.run([sys.executable, str(HERE / "round_overhead.py")], check=True)


if __name__ == "__main__":
    main()
