"""Compression on the wire (nbfl.protocol.compress): the quantizers' error bounds, and runs whose model
and updates travel compressed between real clients and a controller on 127.0.0.1."""

import json
import threading

import numpy as np
import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import nbfl
import nbfl.cli
from nbfl.protocol import compress, wire
from nbfl.protocol.codecs.blockwise import BLOCK, dequantize, quantize
from nbfl.protocol.compress import CompressionError, check_codec

from helpers import FAST, small_model

FLOATS = hnp.arrays(
    np.float32,
    hnp.array_shapes(min_dims=0, max_dims=3, max_side=64),
    elements=st.floats(-1e6, 1e6, width=32),
)
TINY = np.finfo(np.float32).smallest_subnormal


def per_block(array: np.ndarray) -> np.ndarray:
    """The array's values as rows of BLOCK (the last row padded with its last value, as quantize does)."""
    flat = array.astype(np.float32).reshape(-1)
    rows = -(-flat.size // BLOCK)
    return np.concatenate([flat, np.full(rows * BLOCK - flat.size, flat[-1] if flat.size else 0, np.float32)]).reshape(
        rows, BLOCK
    )


@settings(max_examples=200, deadline=None)
@given(FLOATS)
def test_int8_comes_back_within_half_a_step_of_each_block(array):
    codes, scales = quantize(array)
    assert codes.dtype == np.uint8 and codes.shape == array.shape
    back = dequantize(codes, scales)
    assert back.shape == array.shape and back.dtype == np.float32
    original, restored = per_block(array).astype(np.float64), per_block(back).astype(np.float64)
    low, high = original.min(axis=1, keepdims=True), original.max(axis=1, keepdims=True)
    # half a step, plus float32's rounding of low + q * step, plus its smallest step near zero
    bound = (high - low) / 510 + 4 * np.finfo(np.float32).eps * np.maximum(abs(low), abs(high)) + 256 * TINY
    assert np.all(np.abs(restored - original) <= bound)
    assert np.array_equal(scales[:, 0], low[:, 0].astype(np.float32))  # each block's minimum is kept as it is


@settings(max_examples=200, deadline=None)
@given(FLOATS)
def test_int16_comes_back_within_half_its_finer_step(array):
    """int16 (nbfl/protocol/codecs/int16.py, a codec added as one file): 65535 levels a block, as int16 on the wire."""
    codes, scales = quantize(array, np.int16)
    assert codes.dtype == np.int16 and codes.shape == array.shape
    back = dequantize(codes, scales, "float32", np.int16, "int16")
    original, restored = per_block(array).astype(np.float64), per_block(back).astype(np.float64)
    low, high = original.min(axis=1, keepdims=True), original.max(axis=1, keepdims=True)
    # as int8's, and a range below 65535 subnormal steps (1e-40) comes back as its low: within 65536 of them
    bound = (high - low) / 131070 + 4 * np.finfo(np.float32).eps * np.maximum(abs(low), abs(high)) + 65536 * TINY
    assert np.all(np.abs(restored - original) <= bound)


def test_int16_carries_what_float16_cannot_and_is_named_by_every_face():
    big = {"w": np.array([1.0, 1e6, -3e7], np.float32)}
    with pytest.raises(CompressionError, match="beyond float16's range"):
        compress.pack(big, "float16")
    packed, spec = compress.pack(big, "int16")
    assert packed["w"].dtype == np.int16 and spec["codec"] == "int16"
    assert np.allclose(compress.unpack(packed, spec, big)["w"], big["w"], rtol=0, atol=3.1e7 / 131070 * 1.01)
    assert "int16" in compress.CODECS and check_codec("int16") == "int16"
    cli = nbfl.cli.build_parser().parse_args(["demo", "--compress", "int16"])
    assert cli.compress == "int16"


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=1, max_size=6), st.integers(1, BLOCK)
)
def test_int8_is_exact_for_constant_blocks(values, tail):
    array = np.concatenate(
        [np.full(BLOCK, v, np.float32) for v in values[:-1]] + [np.full(tail, values[-1], np.float32)]
    )
    assert np.array_equal(dequantize(*quantize(array)), array)


