"""Seconds per FedAvg round with CurveZMQ and with homomorphic encryption, beside plain.

One controller and ``--clients`` clients on 127.0.0.1 (in this process, each with its
own socket and threads) echo a float32 model of ``--params`` parameters back, plus a
small change, for ``--rounds`` timed rounds after one warm-up round. Configurations:

* ``plain``: loopback without encryption, the baseline measured in the same run;
* ``curve``: startup kits from ``nbfl.transport.provision``, every connection CurveZMQ;
* ``he``: CKKS (TenSEAL): clients encrypt their models, the controller adds ciphertexts.

Each configuration runs ``--repeat`` times, interleaved; the table gives the median
seconds per round and the ratio to plain's median.

    python benchmarks/security_overhead.py                       # 1M parameters, 4 clients
    python benchmarks/security_overhead.py --params 100000 --repeat 1
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

import nbfl
from nbfl.transport.provision import provision


def echo(weights, ctx):
    return nbfl.Update({k: v + np.float32(0.001) for k, v in weights.items()}, num_samples=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def model(params: int) -> dict[str, np.ndarray]:
    half = params // 2
    return {"layer0.weight": np.full(half, 0.5, np.float32), "layer1.weight": np.full(params - half, 0.5, np.float32)}


def run(
    config: str, params: int, clients: int, rounds: int, kits: dict[str, Path], he: tuple[bytes, bytes] | None
) -> float:
    """Median seconds per round of one fresh federation in ``config``."""
    names = [f"site-{i + 1}" for i in range(clients)]
    ctl_args: dict = {"kit": kits["controller"]} if config == "curve" else {"endpoint": "tcp://127.0.0.1:0"}
    ctl = nbfl.Controller(weights=model(params), **ctl_args)
    members = []
    try:
        for name in names:
            kwargs: dict = {"tasks": {"train": echo}}
            if config == "curve":
                kwargs["kit"] = kits[name]
            else:
                kwargs.update(endpoint=ctl.endpoint, name=name)
            if config == "he":
                from nbfl.filters.he import HEDecrypt, HEEncrypt

                kwargs.update(filters=[HEEncrypt(he[1])], task_filters=[HEDecrypt(he[1])])
            members.append(nbfl.Client(**kwargs).start())
        ctl.wait_for_clients(clients)
        workflow = None
        if config == "he":
            from nbfl.workflows.he_fedavg import HEFedAvg

            workflow = HEFedAvg(he[0])
        times = []
        for record in ctl.run(rounds + 1, workflow, min_clients=clients, timeout=600):
            assert record.ok, record
            times.append(record.seconds)
        return statistics.median(times[2:] if config == "he" else times[1:])  # HE's round 1 is plaintext
    finally:
        for member in members:
            member.stop()
        ctl.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--configs", nargs="+", default=["plain", "curve", "he"], choices=["plain", "curve", "he"])
    args = parser.parse_args()
    he = None
    if "he" in args.configs:
        from nbfl.protocol.he import new_contexts

        he = new_contexts()
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project.toml"
        names = ", ".join(f'"site-{i + 1}"' for i in range(args.clients))
        project.write_text(f'name = "bench"\nhost = "127.0.0.1"\nport = {free_port()}\nclients = [{names}]\n')
        kits = provision(project, Path(tmp) / "kits")
        medians: dict[str, list[float]] = {c: [] for c in args.configs}
        for _ in range(args.repeat):  # interleaved, so drift on a shared machine hits all alike
            for config in args.configs:
                medians[config].append(run(config, args.params, args.clients, args.rounds, kits, he))
    base = statistics.median(medians["plain"]) if "plain" in medians else float("nan")
    print(
        f"{args.params:,} float32 parameters, {args.clients} clients, median of {args.repeat} runs "
        f"x {args.rounds} rounds"
    )
    print(f"{'config':>6} {'s/round':>8} {'ratio':>6}")
    for config, values in medians.items():
        med = statistics.median(values)
        print(f"{config:>6} {med:>8.3f} {med / base:>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
