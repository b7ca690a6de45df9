"""Workshop mode end to end: thirty participants join one controller with the printed
line and a name, over CurveZMQ through a relay that keeps every byte.

The participants are 30 real clients, each with its own socket and key pair, hosted in
one separate process (``participants.py``). The controller binds 127.0.0.2 and its
join line names 127.0.0.1, where the relay listens: every participant's bytes cross the
relay, as they would cross a room's Wi-Fi.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
import zmq

import nbfl
from nbfl.controller.workshop import Workshop
from nbfl.data import load_digits_split
from nbfl.notebook.dashboard import clients_html, join_html
from nbfl.participant.models import DigitsMLP
from nbfl.participant.trainers import evaluator
from nbfl.protocol.joining import JoinCode, Share

from relay import Relay

HERE = Path(__file__).resolve().parents[1]  # tests/, where participants.py is
NAMES = [f"participant-{i:02d}" for i in range(1, 31)]


def wait_until(condition, timeout: float = 180.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        threading.Event().wait(0.1)


def refused(code: str, name: str) -> str:
    """Join as ``name`` with ``code``; the refusal's message (the test fails if it is admitted)."""
    client = nbfl.Client(code, name)
    with pytest.raises(ConnectionError) as caught:
        client.start(wait=60)
    return str(caught.value)


