"""HE FedAvg over real sockets: the controller averages CKKS ciphertexts with the public context only."""

from __future__ import annotations

import threading
from typing import Callable

import numpy as np
import pytest

ts = pytest.importorskip("tenseal")

import nbfl  # noqa: E402
from nbfl.controller.run import Run  # noqa: E402
from nbfl.filters.he import HEDecrypt, HEEncrypt, decrypt, encrypt  # noqa: E402
from nbfl.protocol.he import ENCRYPTED, LAYOUT_KEY, new_contexts  # noqa: E402
from nbfl.transport.provision import load_kit, provision  # noqa: E402
from nbfl.workflows.he_fedavg import HEFedAvg  # noqa: E402

from helpers import free_port  # noqa: E402
from relay import Relay  # noqa: E402

CKKS_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def keys() -> tuple[bytes, bytes]:
    return new_contexts()


def toy_model() -> dict[str, np.ndarray]:
    """One layer larger than a ciphertext's 4,096 slots, one small: two ciphertexts."""
    rng = np.random.default_rng(0)
    return {"w": rng.normal(size=(70, 70)).astype(np.float32), "b": rng.normal(size=3).astype(np.float32)}


def shrink_and_add(delta: float, samples: int, seen: list | None = None):
    """A deterministic 'training' step; ``seen`` collects what it returned, as plaintext."""

    def train(weights, ctx):
        new = {k: (0.9 * v + delta).astype(v.dtype) for k, v in weights.items()}
        if seen is not None:
            seen.append({k: v.copy() for k, v in new.items()})
        return nbfl.Update(new, num_samples=samples)

    return {"train": train}


class Tap:
    """A filter that keeps what passes through it, changed by ``fn`` if given (to spoil ciphertexts)."""

    name = "tap"

    def __init__(self, fn: Callable[[dict], dict] | None = None):
        self.fn = fn
        self.seen: list[tuple[dict, str, dict]] = []

    def __call__(self, tensors, kind, ctx):
        self.seen.append((dict(tensors), kind, dict(ctx.meta)))
        return (self.fn(dict(tensors)) if self.fn else dict(tensors)), kind

    def spec(self):
        return {"name": self.name}


def he(full: bytes, tap: Tap | None = None, spoil: Tap | None = None) -> dict:
    """A client's HE setup: decrypt what tasks bring, encrypt every update as its own policy."""
    return {
        "task_filters": [*([tap] if tap else []), HEDecrypt(full)],
        "filters": [HEEncrypt(full), *([spoil] if spoil else [])],
    }


def plain_fedavg(controller_factory, client_factory, rounds: int, requested: list | None) -> dict[str, np.ndarray]:
    ctl = controller_factory(toy_model())
    client_factory(ctl.endpoint, "a", tasks=shrink_and_add(1.0, 1))
    client_factory(ctl.endpoint, "b", tasks=shrink_and_add(-2.0, 3))
    assert all(r.status == "ok" for r in ctl.run(rounds, min_clients=2, timeout=30, filters=requested))
    return ctl.weights


def test_the_controller_context_cannot_decrypt(keys):
    public, full = keys
    ctx = ts.context_from(public)
    assert not ctx.is_private() and ts.context_from(full).is_private()
    encrypted, layout = encrypt(toy_model(), full)
    with pytest.raises(ValueError, match="secret"):
        ts.ckks_vector_from(ctx, encrypted["ckks/0"].tobytes()).decrypt()
    with pytest.raises(ValueError, match="cannot decrypt"):
        decrypt(encrypted, public, layout)
    with pytest.raises(ValueError, match="support encryption"):  # it holds no public key either
        encrypt(toy_model(), public)
    with pytest.raises(ValueError, match="secret key"):
        HEFedAvg(full)


def test_layers_larger_than_a_ciphertext_round_trip(keys):
    rng = np.random.default_rng(1)
    tensors = {
        "big": rng.normal(size=(3, 5000)).astype(np.float32),
        "bias": rng.normal(size=7),
        "count": np.array([3, -2], np.int64),
        "mask": np.array([True, False, True]),
    }
    encrypted, layout = encrypt(tensors, keys[1])
    assert list(encrypted) == ["ckks/0", "ckks/1", "ckks/2", "ckks/3"]  # 15,012 values in 4,096-slot ciphertexts
    assert all(v.dtype == np.uint8 and v.ndim == 1 for v in encrypted.values())
    back = decrypt(encrypted, keys[1], layout)
    for name, value in tensors.items():
        assert back[name].dtype == value.dtype and back[name].shape == value.shape
    np.testing.assert_allclose(back["big"], tensors["big"], atol=CKKS_TOLERANCE)
    np.testing.assert_allclose(back["bias"], tensors["bias"], atol=CKKS_TOLERANCE)
    np.testing.assert_array_equal(back["count"], tensors["count"])
    np.testing.assert_array_equal(back["mask"], tensors["mask"])