@pytest.mark.parametrize("codec", compress.CODECS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_are_refused_not_turned_into_numbers(codec, bad):
    weights = {"w": np.ones(1000, np.float32)}
    weights["w"][517] = bad
    with pytest.raises(CompressionError, match="'w' holds NaN or infinite values"):
        compress.pack(weights, codec)


def test_float16_refuses_what_it_cannot_hold_and_keeps_the_rest():
    with pytest.raises(CompressionError, match="beyond float16's range"):
        compress.pack({"w": np.array([1.0, 1e6], np.float32)}, "float16")
    x = np.random.default_rng(0).normal(size=(64, 33)).astype(np.float32)
    packed, spec = compress.pack({"w": x, "steps": np.arange(3)}, "float16")
    assert packed["w"].dtype == np.float16 and packed["steps"].dtype == np.arange(3).dtype  # integers pass as they are
    back = compress.unpack(packed, spec)
    assert back["w"].dtype == np.float32 and np.allclose(back["w"], x, rtol=1e-3, atol=1e-4)
    assert np.array_equal(back["steps"], np.arange(3))


def test_int8_moves_about_a_quarter_of_the_bytes_through_the_wire():
    weights = {
        "a": np.random.default_rng(0).normal(size=(1000, 1000)).astype(np.float32),
        "b": np.zeros(10, np.float32),
    }
    packed, spec = compress.pack(weights, "int8")
    plain = sum(len(bytes(f)) for f in wire.encode(wire.message("task", weights)))
    small = sum(len(bytes(f)) for f in wire.encode(wire.message("task", packed, compress=spec)))
    assert small <= 0.27 * plain, small / plain
    decoded = wire.decode(wire.encode(wire.message("task", packed, compress=spec)))
    back = compress.unpack(decoded.tensors, decoded.get("compress"))
    assert set(back) == {"a", "b"} and np.array_equal(back["b"], weights["b"])


S = compress.SCALES
W32 = {"codec": "int8", "dtypes": [["w", "float32"]]}


@pytest.mark.parametrize(
    "tensors, spec, problem",
    [
        ({"w": np.zeros(4, np.uint8)}, {"codec": "zstd", "dtypes": []}, "not a compression this nbfl knows"),
        ({"w": np.zeros(4, np.uint8)}, W32, "without its block scales"),
        ({"w": np.zeros(4, np.uint8), S: np.zeros((2, 2), np.float32)}, W32, "2 block scales came for 1 blocks"),
        ({"w": np.zeros(4, np.uint8), S: np.zeros(2, np.float32)}, W32, "without its block scales"),
        ({"w": np.zeros(4, np.uint8), S: np.array([[0, -1]], np.float32)}, W32, "negative steps"),
        ({"w": np.zeros(4, np.uint8), S: np.array([[np.nan, 1]], np.float32)}, W32, "NaN"),
        ({"w": np.zeros(4, np.uint8), S: np.array([[0, 1]], np.float64)}, W32, "need float32 scales"),
        ({"w": np.zeros(4, np.float32), S: np.zeros((1, 2), np.float32)}, W32, "int8 codes float32"),
        ({"w": np.zeros(4, np.float32)}, {"codec": "float16", "dtypes": [["w", "float32"]]}, "should be float16"),
        ({}, {"codec": "float16", "dtypes": [["v", "float32"]]}, "missing"),
        ({"w": np.zeros(4, np.float16)}, {"codec": "float16", "dtypes": [["w", "object"]]}, "no float type"),
        ({"w": np.zeros(4, np.float16)}, {"codec": "float16", "dtypes": ["w"]}, "missing or has no float type"),
        ({"w": np.zeros(4, np.float16)}, ["float16"], "not a compression"),
    ],
)
def test_a_compressed_message_that_does_not_add_up_is_refused(tensors, spec, problem):
    with pytest.raises(CompressionError, match=problem):
        compress.unpack(tensors, spec)


def train_and_report(weights, ctx):
    return nbfl.Update({k: v + 0.01 for k, v in weights.items()}, num_samples=1)


@pytest.mark.parametrize("codec", compress.CODECS)
def test_a_compressed_run_moves_fewer_bytes_and_lands_near_the_plain_one(controller_factory, client_factory, codec):
    model = {"w": np.random.default_rng(1).normal(size=(200, 300)).astype(np.float32)}
    plain_ctl = controller_factory(model)
    packed_ctl = controller_factory(model, compress=codec)
    for ctl in (plain_ctl, packed_ctl):
        for name in ("a", "b"):
            client_factory(ctl.endpoint, name, tasks={"train": train_and_report})
        ctl.wait_for_clients(2)
    plain, packed = plain_ctl.run(rounds=3), packed_ctl.run(rounds=3)
    assert all(r.ok for r in plain + packed)
    ratio = packed[-1].traffic[0] / plain[-1].traffic[0], packed[-1].traffic[1] / plain[-1].traffic[1]
    limit = 0.27 if codec == "int8" else 0.52
    assert ratio[0] <= limit and ratio[1] <= limit, ratio  # out and in
    assert packed_ctl.weights["w"].dtype == np.float32
    tolerance = 3 * 3 * (np.ptp(model["w"]) / 510) if codec == "int8" else 3 * 3 * 2e-3 * np.abs(model["w"]).max()
    assert np.abs(packed_ctl.weights["w"] - plain_ctl.weights["w"]).max() <= tolerance


def test_an_older_client_gets_float32_beside_a_newer_one(controller_factory, client_factory):
    """A client that says nothing of codecs at join (nbfl before compression) is sent float32
    and answers in float32, in the same int8 round as a client that decodes it."""
    model = small_model()
    ctl = controller_factory(model, compress="int8", heartbeat_timeout=30.0)
    client_factory(ctl.endpoint, "new", tasks={"train": train_and_report})
    old = zmq.Context.instance().socket(zmq.DEALER)
    old.setsockopt(zmq.LINGER, 0)
    old.connect(ctl.endpoint)
    old.send_multipart(wire.encode(wire.message("join", name="old", host="h", device="cpu", samples=1)))
    seen = []

    def serve_one_task():
        while True:
            msg = wire.decode(old.recv_multipart())
            if msg.kind == "task":
                seen.append(msg)
                result = {k: v + 0.01 for k, v in msg.tensors.items()}
                old.send_multipart(
                    wire.encode(
                        wire.message(
                            "result", result, task_id=msg.get("task_id"), kind="WEIGHTS", meta={"num_samples": 1}
                        )
                    )
                )
            elif msg.kind == "pull":
                raise AssertionError("the old client's result was to go direct")
            if seen:
                return

    worker = threading.Thread(target=serve_one_task, daemon=True)
    worker.start()
    ctl.wait_for_clients(2)
    (record,) = ctl.run(rounds=1, min_clients=2)
    worker.join(10)
    old.close()
    assert record.ok and set(record.clients) == {"new", "old"}
    (task,) = seen
    assert "compress" not in task.fields and "compress_results" not in task.fields
    assert {k: v.dtype for k, v in task.tensors.items()} == {k: v.dtype for k, v in model.items()}
    assert [c.codecs for c in ctl.clients if c.name == "new"] == [list(compress.CODECS)]


def test_a_client_that_cannot_decode_the_controllers_codec_refuses_at_join():
    """A newer controller, with a codec this client does not know, says so in its welcome:
    the client leaves at once with a sentence saying why, rather than fail in every round."""
    router = zmq.Context.instance().socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    said = []

    def newer_controller():
        peer, *frames = router.recv_multipart()
        assert wire.decode(frames).kind == "join"
        router.send_multipart([peer, *wire.encode(wire.message("welcome", name="alice", compress="int4"))])
        said.append(wire.decode(router.recv_multipart()[1:]))

    thread = threading.Thread(target=newer_controller, daemon=True)
    thread.start()
    client = nbfl.Client(f"tcp://127.0.0.1:{port}", "alice", tasks={}, **FAST)
    with pytest.raises(ConnectionError, match="compresses the model as 'int4', which this nbfl cannot decode"):
        client.start(wait=30)
    thread.join(10)
    router.close()
    assert said and said[0].kind == "bye" and "install a newer nbfl" in said[0].get("reason")


def test_a_workshop_compresses_by_default_and_a_run_can_choose(controller_factory):
    assert nbfl.Workshop(host="127.0.0.1").compress == "int8"
    assert nbfl.Workshop(host="127.0.0.1", compress="none").compress is None
    with pytest.raises(ValueError, match="unknown compression 'zip'"):
        controller_factory(small_model(), compress="zip")
    ctl = controller_factory(small_model(), compress="float16")
    with pytest.raises(ValueError, match="unknown compression 'int4'"):
        ctl.start(rounds=1, compress="int4")
    json.dumps(compress.pack(small_model(), "int8")[1])  # the header field is plain JSON


def test_a_result_is_checked_against_the_model_before_it_is_decompressed():
    model = {"w": np.zeros(1000, np.float32), "b": np.zeros(10, np.float32)}
    honest, spec = compress.pack(model, "int8")
    assert set(compress.unpack(honest, spec, model)) == {"w", "b"}
    inflated, spec = compress.pack({k: v.astype(np.float64) for k, v in model.items()}, "int8")
    with pytest.raises(compress.CompressionError, match="says it was float64"):
        compress.unpack(inflated, spec, model)
    reshaped, spec = compress.pack({"w": np.zeros((10, 100), np.float32), "b": model["b"]}, "int8")
    with pytest.raises(compress.CompressionError, match=r"says it was float32 \(10, 100\)"):
        compress.unpack(reshaped, spec, model)
    # tensors that are not the model's (statistics) may come, up to the model's bytes (1 MiB for a small one)
    extra, spec = compress.pack({**model, "histogram": np.zeros(1000, np.float64)}, "int8")
    assert compress.unpack(extra, spec, model)["histogram"].dtype == np.float64
    huge, spec = compress.pack({**model, "histogram": np.zeros(1 << 18, np.float64)}, "int8")  # 2 MiB restored
    with pytest.raises(compress.CompressionError, match="not the model's"):
        compress.unpack(huge, spec, model)
