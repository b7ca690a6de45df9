"""The CIFAR-10 reader on generated files in the real format, and the seed's trainer through nbfl."""

import numpy as np
import pytest
import torch

from nbfl.data.vision import CIFAR10, Compose, Normalize, ToTensor
from nbfl.protocol.torch_adapter import get_weights

from cifar_files import write_cifar10_binary
from seed.simple_network import SimpleNetwork
from seed.simple_trainer import SimpleTrainer


def test_binary_cifar10_reads_back_what_was_written(tmp_path):
    images, labels = write_cifar10_binary(tmp_path, per_file=7)
    train = CIFAR10(str(tmp_path), train=True)
    test = CIFAR10(str(tmp_path), train=False)
    assert len(train) == 35 and len(test) == 7
    np.testing.assert_array_equal(train.data, images)
    assert train.targets == labels.tolist()
    image, label = CIFAR10(str(tmp_path), transform=Compose([ToTensor(), Normalize((0.5,) * 3, (0.5,) * 3)]))[3]
    assert image.shape == (3, 32, 32) and label == labels[3]
    expected = torch.from_numpy(images[3].transpose(2, 0, 1)).float() / 255 * 2 - 1
    torch.testing.assert_close(image, expected)


def test_missing_cifar10_without_torchvision_says_what_to_do(tmp_path):
    try:
        import torchvision  # noqa: F401

        pytest.skip("with torchvision installed the loader falls through to torchvision's")
    except ImportError:
        pass
    with pytest.raises(FileNotFoundError, match="binary version"):
        CIFAR10(str(tmp_path))


def test_truncated_file_is_refused(tmp_path):
    write_cifar10_binary(tmp_path, per_file=2)
    path = tmp_path / "cifar-10-batches-bin" / "data_batch_1.bin"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(ValueError, match="whole number"):
        CIFAR10(str(tmp_path))


def test_seed_simple_trainer_trains_through_nbfl(tmp_path, monkeypatch, controller_factory, client_factory):
    """The seed's trainer, only its imports changed, returns WEIGHT_DIFF + NUM_STEPS through nbfl."""
    write_cifar10_binary(tmp_path / "data", per_file=40)
    monkeypatch.setenv("HOME", str(tmp_path))  # the trainer reads CIFAR-10 from ~/data, as written
    torch.manual_seed(0)
    initial = get_weights(SimpleNetwork())
    ctl = controller_factory({k: v.copy() for k, v in initial.items()})
    trainers = [SimpleTrainer(lr=0.01, epochs=1) for _ in range(2)]
    for i, trainer in enumerate(trainers):
        client_factory(ctl.endpoint, f"site-{i + 1}", trainer)
    records = ctl.run(2, min_clients=2, timeout=300)
    assert [r.status for r in records] == ["ok", "ok"] and all(not r.failed for r in records)
    assert sorted(records[-1].clients) == ["site-1", "site-2"]
    # the diffs were applied: the global model moved, and it equals the clients' mean model
    assert any(not np.allclose(ctl.weights[k], initial[k]) for k in initial)
    local = [get_weights(t.model) for t in trainers]
    for name in initial:
        np.testing.assert_allclose(ctl.weights[name], (local[0][name] + local[1][name]) / 2, rtol=1e-4, atol=1e-6)


def test_notebook_cifar10_comparison_runs_on_files_in_cifar10_format(tmp_path):
    """What notebooks/02_algorithms.ipynb runs when CIFAR-10 is on disk, on generated files."""
    from nbfl.experiments import cifar10_arrays, compare_cifar10

    images, labels = write_cifar10_binary(tmp_path, per_file=30)
    x, y, x_test, y_test = cifar10_arrays(str(tmp_path))
    assert x.shape == (150, 3, 32, 32) and x_test.shape == (30, 3, 32, 32) and x.dtype == np.float32
    assert -1.0 <= x.min() and x.max() <= 1.0 and y.tolist() == labels[:150].tolist()
    seen = []
    rows = compare_cifar10(
        str(tmp_path),
        ["fedavg", "scaffold"],
        clients=3,
        rounds=2,
        on_round=lambda alpha, name, record: seen.append((name, record.status)),
    )
    assert seen == [("fedavg", "ok")] * 2 + [("scaffold", "ok")] * 2
    assert [(r["algorithm"], r["round"]) for r in rows] == [
        ("fedavg", 1),
        ("fedavg", 2),
        ("scaffold", 1),
        ("scaffold", 2),
    ]
    assert all(0 <= r["accuracy"] <= 1 for r in rows)
