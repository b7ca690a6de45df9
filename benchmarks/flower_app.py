"""The Flower side of ``simulation.py``: FedAvg with client sampling on Flower's simulation engine.

Run in Flower's own venv (``simulation.py`` makes it). A module of its own, so that Ray's
workers import the ClientApp (and keep one copy of the data each) instead of unpickling
a closure. The clients train nbfl's numpy MLP on the same generated data and split as
nbfl's simulated clients; the experiment's settings come from ``$NBFL_SIM`` (JSON),
which Ray's workers inherit.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg, Result
from flwr.simulation import run_simulation

from nbfl.data import load_synthetic_split, partition
from nbfl.participant.executor import Signal
from nbfl.participant.numpy_trainer import NumpyTrainer, evaluate, init_weights

SETTINGS_ENV = "NBFL_SIM"
_parts: dict[str, Any] = {}  # this worker's copy of the data and its split, made on first use


def _settings() -> dict[str, Any]:
    return json.loads(os.environ[SETTINGS_ENV])


def _data() -> tuple:
    if not _parts:
        s = _settings()
        x, y, _, _ = load_synthetic_split(s["clients"], s["seed"])
        _parts.update(x=x, y=y, split=partition(s["partition"], y, s["clients"], s["seed"]))
    return _parts["x"], _parts["y"], _parts["split"]


client = ClientApp()


@client.train()
def train(msg: Message, context: Context) -> Message:
    """One local epoch on this node's part, as nbfl's built-in trainer does it (same seeds)."""
    index = int(context.node_config["partition-id"])
    x, y, split = _data()
    trainer = NumpyTrainer(x[split[index]], y[split[index]], epochs=1, seed=_settings()["seed"] + index)
    names = list(trainer.weights)
    trainer.set_weights(dict(zip(names, msg.content["arrays"].to_numpy_ndarrays())))
    _, loss = trainer.train(Signal(), int(msg.content["config"]["server-round"]))
    content = RecordDict(
        {
            "arrays": ArrayRecord([trainer.weights[n] for n in names]),
            "metrics": MetricRecord({"num-examples": trainer.samples, "train_loss": loss}),
        }
    )
    return Message(content=content, reply_to=msg)


def run(clients: int, sample: int, rounds: int, split: str, seed: int) -> tuple[list[tuple[float, float]], Result]:
    """Run the experiment; returns (when each round's evaluation was done, its accuracy) and Flower's result."""
    os.environ[SETTINGS_ENV] = json.dumps({"clients": clients, "partition": split, "seed": seed})
    logging.getLogger("flwr").setLevel(logging.WARNING)
    start = init_weights(seed)
    names = list(start)
    _, _, x_test, y_test = load_synthetic_split(1, seed)
    done: list[tuple[float, float]] = []
    results: list[Result] = []

    def central(round_number: int, arrays: ArrayRecord) -> MetricRecord:
        metrics = evaluate(dict(zip(names, arrays.to_numpy_ndarrays())), x_test, y_test)
        if round_number >= 1:
            done.append((time.perf_counter(), metrics["accuracy"]))
        return MetricRecord(metrics)

    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        strategy = FedAvg(
            fraction_train=sample / clients,
            fraction_evaluate=0.0,
            min_train_nodes=sample,
            min_available_nodes=clients,
        )
        results.append(
            strategy.start(
                grid=grid, initial_arrays=ArrayRecord(list(start.values())), num_rounds=rounds, evaluate_fn=central
            )
        )

    run_simulation(
        server, client, num_supernodes=clients, backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}}
    )
    return done, results[0]
