"""A raw ZeroMQ socket sends garbage to a running controller; it counts, logs, answers a participant, and carries on."""

import json
import logging
import os
import threading

import numpy as np
import pytest
import zmq

from nbfl.protocol import wire

from helpers import small_model


def hdr(kind="result", tensors=(), v=wire.PROTOCOL_VERSION, **fields):
    return json.dumps({"v": v, "kind": kind, "fields": fields, "tensors": list(tensors)}).encode()


GARBAGE = {
    "random frames": [os.urandom(37), os.urandom(1000), os.urandom(3)],
    "wrong dtype": [hdr(tensors=[{"name": "w", "dtype": "object", "shape": [2]}]), b"\x00" * 16],
    "shape vs frame size": [hdr(tensors=[{"name": "w", "dtype": "float32", "shape": [4, 3]}]), b"\x00" * 8],
    "oversized header": [b"{" + b" " * (wire.MAX_HEADER_BYTES + 10) + b"}"],
    "unknown kind": [hdr(kind="exec", code="import os")],
    "old protocol": [hdr(v=0)],
    "frame count": [hdr(tensors=[{"name": "w", "dtype": "float32", "shape": [1]}])],
}


def test_garbage_is_logged_answered_and_harmless(controller_factory, client_factory, caplog):
    w0 = small_model()
    ctl = controller_factory(w0)
    release = threading.Event()

    def identity(weights, ctx):  # real clients send the model back unchanged
        release.wait(60)
        return dict(weights)

    client_factory(ctl.endpoint, "real-1", tasks={"train": identity})
    client_factory(ctl.endpoint, "real-2", tasks={"train": identity})

    raw = zmq.Context.instance().socket(zmq.DEALER)
    raw.setsockopt(zmq.LINGER, 0)
    raw.setsockopt(zmq.RCVTIMEO, 10_000)
    raw.connect(ctl.endpoint)
    fake_result = wire.encode(wire.message("result", {"w": np.full((4, 3), 1e6, np.float32)}, task_id="no-such-task"))
    reasons = []
    try:
        # a peer that has not joined may send headers alone: a result from it is dropped unread
        raw.send_multipart(fake_result)
        raw.send_multipart(wire.encode(wire.message("ready", task_id="no-such-task")))
        assert wire.decode(raw.recv_multipart()).get("reason") == "not joined"  # an answer to the second only
        raw.send_multipart(wire.encode(wire.message("join", name="intruder")))
        assert wire.decode(raw.recv_multipart()).kind == "welcome"
        with caplog.at_level(logging.WARNING, logger="nbfl"):
            for name, frames in GARBAGE.items():  # a participant is answered every time
                raw.send_multipart(frames)
                reply = wire.decode(raw.recv_multipart())
                assert reply.kind == "error", name
                reasons.append(reply.get("reason"))

            # while a real round runs, send results for tasks that do not exist
            round_done = threading.Event()
            records = []
            threading.Thread(
                target=lambda: (records.extend(ctl.run(1, min_clients=2, timeout=60)), round_done.set())
            ).start()
            while True:  # the intruder gets a task too; it answers with someone else's task id
                msg = wire.decode(raw.recv_multipart())
                if msg.kind == "task":
                    break
            raw.send_multipart(fake_result)
            assert "unknown task" in wire.decode(raw.recv_multipart()).get("reason")
            raw.send_multipart(wire.encode(wire.message("ready", task_id="no-such-task")))
            assert "unknown task" in wire.decode(raw.recv_multipart()).get("reason")
            for frames in GARBAGE.values():  # garbage mid-round as well
                raw.send_multipart(frames)
            raw.send_multipart(wire.encode(wire.message("bye")))  # the intruder leaves without answering
            release.set()
            assert round_done.wait(60)
    finally:
        raw.close()

    for reason in [
        "not JSON",
        "dtype 'object'",
        "needs 48 bytes",
        "exceeds",
        "unknown message kind",
        "protocol version",
        "frames came",
    ]:
        assert any(reason in r for r in reasons), reason
    # the log says it, not once per message: one line per kind of refusal every few seconds, with a count
    refused = [r.getMessage() for r in caplog.records if "refused a message" in r.getMessage()]
    assert 1 <= len(refused) < 2 * len(GARBAGE)
    assert ctl.defense()["refused_messages"] >= 2 * len(GARBAGE) + 1
    assert any("unknown task" in r.getMessage() for r in caplog.records)
    record = records[0]
    assert record.status == "ok" and sorted(record.clients) == ["real-1", "real-2"]
    assert record.failed == {"intruder": "left"}
    for name in w0:  # the global model is exactly the real clients' (unchanged) weights
        np.testing.assert_array_equal(ctl.weights[name], w0[name])
    # and the controller still runs the next round
    assert ctl.run(1, min_clients=2, timeout=60)[0].status == "ok"


def test_via_frames_name_hosted_clients_and_bad_ones_close_their_connection(controller_factory, client_factory):
    """A via frame (a host's clients share a connection) makes a peer of its own: one that
    joins is welcomed behind its via frame. What no honest host sends closes the connection
    unread: an over-long via name, tensors or a big header from a client that has not
    joined, and a routing id shaped like a hosted client's (only a forger sets one). The
    real client carries on throughout."""
    from nbfl.transport.threads import MAX_HOSTED_JOIN, MAX_VIA, VIA, hosted_peer

    ctl = controller_factory(small_model())
    client_factory(ctl.endpoint, "real", tasks={"train": lambda w: dict(w)})
    join = wire.encode(wire.message("join", name="hosted-7"))

    def raw(routing_id=None):
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVTIMEO, 3_000)
        if routing_id is not None:
            sock.setsockopt(zmq.ROUTING_ID, routing_id)
        sock.connect(ctl.endpoint)
        return sock

    bad = {
        "via too long": (None, [VIA + b"x" * (MAX_VIA + 1), *join]),
        "tensors before joining": (None, [VIA + b"7", *wire.encode(wire.message("ready", small_model()))]),
        "a big header before joining": (None, [VIA + b"7", b"{" + b" " * MAX_HOSTED_JOIN + b"}"]),
        "a forged routing id": (hosted_peer(b"\x00abcd", b"7"), join),
    }
    refused = ctl.defense()["refused_messages"]
    for name, (routing_id, frames) in bad.items():
        sock = raw(routing_id)
        try:
            sock.send_multipart(frames)
            with pytest.raises(zmq.Again):  # no answer: the connection was closed unread
                sock.recv_multipart()
        finally:
            sock.close()
        assert ctl.defense()["refused_messages"] > refused, name
        refused = ctl.defense()["refused_messages"]
    assert sorted(c.name for c in ctl.live_clients()) == ["real"]

    sock = raw()
    try:
        sock.send_multipart([VIA + b"7", *join])
        via, *frames = sock.recv_multipart()
        assert via == VIA + b"7" and wire.decode(frames).kind == "welcome"
        assert sorted(c.name for c in ctl.live_clients()) == ["hosted-7", "real"]
        [record] = ctl.run(1, min_clients=1, timeout=5)  # hosted-7 never answers its task: real carries the round
        assert "real" in record.clients and "hosted-7" in record.failed
    finally:
        sock.close()