@pytest.mark.parametrize("requested", [None, [{"name": "exclude", "names": ["b"]}]], ids=["alone", "after-exclude"])
def test_he_fedavg_equals_fedavg(keys, controller_factory, client_factory, requested):
    """With a filter the controller asks for first, HE gets a WEIGHT_DIFF and adds the decrypted model back."""
    public, full = keys
    expected = plain_fedavg(controller_factory, client_factory, 3, requested)
    ctl = controller_factory(toy_model())
    tap = Tap()
    client_factory(ctl.endpoint, "a", tasks=shrink_and_add(1.0, 1), **he(full, tap))
    client_factory(ctl.endpoint, "b", tasks=shrink_and_add(-2.0, 3), **he(full))
    workflow = HEFedAvg(public)
    records = ctl.run(3, workflow, min_clients=2, timeout=30, filters=requested)
    assert all(r.status == "ok" for r in records)
    assert records[0].filters["a"][-1] == {"name": "he_encrypt", "slots": 4096}
    assert all(v.dtype == np.uint8 for v in ctl.weights.values())  # the controller holds ciphertexts only
    tensors, _, meta = tap.seen[1]  # round two's task: the encrypted aggregate and its layout
    assert meta[LAYOUT_KEY] == workflow.layout and all(v.dtype == np.uint8 for v in tensors.values())
    result = decrypt(ctl.weights, full, workflow.layout)
    for name in expected:
        np.testing.assert_allclose(result[name], expected[name], atol=CKKS_TOLERANCE)


def test_only_ciphertexts_go_over_the_wire(keys, controller_factory, client_factory, monkeypatch):
    public, full = keys
    ctl = controller_factory(toy_model())
    relay = Relay(ctl.endpoint)
    sent: list[dict] = []
    try:
        client_factory(relay.endpoint, "a", tasks=shrink_and_add(1.0, 1, sent), **he(full))
        received = []
        scatter = Run.scatter
        monkeypatch.setattr(
            Run, "scatter", lambda run, *a, **kw: (received.append(r) or r for r in scatter(run, *a, **kw))
        )
        assert all(r.status == "ok" for r in ctl.run(2, HEFedAvg(public), timeout=30))
    finally:
        relay.close()
    up, down = relay.captured()
    assert toy_model()["w"].tobytes() in down  # round one's model is plaintext, and the relay would see it
    assert len(sent) == 2 and len(received) == 2
    for update in sent:  # no 8-byte piece of what the client trained reached the wire
        for value in update.values():
            raw = value.tobytes()
            assert not any(raw[i : i + 8] in up for i in range(0, len(raw) - 8, 32))
    for result in received:
        assert result.kind == ENCRYPTED and all(v.dtype == np.uint8 for v in result.weights.values())


def test_malformed_ciphertexts_are_rejected_and_the_round_goes_on(keys, controller_factory, client_factory):
    public, full = keys
    rng = np.random.default_rng(2)
    context = ts.context_from(full)

    def one_level_down(ciphertext: np.ndarray) -> np.ndarray:  # valid, but it would not add up with the others
        return np.frombuffer((ts.ckks_vector_from(context, ciphertext.tobytes()) * 1.0).serialize(), np.uint8)

    spoil = {
        "garbage": lambda t: {k: rng.integers(0, 256, v.size, dtype=np.uint8) for k, v in t.items()},
        "short": lambda t: dict(list(t.items())[:-1]),
        "stale": lambda t: {k: one_level_down(v) for k, v in t.items()},
    }
    ctl = controller_factory(toy_model())
    client_factory(ctl.endpoint, "a", tasks=shrink_and_add(1.0, 1), **he(full))
    client_factory(ctl.endpoint, "b", tasks=shrink_and_add(-2.0, 3), **he(full))
    bad = {
        name: client_factory(ctl.endpoint, name, tasks=shrink_and_add(9.0, 5), **he(full, spoil=Tap(fn)))
        for name, fn in spoil.items()
    }
    workflow = HEFedAvg(public)
    ctl.wait_for_clients(5)
    record = ctl.run(1, workflow, min_clients=2, timeout=30)[0]
    assert record.status == "ok" and sorted(record.clients) == ["a", "b"]
    assert sorted(record.failed) == sorted(spoil) and all("rejected" in r for r in record.failed.values())
    assert "not a CKKS ciphertext" in record.failed["garbage"]
    assert "expected the 2 ciphertexts" in record.failed["short"]
    assert "not a fresh ciphertext" in record.failed["stale"]
    assert _eventually(lambda: all(c.last_error and "rejected" in c.last_error for c in bad.values()))
    w0 = toy_model()
    result = decrypt(ctl.weights, full, workflow.layout)
    for name, value in w0.items():  # (1 * (0.9 w + 1) + 3 * (0.9 w - 2)) / 4
        np.testing.assert_allclose(result[name], 0.9 * value - 1.25, atol=CKKS_TOLERANCE)


