"""Many workshop participants in one process, each a real nbfl.Client on its own socket.

    python participants.py "%fl_join nbfl://... --name YOUR_NAME --accept-code" alice bob ...

Each participant joins with only the pasted line and a name, as in a notebook: the code
is the word after ``%fl_join``; the built-in trainer waits for the share the controller
assigns. One process hosts them all (a classroom of thirty processes would need thirty
copies of torch). It prints one line per participant when it has joined or was refused,
and leaves when its standard input closes. A name ending in ``!`` (``carol!``) joins as
``carol`` and fails every task, as a laptop with a broken install would.
"""

from __future__ import annotations

import dataclasses
import sys

import torch

import nbfl
from nbfl.participant.builtin import digits_setup


class Failing:
    """An executor whose every task fails."""

    def execute(self, task_name, shareable, fl_ctx, abort_signal):
        raise RuntimeError("CUDA error: out of memory (this laptop fails every task)")


def failing_setup(share):
    return dataclasses.replace(digits_setup(share, epochs=1), executor=Failing())


def main(line: str, names: list[str]) -> None:
    torch.set_num_threads(1)
    code = line.split()[1]
    clients = []
    for typed in names:
        name = typed.rstrip("!")
        setup = failing_setup if typed.endswith("!") else (lambda share: digits_setup(share, epochs=1))
        client = nbfl.Client(code, name, accept_code="--accept-code" in line.split(), from_share=setup)
        try:
            clients.append(client.start(wait=120))
            print(f"joined {name}", flush=True)
        except ConnectionError as exc:
            print(f"refused {name}: {exc}", flush=True)
    sys.stdin.read()  # until the test closes our stdin
    for client in clients:
        client.stop()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