@pytest.fixture
def room():
    torch.manual_seed(0)
    _, _, x_test, y_test = load_digits_split()
    model = DigitsMLP()
    workshop = Workshop(capacity=30, host="127.0.0.1")
    ctl = nbfl.Controller(
        "tcp://127.0.0.2:0", model, workshop=workshop, evaluate=evaluator(model, x_test, y_test), heartbeat_timeout=60.0
    )
    relay = Relay(ctl.endpoint, listen=("127.0.0.1", int(ctl.endpoint.rsplit(":", 1)[1])))
    line = re.search(r"class='nbfl-join-line'[^>]*>(%fl_join [^<]+)<", join_html(ctl.join_code)).group(1)
    people = subprocess.Popen(
        [sys.executable, str(HERE / "participants.py"), line, *NAMES],
        cwd=HERE,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    yield ctl, relay, line, people
    people.stdin.close()
    ctl.close()
    people.wait(60)
    relay.close()


def test_thirty_participants_join_with_the_line_train_and_one_is_removed(room):
    ctl, relay, line, people = room
    assert line.startswith("%fl_join nbfl://127.0.0.1:") and line.endswith("--name YOUR_NAME --accept-code")
    initial = {k: v.copy() for k, v in ctl.weights.items()}
    ctl.wait_for_clients(30, timeout=300)
    wait_until(lambda: all(c.samples > 0 for c in ctl.clients), what="every participant reported its share's data")

    clients = ctl.clients
    assert sorted(c.name for c in clients) == NAMES
    assert sorted(c.share for c in clients) == sorted(str(Share(i, 30)) for i in range(30))  # thirty different shares
    assert sum(c.samples for c in clients) == len(load_digits_split()[1])  # together: the whole training set, once
    assert all(sum(c.labels) == c.samples and c.device == "cpu" for c in clients)
    rows = re.findall(r"<tr><td[^>]*>(participant-\d\d)</td><td>(\d+/30)</td>", clients_html(clients))
    assert len(rows) == 30 and len({share for _, share in rows}) == 30

    records = ctl.run(3, min_clients=30, timeout=600, join_timeout=0)
    assert [r.status for r in records] == ["ok"] * 3
    assert all(sorted(r.clients) == NAMES and not r.failed for r in records)
    # a workshop compresses (int8 by default): each model crosses in a quarter of its float32 bytes,
    # plus the JSON header (about 3% of a float32 message for this 4.8k-parameter model)
    model_bytes = sum(v.nbytes for v in initial.values())
    assert all(30 * model_bytes / 4 <= r.traffic[i] <= 30 * model_bytes * 0.32 for r in records for i in (0, 1))
    assert all(model_bytes / 4 <= c.traffic[i] <= model_bytes * 0.32 for c in ctl.clients for i in (0, 1))

    old = str(ctl.join_code)
    ctl.remove("participant-07")
    assert str(ctl.join_code) != old  # the token they saw was rotated
    [after] = ctl.run(1, min_clients=29, timeout=600, join_timeout=0)
    assert after.ok and sorted(after.clients) == [n for n in NAMES if n != "participant-07"]
    assert "removed" in refused(old, "participant-07")
    assert "replaced by a new one" in refused(old, "participant-07-again")

    # nothing readable crossed the relay: not the token, not a name, not a header, not the model
    up, down = relay.captured()
    assert (
        len(down) > 30 * 3 * sum(v.nbytes for v in initial.values()) / 4
    )  # every participant's models went through it
    for secret in [JoinCode.parse(old).token.encode(), b"participant-07", b'"kind"', b"welcome"]:
        assert secret not in up and secret not in down, secret
    sample = initial["fc1.weight"].tobytes()[:64]
    assert sample not in down
    people.stdin.close()
    assert people.wait(120) == 0
    assert people.stdout.read().count("joined ") == 30


def test_wrong_expired_and_tampered_lines_are_refused_clearly():
    workshop = Workshop(capacity=3, host="127.0.0.1")
    with nbfl.Controller("tcp://127.0.0.1:0", {"w": torch.zeros(3).numpy()}, workshop=workshop) as ctl:
        code = ctl.join_code
        wrong = dataclasses.replace(code, token="x" * len(code.token))
        assert "wrong join token" in refused(str(wrong), "mallory")
        tampered = dataclasses.replace(code, server_key=zmq.curve_keypair()[0])
        assert "public key in this join line does not match" in refused(str(tampered), "eve")
        workshop.rotate(ttl=0)  # expired the moment it was made
        assert "expired" in refused(str(ctl.join_code), "late")
        assert not ctl.clients  # nobody got in
        workshop.rotate()
        admitted = [nbfl.Client(str(ctl.join_code), f"s{i}").start(wait=60) for i in range(3)]
        assert "full (3 participants)" in refused(str(ctl.join_code), "fourth")
        for client in admitted:
            client.stop()


@pytest.mark.parametrize(
    "text, problem",
    [
        ("tcp://127.0.0.1:5555", "not a join code"),
        ("nbfl://10.0.0.5:5555/short/token1234", "not a join code"),
        ("nbfl://10.0.0.5:99999/" + "A" * 43 + "/token1234", "not a join code"),
        ("nbfl://10.0.0.5:5555/" + "A" * 43 + "/{bad}", "not a join code"),
    ],
)
def test_malformed_join_codes_are_refused_before_connecting(text, problem):
    with pytest.raises(ValueError, match=problem):
        JoinCode.parse(text)


def test_a_join_code_round_trips_and_survives_ipython_expansion():
    code = JoinCode("192.168.1.20", 5555, zmq.curve_keypair()[0], "abc_DEF-123456")
    assert JoinCode.parse(str(code)) == code
    assert not set(str(code)) & set("${}'\" ")  # nothing a magic's line or the HTML attribute would change


def test_the_gate_keeps_shares_knows_returning_keys_and_keeps_the_removed_out():
    gate = Workshop(capacity=2, host="10.0.0.5")
    token = gate.token
    assert gate.refusal("key-a", token, "ada", live=[]) is None
    assert gate.joined("key-a", "ada") == Share(0, 2)
    assert gate.joined("key-b", "bob") == Share(1, 2)
    assert gate.joined("key-a", "ada") == Share(0, 2)  # a rejoin (a new kernel: its key file's key) keeps its share
    assert "joined from another computer" in gate.refusal("key-a2", token, "ada", live=[])  # the name is key-a's
    assert "looks like 'ada'" in gate.refusal("key-a2", token, "Аda", live=[])  # a Cyrillic A
    gate.rotate()
    assert gate.refusal("key-a", token, "ada", live=["bob"]) is None  # a known key comes back after a rotation
    assert "replaced" in gate.refusal("key-c", token, "cy", live=["ada", "bob"])
    assert "full" in gate.refusal("key-c", gate.token, "cy", live=["ada", "bob"])
    assert gate.refusal("key-b", gate.token, "bob", live=["ada", "bob"]) is None  # bob's own place
    gate.remove("bob")
    assert gate.admit_key(b"key-b") is None and gate.admit_key(b"key-c") == "key-c"
    assert "removed" in gate.refusal("key-d", gate.token, "bob", live=["ada"])  # the name too, with a new key
    assert "no join token" in gate.refusal("key-e", None, "eve", live=["ada"])
    gate.joined("key-c", "cy")
    assert gate.joined("key-d", "dee").of == 2  # more names than shares over the day: shares are reused


def test_lan_address_is_one_others_can_dial():
    import ipaddress

    from nbfl.controller.workshop import lan_address

    address = ipaddress.ip_address(lan_address())
    assert address.version == 4 and not address.is_unspecified and not address.is_link_local