def test_digits_with_he_ends_within_half_a_point_of_plain_fedavg(keys, controller_factory, client_factory):
    torch = pytest.importorskip("torch")
    from nbfl.data import load_digits_split, partition
    from nbfl.participant.models import DigitsMLP
    from nbfl.participant.trainers import ArrayTrainer, evaluate_model
    from nbfl.protocol.torch_adapter import get_weights, set_weights

    public, full = keys
    x, y, x_test, y_test = load_digits_split(seed=0)
    parts = partition("iid", y, 3, seed=0)
    torch.manual_seed(0)
    model = DigitsMLP(32)
    w0 = {k: v.copy() for k, v in get_weights(model).items()}

    def accuracy(weights) -> float:
        set_weights(model, weights)
        return evaluate_model(model, x_test, y_test)["accuracy"]

    def run(workflow=None, **client_filters) -> nbfl.Controller:
        ctl = controller_factory({k: v.copy() for k, v in w0.items()})
        for i, part in enumerate(parts):
            trainer = ArrayTrainer(DigitsMLP(32), x[part], y[part], epochs=2, seed=i, device="cpu")
            client_factory(ctl.endpoint, f"site-{i}", trainer, **client_filters)
        assert all(r.status == "ok" for r in ctl.run(5, workflow, min_clients=3, timeout=60))
        return ctl

    plain = accuracy(run().weights)
    workflow = HEFedAvg(public)
    encrypted = accuracy(decrypt(run(workflow, **he(full)).weights, full, workflow.layout))
    assert plain > 0.9
    assert abs(encrypted - plain) <= 0.005, (encrypted, plain)


def _eventually(check: Callable[[], object], tries: int = 200) -> bool:
    for _ in range(tries):
        if check():
            return True
        threading.Event().wait(0.05)
    return False


def test_he_fedavg_by_name_takes_the_public_context_of_the_controllers_kit(
    tmp_path, controller_factory, client_factory
):
    """``run(3, "he_fedavg")``, as ``%fl_round --algorithm he_fedavg`` and the CLI ask for it: the
    workflow takes the public context from the controller's kit (a he = true project)."""
    project = tmp_path / "study.toml"
    project.write_text(f'name = "study"\nhost = "127.0.0.1"\nport = {free_port()}\nclients = ["a", "b"]\nhe = true\n')
    kits = provision(str(project), tmp_path / "kits")
    full = load_kit(kits["a"]).he_context()
    expected = plain_fedavg(controller_factory, client_factory, 3, None)
    ctl = controller_factory(toy_model(), kit=kits["controller"])
    client_factory(ctl.endpoint, "a", kit=kits["a"], tasks=shrink_and_add(1.0, 1), **he(full))
    client_factory(ctl.endpoint, "b", kit=kits["b"], tasks=shrink_and_add(-2.0, 3), **he(full))
    run = ctl.start(3, "he_fedavg", min_clients=2, timeout=30)
    records = run.wait()
    assert all(r.status == "ok" for r in records) and records[0].workflow == "he_fedavg"
    result = decrypt(ctl.weights, full, run.workflow.layout)
    for name in expected:
        np.testing.assert_allclose(result[name], expected[name], atol=CKKS_TOLERANCE)


def test_he_fedavg_by_name_without_a_he_kit_says_what_it_needs(controller_factory, client_factory):
    ctl = controller_factory(toy_model())
    client_factory(ctl.endpoint, "a", tasks=shrink_and_add(1.0, 1))
    with pytest.raises(ValueError, match="he_fedavg needs the project's public HE context"):
        ctl.run(1, "he_fedavg", timeout=30)
