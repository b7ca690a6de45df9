"""Shared fixtures: real controllers and clients on 127.0.0.1 with fast heartbeats."""

from __future__ import annotations

import numpy as np
import pytest

import nbfl

FAST = {"heartbeat_interval": 0.1, "heartbeat_timeout": 2.0}


@pytest.fixture
def controller_factory():
    made: list[nbfl.Controller] = []

    def make(weights, **kwargs) -> nbfl.Controller:
        ctl = nbfl.Controller("tcp://127.0.0.1:0", weights, **{**FAST, **kwargs})
        made.append(ctl)
        return ctl

    yield make
    for ctl in made:
        ctl.close()


@pytest.fixture
def client_factory():
    made: list[nbfl.Client] = []

    def make(endpoint, name, executor=None, **kwargs) -> nbfl.Client:
        client = nbfl.Client(endpoint, name, executor, **{**FAST, **kwargs})
        made.append(client)
        return client.start()

    yield make
    for client in made:
        client.stop()


def small_model(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"w": rng.normal(size=(4, 3)).astype(np.float32), "b": rng.normal(size=3).astype(np.float32)}
