"""Soak: 100 clients, 300 FedAvg rounds of a small model; the controller's memory must stay flat.

The controller runs in this process, so the RSS printed is the controller's alone (VmRSS
from /proc/self/status, read right after ``gc.collect()`` and before anything else is
measured). The clients are real ``nbfl.Client`` objects, each with its own DEALER socket
to the controller's ROUTER over TCP on 127.0.0.1, hosted in ``--hosts`` separate
processes (two by default, 50 clients each, rather than 100 interpreters on a 2-core
machine). Each client's task returns the weights it received plus 1 with
``num_samples=1``, so after round r every parameter of the global model is exactly r:
a lost or doubled update shows there too.

The rounds go in windows (round 1, then to 50, then every 50 to 300), each window one
``controller.run(...)`` (``--run-length 1`` makes every round its own run, as
``%fl_round 1`` does). After each window it prints the RSS, its growth since the
reference round (50), the size of ``controller.history`` (the only thing allowed to
grow: each record is measured once, when it is made), the RSS growth less the history's,
and the window's rounds per second (measuring between windows is not timed). Lost
results: for every round, the clients asked minus the results used (``record.clients``),
plus joined clients that were not asked, plus any entry of ``record.failed``; all 0.

``--drop-history`` clears ``controller.history`` after each window (a control: whatever
grows then is not the history). ``--trace`` starts tracemalloc after the reference
round and lists, at the end, the allocations made since that are still alive; tracing
slows rounds severalfold and its own memory is in the RSS, so then only lost results
are judged.

Exits 1 if the RSS less the history's growth grows 5% or more from the reference round
to the last (the history is what must grow: one record per round, with an entry per
client that answered), if any result was lost, or if the model is not exactly the number
of rounds. It prints the plain RSS growth too, and what a round's record costs. With
``--drop-history`` the RSS itself must stay flat.

    python benchmarks/soak.py                                       # 100 clients, 300 rounds (about 40 s)
    python benchmarks/soak.py --clients 10 --rounds 40 --every 10   # quicker
"""

from __future__ import annotations

import argparse
import enum
import gc
import logging
import os
import subprocess
import sys
import time
import tracemalloc
import types

import numpy as np

HB_INTERVAL, HB_TIMEOUT = 1.0, 60.0  # room for a loaded 2-core machine: nobody is called lost for a slow beat


