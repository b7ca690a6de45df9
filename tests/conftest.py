"""Shared fixtures: real controllers and clients on 127.0.0.1 with fast heartbeats."""

from __future__ import annotations

import os
import signal
import tempfile

import pytest

import nbfl

from helpers import FAST

# Every controller registers its control socket (nbfl.transport.control) in Jupyter's runtime folder:
# the tests' go to one of their own, not into the Federation panel of the user's JupyterLab.
os.environ["JUPYTER_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="nbfl-test-runtime-")
# and participants keep their workshop key pairs (nbfl.controller.workshop.participant_keys) in one of theirs
os.environ["NBFL_KEYS"] = tempfile.mkdtemp(prefix="nbfl-test-keys-")
# Ctrl-C as a terminal delivers it, however the tests were started. A shell that starts a job in
# the background (`bash scripts/test.sh &`, nohup in a script) hands it SIGINT ignored, Python then
# never raises KeyboardInterrupt, and every process the tests start inherits the same deafness:
# the tests that press Ctrl-C (an interrupted run, a participant leaving) would wait in vain.
# A handler, unlike an ignored signal, is reset to the default when a child process starts.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


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

    def make(endpoint, name, executor=None, wait: float = 30.0, **kwargs) -> nbfl.Client:
        client = nbfl.Client(endpoint, name, executor, **{**FAST, **kwargs})
        made.append(client)
        return client.start(wait)

    yield make
    for client in made:
        client.stop()
