"""10,000+ malformed messages at a running controller and a running client (hypothesis).

Neither may crash or stop answering, memory must stay bounded, nothing malformed may
reach a round, and a real round must succeed afterwards.
"""

import json
import time

import numpy as np
import psutil
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nbfl
from nbfl.protocol import wire
from nbfl.transport.guard import GuardSettings

from helpers import small_model

BATCH = 20  # messages per hypothesis example
EXAMPLES = 520  # 520 * 20 = 10,400 messages for each side

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
bad_specs = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(st.text(max_size=600), st.integers(), st.none()),
        "dtype": st.one_of(st.sampled_from(["float32", "float128", "object", "<f4", "complex64", ""]), st.integers()),
        "shape": st.one_of(st.lists(st.integers(-5, 2**40), max_size=40), st.text(max_size=5), st.integers()),
    },
)


@st.composite
def malformed(draw, to_client: bool) -> list[bytes]:
    """One multipart message that must be refused: bad bytes, bad JSON, bad header, bad tensors,
    or (to the controller) a well-formed message it must not act on."""
    choice = draw(st.integers(0, 5))
    if choice == 0:  # arbitrary frames
        return draw(st.lists(st.binary(max_size=64), min_size=1, max_size=5))
    if choice == 1:  # JSON that is not a header
        return [json.dumps(draw(json_values)).encode()]
    header = {
        "v": draw(st.sampled_from([1, 1, 2, "1", None])),
        "kind": draw(
            st.sampled_from(
                ["task", "result", "join", "welcome", "ready", "pull", "abort", "error", "nope", "", "TASK"]
            )
        ),
        "fields": draw(st.one_of(st.dictionaries(st.text(max_size=10), json_values, max_size=5), json_values)),
    }
    if choice == 2:  # a header with broken tensor specs and frames that do not fit them
        header["tensors"] = draw(st.lists(bad_specs, min_size=1, max_size=4))
        frames = draw(st.lists(st.binary(max_size=32), max_size=5))
        return [json.dumps(header).encode(), *frames]
    if choice == 3:  # valid specs, wrong frame sizes or counts
        n = draw(st.integers(1, 3))
        header["v"], header["kind"] = 1, draw(st.sampled_from(["task", "result"]))
        header["tensors"] = [
            {"name": f"t{i}", "dtype": "float32", "shape": [draw(st.integers(0, 8))]} for i in range(n)
        ]
        frames = [draw(st.binary(max_size=40)) for _ in range(draw(st.integers(0, n + 1)))]
        if len(frames) == n and all(len(f) == 4 * s["shape"][0] for f, s in zip(frames, header["tensors"])):
            frames.append(b"extra")  # keep it malformed
        return [json.dumps(header).encode(), *frames]
    if choice == 4:  # oversize header
        return [b'{"v":1,"kind":"join","fields":{"name":"' + b"x" * (wire.MAX_HEADER_BYTES + 1) + b'"}}']
    # well-formed messages that must be refused by what they say
    kind = "task" if to_client else draw(st.sampled_from(["result", "ready", "error", "join", "pull", "welcome"]))
    fields = draw(st.dictionaries(st.text(max_size=10), json_values, max_size=4))
    if kind == "join":
        fields["name"] = draw(st.one_of(st.text(min_size=65, max_size=80), st.just(""), st.integers(), st.none()))
    if kind == "task":  # a task for a task name no executor knows, with a bogus id
        fields.update(task_name="fuzz-" + draw(st.text(max_size=8)), task_id=draw(json_values))
    return wire.encode(wire.message(kind, **fields))


# the default heartbeats, not the tests' fast ones: a flood may delay a beat by a few seconds
DEFAULT_BEATS = {"heartbeat_interval": 1.0, "heartbeat_timeout": 6.0}


# every message decoded and every refusal answered: these tests are about what the decoder and
# the handlers survive, not the budgets that keep a flood unread (tests/integration/test_hostile.py)
UNLIMITED = (1e12, 10**12)
OPEN_DOOR = GuardSettings(stranger_messages=UNLIMITED, stranger_bytes=UNLIMITED, answers=UNLIMITED)


@pytest.fixture
def federation(controller_factory, client_factory):
    ctl = controller_factory(small_model(), guard=OPEN_DOOR, **DEFAULT_BEATS)

    def train(weights, ctx):
        return nbfl.Update({k: v + 1 for k, v in weights.items()}, num_samples=3)

    client = client_factory(ctl.endpoint, "site", tasks={"train": train}, **DEFAULT_BEATS)
    ctl.wait_for_clients(1)
    assert ctl.run(1)[0].status == "ok"  # warm: buffers, threads and caches as in use
    return ctl, client


def rss() -> int:
    return psutil.Process().memory_info().rss


def check_alive_and_training(ctl, client, before_rounds):
    assert client.state != "stopped" and [c.name for c in ctl.live_clients()] == ["site"]
    before = {k: v.copy() for k, v in ctl.weights.items()}
    record = ctl.run(1, timeout=60)[0]
    assert record.status == "ok" and not record.failed, record
    np.testing.assert_allclose(ctl.weights["w"], before["w"] + 1)
    assert len(ctl.history) == before_rounds + 1


def flood(send, to_client: bool, examples: int) -> int:
    """Send ``examples * BATCH`` malformed messages through ``send(frames)``; return how many."""
    sent = [0]

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.lists(malformed(to_client=to_client), min_size=BATCH, max_size=BATCH))
    def attack(messages):
        for frames in messages:
            send(frames)
            sent[0] += 1

    attack()
    return sent[0]


