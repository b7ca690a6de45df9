import numpy as np
import torch

from nbfl.controller.controller import Controller
from nbfl.participant.models import DigitsMLP
from nbfl.protocol.torch_adapter import get_weights, set_weights, to_numpy, to_torch


def test_state_dict_roundtrip_without_copies_on_cpu():
    model = DigitsMLP()
    weights = get_weights(model)
    assert set(weights) == set(model.state_dict())
    assert np.shares_memory(weights["fc1.weight"], model.fc1.weight.detach().numpy())
    back = to_torch(weights)
    assert back["fc1.weight"].data_ptr() == model.fc1.weight.data_ptr()


def test_set_weights_loads_read_only_wire_arrays():
    src, dst = DigitsMLP(), DigitsMLP()
    frozen = {k: v.copy() for k, v in get_weights(src).items()}
    for arr in frozen.values():
        arr.flags.writeable = False  # as decoded from a ZeroMQ frame
    set_weights(dst, frozen)
    for name, tensor in dst.state_dict().items():
        np.testing.assert_array_equal(tensor.numpy(), frozen[name])


def test_bfloat16_becomes_float32():
    out = to_numpy({"x": torch.ones(3, dtype=torch.bfloat16)})
    assert out["x"].dtype == np.float32


def test_controller_takes_a_torch_model_and_copies_it():
    model = DigitsMLP()
    with Controller(weights=model) as ctl:
        assert ctl.weights["fc2.bias"].dtype == np.float32
        with torch.no_grad():
            model.fc2.bias.add_(1.0)
        assert not np.allclose(ctl.weights["fc2.bias"], model.fc2.bias.detach().numpy())
