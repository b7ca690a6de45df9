import json

import numpy as np
import pytest

from nbfl.protocol import wire


def roundtrip(msg):
    return wire.decode([bytes(f) for f in wire.encode(msg)])


def test_roundtrip_keeps_fields_names_dtypes_and_values():
    tensors = {
        "conv.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 4),
        "bn.count": np.array(7, dtype=np.int64),
        "mask": np.array([True, False]),
        "empty": np.zeros((0, 3), np.float64),
    }
    out = roundtrip(wire.message("task", tensors, task_id="t1", round=3, meta={"lr": 0.1}))
    assert out.kind == "task" and out.fields == {"task_id": "t1", "round": 3, "meta": {"lr": 0.1}}
    for name, arr in tensors.items():
        assert out.tensors[name].dtype == arr.dtype and out.tensors[name].shape == arr.shape
        np.testing.assert_array_equal(out.tensors[name], arr)


def test_encode_does_not_copy_contiguous_arrays():
    arr = np.ones((100, 10), np.float32)
    frames = wire.encode(wire.message("result", {"x": arr}))
    assert np.shares_memory(np.frombuffer(frames[1], np.float32), arr)


def test_decode_builds_arrays_on_the_received_buffer():
    frames = [bytearray(f) for f in wire.encode(wire.message("result", {"x": np.ones(8, np.float64)}))]
    out = wire.decode(frames)
    assert np.shares_memory(out.tensors["x"], np.frombuffer(frames[1], np.uint8))


def test_big_endian_and_strided_inputs_are_sent_correctly():
    arr = np.arange(12, dtype=">f4").reshape(3, 4)[:, ::2]
    out = roundtrip(wire.message("result", {"x": arr}))
    assert out.tensors["x"].dtype == np.dtype("<f4")
    np.testing.assert_array_equal(out.tensors["x"], arr)


def header(**overrides):
    base = {"v": wire.PROTOCOL_VERSION, "kind": "result", "fields": {}, "tensors": []}
    base.update(overrides)
    return json.dumps(base).encode()


@pytest.mark.parametrize(
    "frames, reason",
    [
        ([], "empty"),
        ([b"\xff\xfe not json"], "not JSON"),
        ([b"[1, 2]"], "not a JSON object"),
        ([header(v=99)], "protocol version"),
        ([header(kind="exec")], "unknown message kind"),
        ([header(fields=[1])], "'fields'"),
        ([header(tensors=[{"name": "x", "dtype": "float32", "shape": [2]}])], "frames came"),
        ([header(tensors=[{"name": "x", "dtype": "object", "shape": [1]}]), b"12345678"], "dtype 'object'"),
        ([header(tensors=[{"name": "x", "dtype": "float32", "shape": [3]}]), b"12345678"], "needs 12 bytes"),
        ([header(tensors=[{"name": "x", "dtype": "float32", "shape": [-1]}]), b""], "non-negative"),
        ([header(tensors=[{"name": "x", "dtype": "float32", "shape": [True]}]), b"1234"], "non-negative"),
        ([header(tensors=[{"name": "", "dtype": "float32", "shape": [1]}]), b"1234"], "tensor name"),
        ([header(tensors=[{"name": "x", "dtype": "uint8", "shape": [1]}] * 2), b"1", b"2"], "appears twice"),
        ([header(tensors=[{"name": "x", "dtype": "float64", "shape": [1 << 31, 1 << 31]}]), b""], "limit"),
        ([b" " * (wire.MAX_HEADER_BYTES + 1)], "exceeds"),
    ],
)
def test_decode_refuses_bad_frames_with_a_reason(frames, reason):
    with pytest.raises(wire.WireError, match=reason):
        wire.decode(frames)


def test_encode_refuses_what_cannot_travel():
    with pytest.raises(wire.WireError, match="dtype"):
        wire.encode(wire.message("result", {"x": np.array(["a"], dtype=object)}))
    with pytest.raises(wire.WireError, match="plain JSON"):
        wire.encode(wire.message("result", meta={"f": float("nan")}))
    with pytest.raises(wire.WireError, match="unknown message kind"):
        wire.encode(wire.Message("exec"))


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b'{"a": 18446744073709551616}', "integer beyond 64 bits"),
        (b'{"a": [-9223372036854775809]}', "integer beyond 64 bits"),
        (b'{"a": 1e999}', "too large for a float"),
        (b'{"a": NaN}', "not JSON"),
        (b'{"a": "\\ud800"}', "lone surrogate"),
        (b'{"\\udfff": 1}', "lone surrogate"),  # a key too
        (b'{"a": [{"b": ["\\ud83d"]}]}', "lone surrogate"),
        (b"[" * 33 + b"]" * 33, "nested more than 32"),
        (b'{"a": "\xff"}', "not JSON"),  # not UTF-8
    ],
)
def test_a_header_is_refused_for_what_later_code_would_choke_on(raw, reason):
    with pytest.raises(wire.WireError, match=reason):
        wire.parse_json(raw)


def test_a_header_at_the_limits_is_plain_json():
    nested = b"[" * 32 + b"]" * 32  # as deep as allowed
    assert wire.parse_json(nested) is not None
    value = wire.parse_json(b'{"a": 9223372036854775807, "b": -9223372036854775808, "c": 1e308, "d": true}')
    assert value == {"a": 2**63 - 1, "b": -(2**63), "c": 1e308, "d": True}
    assert wire.parse_json('{"name": "Grace H\\u00f6pper \\ud83d\\ude00"}'.encode()) == {"name": "Grace Höpper 😀"}