def answered(attacker, marker: str, timeout: float = 120) -> None:
    """Send a message of kind ``marker`` and read replies until the controller refuses it by name:
    one peer's messages are handled in order, so everything sent before it has been handled."""
    attacker.send_multipart([json.dumps({"v": 1, "kind": marker}).encode()])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if attacker.poll(1000) and marker in attacker.recv_multipart()[0].decode(errors="replace"):
            return
    raise AssertionError("the controller never answered the marker")


def test_controller_survives_ten_thousand_malformed_messages(federation):
    """Memory is measured over the second half of the flood: the first half brings the
    heap (and libzmq's queues, up to its high-water mark of messages in flight) to its
    working size; a buffer kept per message would grow the second half as much again."""
    ctl, client = federation
    attacker = zmq.Context.instance().socket(zmq.DEALER)
    attacker.setsockopt(zmq.LINGER, 0)
    attacker.setsockopt(zmq.RCVHWM, 0)  # keep every refusal: the marker's must not be dropped
    attacker.connect(ctl.endpoint)
    try:
        sent = flood(attacker.send_multipart, False, EXAMPLES // 2)
        answered(attacker, "warm")
        start = rss()
        sent += flood(attacker.send_multipart, False, EXAMPLES - EXAMPLES // 2)
        answered(attacker, "done")
        assert sent >= 10_000
        assert rss() - start < 200 * 2**20  # bounded: not one buffer kept per message
        check_alive_and_training(ctl, client, 1)
        assert [c.name for c in ctl.clients] == ["site"]  # no fuzz peer was ever registered
        assert ctl.io.is_alive()
    finally:
        attacker.close()


def test_client_survives_ten_thousand_malformed_messages(federation):
    ctl, client = federation
    peer = next(c.peer for c in ctl.clients)

    def send(frames):  # through the controller's own socket: a broken or hostile controller
        ctl.io.call(ctl.io._send_frames, peer, [zmq.Frame(f) for f in frames])

    sent = flood(send, True, EXAMPLES // 2)
    check_alive_and_training(ctl, client, 1)  # its task came after the flood: the flood was handled
    start = rss()
    sent += flood(send, True, EXAMPLES - EXAMPLES // 2)
    check_alive_and_training(ctl, client, 2)
    assert sent >= 10_000
    assert rss() - start < 200 * 2**20
    assert client._io.is_alive()


def nested(depth: int) -> bytes:
    return b'{"v":1,"kind":"join","fields":{"name":' + b"[" * depth + b"]" * depth + b"}}"


# inputs that break parsers rather than validators: recursion, numbers past float and
# int limits, non-standard constants, text that is not Unicode (each found or feared once)
PARSER_BREAKERS = [
    b"[" * 5000,  # RecursionError inside json.loads: it once ended the controller's IO thread
    b"{" * 5000,
    nested(900),  # parses, but deeper than any header needs
    nested(33),
    b'{"v":1,"kind":"join","fields":{"name":"x","samples":1e999}}',  # parses as inf
    b'{"v":1,"kind":"join","fields":{"name":"x","samples":-Infinity}}',
    b'{"v":1,"kind":"result","fields":{"meta":{"metrics":{"loss":NaN}}}}',
    b'{"v":1,"kind":"join","fields":{"name":"x","samples":' + b"9" * 5000 + b"}}",  # past int's digit limit
    b'{"v":1,"kind":"result","fields":{"task_id":"t","meta":{"metrics":{"loss":' + b"9" * 30 + b"}}}}",
    b'{"v":1,"kind":"join","fields":{"name":"\\ud800"}}',  # a lone surrogate, escaped
    b'{"v":1,"kind":"join","fields":{"name":"\xed\xa0\x80"}}',  # the same, encoded
    b'{"v":1,"kind":"join","fields":{"name":"\xc0\xaf"}}',  # overlong UTF-8
    b'{"v":1,"kind":"join","fields":{"name":"\xff\xfe"}}',
    '{"v":1,"kind":"join","fields":{"name":"x"}}'.encode("utf-16"),  # JSON, but not UTF-8
    b'{"v":1,"kind":"task","fields":{},"tensors":[{"name":"w","dtype":"float32","shape":[4611686018427387904,4]}]}',
]


# valid messages whose names no client table should show: the controller refuses the join
BAD_NAMES = [
    b'{"v":1,"kind":"join","fields":{"name":"a\\u0000b"}}',
    b'{"v":1,"kind":"join","fields":{"name":"\\u202eevil"}}',
]


def test_parser_breaking_headers_are_refused_and_a_round_follows(federation):
    ctl, client = federation
    attacker = zmq.Context.instance().socket(zmq.DEALER)
    attacker.setsockopt(zmq.LINGER, 0)
    attacker.setsockopt(zmq.RCVHWM, 0)
    attacker.connect(ctl.endpoint)
    peer = next(c.peer for c in ctl.clients)
    try:
        for raw in PARSER_BREAKERS + BAD_NAMES:
            attacker.send_multipart([raw])
            ctl.io.call(ctl.io._send_frames, peer, [zmq.Frame(raw)])  # and to the client
        answered(attacker, "after-breakers")
        assert [c.name for c in ctl.clients] == ["site"]  # none of the joins was taken
        check_alive_and_training(ctl, client, 1)  # the client read the breakers before this task
        assert ctl.io.is_alive() and client._io.is_alive()
    finally:
        attacker.close()


@pytest.mark.parametrize("raw", PARSER_BREAKERS, ids=range(len(PARSER_BREAKERS)))
def test_each_parser_breaker_is_a_wire_error(raw):
    with pytest.raises(wire.WireError):
        wire.decode([raw])