def model(params: int) -> dict[str, np.ndarray]:
    sizes = [params // 4] * 3
    sizes.append(params - sum(sizes))
    return {f"layer{i}.weight": np.zeros(n, np.float32) for i, n in enumerate(sizes)}


def rss_mib(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


SHARED = (str, type, types.ModuleType, types.FunctionType, enum.Enum)


def deep_size(root: object) -> int:
    """Bytes of ``root`` and what it reaches, less what a record shares with the rest of the
    controller: strings (client names are the registry's), classes, modules, enum members."""
    seen: set[int] = set()
    stack, total = [root], 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, SHARED):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        stack.extend(gc.get_referents(obj))
    return total


# -- the processes hosting the clients -------------------------------------------------
def host(endpoint: str, first: int, count: int) -> None:
    import nbfl

    def train(weights):
        return nbfl.Update({k: v + 1 for k, v in weights.items()}, num_samples=1)

    clients = []
    for i in range(first, first + count):
        client = nbfl.Client(
            endpoint,
            f"soak-{i:03d}",
            tasks={"train": train},
            heartbeat_interval=HB_INTERVAL,
            heartbeat_timeout=HB_TIMEOUT,
        )
        clients.append(client.start(wait=120))
    print(f"joined {count}", flush=True)
    sys.stdin.read()  # until the controller closes our stdin
    for client in clients:
        client.stop()


# -- the controller ----------------------------------------------------------------------
class Rounds:
    """Per-round bookkeeping on the run's thread; counters, so it does not grow itself."""

    def __init__(self, clients: int):
        self.clients = clients
        self.asked = 0  # in the round going on, from on_progress
        self.not_used = 0  # asked, but no result in record.clients
        self.not_asked = 0  # joined, but not asked (lost before the round)
        self.failed = 0  # entries of record.failed
        self.bad_rounds = 0  # rounds that did not end "ok"
        self.examples: list[str] = []  # the first few rounds with a loss, for the report
        self.history_bytes = 0  # the records made so far, each measured once
        self.parts = {"clients": 0, "traffic": 0}  # of that, the two per-client dicts

    def on_progress(self, answered: int, asked: int) -> None:
        self.asked = asked

    def on_round(self, record) -> None:  # type: ignore[no-untyped-def]
        used, failed = len(record.clients), len(record.failed)
        self.not_used += self.asked - used
        self.not_asked += self.clients - self.asked
        self.failed += failed
        self.bad_rounds += not record.ok
        if (self.asked != used or self.asked != self.clients or failed or not record.ok) and len(self.examples) < 5:
            self.examples.append(
                f"round {record.round}: {record.status}, asked {self.asked}, used {used}, "
                f"failed {dict(list(record.failed.items())[:3])} {record.reason}"
            )
        self.history_bytes += deep_size(record)
        for part in self.parts:
            self.parts[part] += deep_size(getattr(record, part))

    @property
    def lost(self) -> int:
        return self.not_used + self.not_asked + self.failed


def checkpoints(rounds: int, every: int) -> list[int]:
    return sorted({1, *range(every, rounds + 1, every), rounds})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument(
        "--every", type=int, default=50, help="rounds per measured window; the first window's end is the reference"
    )
    parser.add_argument("--hosts", type=int, default=2, help="processes hosting the clients")
    parser.add_argument("--params", type=int, default=10_000, help="float32 parameters of the model")
    parser.add_argument("--run-length", type=int, default=0, help="rounds per controller.run() (0: one run per window)")
    parser.add_argument("--round-timeout", type=float, default=120.0)
    parser.add_argument(
        "--drop-history", action="store_true", help="clear controller.history after each window (a control)"
    )
    parser.add_argument("--trace", action="store_true", help="tracemalloc from the reference round on (slow)")
    parser.add_argument("--top", type=int, default=12, help="allocation sites to list with --trace")
    args = parser.parse_args()
    if args.rounds < args.every or args.every < 2:
        parser.error("--rounds must be at least --every, and --every at least 2")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")  # nbfl's warnings, timed

    import nbfl

    marks = checkpoints(args.rounds, args.every)
    reference = marks[1]
    tally = Rounds(args.clients)
    started = time.perf_counter()
    ctl = nbfl.Controller(
        "tcp://127.0.0.1:0", model(args.params), heartbeat_interval=HB_INTERVAL, heartbeat_timeout=HB_TIMEOUT
    )
    per_host = [args.clients // args.hosts + (i < args.clients % args.hosts) for i in range(args.hosts)]
    firsts = [sum(per_host[:i]) for i in range(args.hosts)]
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "host", ctl.endpoint, str(first), str(n)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for first, n in zip(firsts, per_host)
        if n
    ]
    status = 1
    try:
        for proc in procs:
            line = proc.stdout.readline() if proc.stdout else ""
            if not line.startswith("joined"):
                raise RuntimeError(f"a client host did not join: {line!r} (exit {proc.poll()})")
        ctl.wait_for_clients(args.clients, timeout=120)
        print(
            f"{args.clients} nbfl.Client objects in {len(procs)} processes, one DEALER socket each, joined "
            f"{ctl.endpoint} in {time.perf_counter() - started:.1f} s; model: {args.params:,} float32 parameters; "
            f"FedAvg, {args.rounds} rounds" + (", history cleared after each window" if args.drop_history else ""),
            flush=True,
        )
        print(
            f"{'round':>5} {'RSS MiB':>8} {'vs ' + str(reference):>7} {'history MiB':>11} "
            f"{'RSS-history vs ' + str(reference):>19} {'rounds/s':>8} {'hosts RSS MiB':>13} {'lost':>4}",
            flush=True,
        )
        rows: dict[int, dict] = {}
        done = previous = dropped = 0  # rounds run; at the last mark; history bytes cleared by --drop-history
        for mark in marks:
            t0 = time.perf_counter()
            while done < mark:
                n = min(mark - done, args.run_length or mark - done)
                ctl.run(
                    n,
                    min_clients=args.clients,
                    timeout=args.round_timeout,
                    on_round=tally.on_round,
                    on_progress=tally.on_progress,
                )
                done += n
            seconds = time.perf_counter() - t0
            gc.collect()
            rss = rss_mib()  # first, before anything else this process does can move it
            hist = (tally.history_bytes - dropped) / 2**20
            rows[mark] = row = {"rss": rss, "hist": hist, "seconds": seconds, "rounds": mark - previous}
            previous = mark
            ref = rows.get(reference)
            vs = f"{100 * (rss - ref['rss']) / ref['rss']:+.1f}%" if ref else ""
            vs_hist = f"{100 * (rss - ref['rss'] - (hist - ref['hist'])) / ref['rss']:+.1f}%" if ref else ""
            hosts = sum(rss_mib(p.pid) for p in procs)
            print(
                f"{mark:>5} {rss:>8.1f} {vs:>7} {hist:>11.2f} {vs_hist:>19} {row['rounds'] / seconds:>8.1f} "
                f"{hosts:>13.0f} {tally.lost:>4}",
                flush=True,
            )
            if args.drop_history and mark >= reference:
                ctl.history.clear()
                dropped = tally.history_bytes
            if mark == reference and args.trace:
                tracemalloc.start(1)
                before = tracemalloc.take_snapshot()
        last, ref = rows[marks[-1]], rows[reference]
        growth = (last["rss"] - ref["rss"]) / ref["rss"]
        hist_growth = last["hist"] - ref["hist"]
        exact = all(np.all(a == float(args.rounds)) for a in ctl.weights.values())
        run_s = sum(r["seconds"] for r in rows.values())
        per_round = tally.history_bytes / args.rounds / 1024
        print(
            f"\ncontroller RSS: {ref['rss']:.1f} MiB at round {reference}, {last['rss']:.1f} MiB at round {marks[-1]}: "
            f"{100 * growth:+.1f}%; the history grew {hist_growth:.2f} MiB of it, the rest "
            f"{100 * (last['rss'] - ref['rss'] - hist_growth) / ref['rss']:+.1f}% (limit +5%"
            f"{' on the RSS itself, the history being cleared' if args.drop_history else ''})"
        )
        print(
            f"history: {per_round:.1f} KiB a round ({1024 * per_round / args.clients:.0f} bytes a client), of which "
            f"record.clients {tally.parts['clients'] / args.rounds / 1024:.1f} KiB and record.traffic "
            f"{tally.parts['traffic'] / args.rounds / 1024:.1f} KiB"
        )
        print(
            f"rounds/s over all {args.rounds} rounds: {args.rounds / run_s:.1f} ({run_s:.0f} s of rounds, "
            f"{time.perf_counter() - started:.0f} s in all)"
        )
        print(
            f"lost results: {tally.lost} (asked but not used {tally.not_used}, not asked {tally.not_asked}, failed "
            f"{tally.failed}); rounds not ok: {tally.bad_rounds}"
        )
        for example in tally.examples:
            print("  " + example)
        print(f"global model after {args.rounds} rounds: every parameter == {args.rounds}: {exact}")
        growth_less_history = (last["rss"] - ref["rss"] - hist_growth) / ref["rss"]
        memory_ok = (growth if args.drop_history else growth_less_history) < 0.05
        if args.trace:
            after = tracemalloc.take_snapshot()
            print(f"tracemalloc's own memory at the end: {tracemalloc.get_tracemalloc_memory() / 2**20:.1f} MiB")
            tracemalloc.stop()
            report_trace(before, after, args.top, hist_growth)
            memory_ok = True  # tracing moves the RSS: not judged
        status = 0 if memory_ok and tally.lost == 0 and tally.bad_rounds == 0 and exact else 1
        verdict = "PASS" if status == 0 else "FAIL"
        print(f"\n{verdict}" + (" (RSS not judged under --trace)" if args.trace else ""), flush=True)
    finally:
        ctl.close()  # says bye: the clients leave by themselves
        for proc in procs:
            if proc.stdin:
                proc.stdin.close()
        for proc in procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
    return status


def report_trace(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, top: int, hist_mib: float) -> None:
    """What was allocated after the reference round and is still alive, by line.

    A line is where a block was first allocated: dicts, lists, tuples and floats come
    back from CPython's free lists under the line that made them first, so a history
    dict may be counted under a line that built a message. The total is exact.
    """
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
    stats = after.filter_traces(ignore).compare_to(before.filter_traces(ignore), "lineno")
    grown = sum(s.size_diff for s in stats)
    print(
        f"\ntracemalloc: {grown / 2**20:+.2f} MiB in {sum(s.count_diff for s in stats):+,} blocks allocated since the "
        f"reference round are alive (the history grew {hist_mib:.2f} MiB); the top {top} lines (first allocation "
        f"sites; free lists reuse blocks across lines):"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
    for s in stats[:top]:
        frame = s.traceback[0]
        where = f"{frame.filename.replace(root, '')}:{frame.lineno}"
        print(f"  {s.size_diff / 1024:>+9.1f} KiB {s.count_diff:>+8,} blocks  {where}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "host":
        host(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit(main())
