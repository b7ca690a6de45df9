"""Does training run on this machine's GPUs? One short check, for a machine with CUDA.

Two parts, 3 FedAvg rounds each, a controller in this process:

1. two ``%fl_spawn``-style client processes with the built-in digits trainer, placed
   round-robin on the GPUs (``spawn_clients(..., gpus=[...])``);
2. two clients running the seed's SimpleTrainer (NVIDIA FLARE's hello-pt CIFAR-10
   trainer, tests/seed, only its imports changed) on generated CIFAR-10 files, which
   train on ``cuda:0`` when there is one.

It passes when every client's device in the controller's table is a ``cuda`` device and,
in both parts, the global model's test accuracy after the last round is above the
untrained model's. Without a GPU it runs the same on
the CPU ("CPU mode") and checks for ``cpu`` devices instead, so the script itself is
tested everywhere.

    bash scripts/gpu_check.sh
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the seed's trainer and the CIFAR-10 file writer live with the tests

import nbfl  # noqa: E402
from nbfl.data import load_digits_split  # noqa: E402
from nbfl.data.vision import CIFAR10, Compose, Normalize, ToTensor  # noqa: E402
from nbfl.launch.spawn import spawn_clients, stop_clients  # noqa: E402
from nbfl.participant.models import DigitsMLP  # noqa: E402
from nbfl.participant.trainers import evaluator  # noqa: E402
from nbfl.protocol.torch_adapter import get_weights  # noqa: E402

ROUNDS = 3


def report(part: str, ctl: nbfl.Controller, untrained: float, records: list, want: str) -> bool:
    devices = {c.name: c.device for c in ctl.clients}
    last = records[-1].metrics["accuracy"]
    ok = all(r.ok for r in records) and all(d.startswith(want) for d in devices.values()) and last > untrained
    print(
        f"{part}: devices {devices}; accuracy {untrained:.4f} untrained -> {last:.4f} after {len(records)} rounds: "
        f"{'ok' if ok else 'FAILED'}",
        flush=True,
    )
    return ok


def built_in(gpus: list[int] | None, want: str) -> bool:
    torch.manual_seed(0)
    model = DigitsMLP()
    _, _, x_test, y_test = load_digits_split()
    evaluate = evaluator(model, x_test, y_test)
    untrained = evaluate(get_weights(model))["accuracy"]
    with nbfl.Controller("tcp://127.0.0.1:0", get_weights(model), evaluate=evaluate) as ctl:
        procs = spawn_clients(ctl.endpoint, 2, partition="iid", gpus=gpus)
        try:
            ctl.wait_for_clients(2, timeout=180)
            records = ctl.run(ROUNDS, min_clients=2, timeout=300)
        finally:
            ctl.close()
            stop_clients(procs)
    return report("built-in trainer", ctl, untrained, records, want)


def seed_trainer(want: str) -> bool:
    from cifar_files import write_cifar10_binary
    from seed.simple_network import SimpleNetwork
    from seed.simple_trainer import SimpleTrainer

    home = tempfile.mkdtemp(prefix="nbfl-gpu-check-")
    write_cifar10_binary(Path(home) / "data", per_file=200)
    os.environ["HOME"] = home  # the seed's trainer reads CIFAR-10 from ~/data, as it was written
    test = CIFAR10(
        str(Path(home) / "data"), train=False, transform=Compose([ToTensor(), Normalize((0.5,) * 3, (0.5,) * 3)])
    )
    x_test = torch.stack([test[i][0] for i in range(len(test))]).numpy()
    y_test = torch.tensor([test[i][1] for i in range(len(test))]).numpy()
    torch.manual_seed(0)
    network = SimpleNetwork()
    evaluate = evaluator(network, x_test, y_test)
    untrained = evaluate(get_weights(network))["accuracy"]
    with nbfl.Controller("tcp://127.0.0.1:0", get_weights(network), evaluate=evaluate) as ctl:
        clients = []
        for i in range(2):
            trainer = SimpleTrainer(lr=0.003, epochs=1)  # hello-pt's 0.01 oscillates on these small files
            clients.append(nbfl.Client(ctl.endpoint, f"seed-{i + 1}", trainer, device=str(trainer.device)).start())
        try:
            records = ctl.run(ROUNDS, min_clients=2, timeout=300)
        finally:
            for client in clients:
                client.stop()
    return report("seed SimpleTrainer", ctl, untrained, records, want)


def main() -> int:
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        print(f"CUDA mode: {count} GPU(s): {', '.join(torch.cuda.get_device_name(i) for i in range(count))}")
        gpus, want = list(range(count)), "cuda"
    else:
        print(f"CPU mode: torch {torch.__version__} sees no CUDA GPU here; the same check runs on the CPU")
        gpus, want = None, "cpu"
    ok = built_in(gpus, want) & seed_trainer(want)
    print("gpu check passed" if ok else "gpu check FAILED", f"({'CUDA' if want == 'cuda' else 'CPU'} mode)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
