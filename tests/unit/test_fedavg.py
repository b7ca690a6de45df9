import numpy as np
import pytest

from nbfl.aggregators import WeightedMean
from nbfl.protocol.names import DataKind
from nbfl.protocol.weights import UpdateError, apply_diff, diff


def test_weighted_mean_by_hand():
    g = {"w": np.zeros(2, np.float32)}
    mean = WeightedMean(g)
    mean.accept({"w": np.array([1.0, 2.0], np.float32)}, 1)
    mean.accept({"w": np.array([4.0, 8.0], np.float32)}, 3)
    # (1*[1,2] + 3*[4,8]) / 4 = [13/4, 26/4]
    np.testing.assert_allclose(mean.result()["w"], [3.25, 6.5])


def test_diffs_and_weights_mix_to_the_same_mean():
    g = {"w": np.array([10.0, 10.0])}
    mean = WeightedMean(g)
    mean.accept({"w": np.array([12.0, 14.0])}, 1, DataKind.WEIGHTS)
    mean.accept({"w": np.array([-2.0, 2.0])}, 1, DataKind.WEIGHT_DIFF)  # stands for [8, 12]
    np.testing.assert_allclose(mean.result()["w"], [10.0, 13.0])


def test_integer_buffers_are_averaged_and_cast_back():
    mean = WeightedMean({"n": np.array(0, np.int64)})
    mean.accept({"n": np.array(3, np.int64)}, 1)
    mean.accept({"n": np.array(4, np.int64)}, 1)
    out = mean.result()["n"]
    assert out.dtype == np.int64 and out == 4  # 3.5 rounds half to even


@pytest.mark.parametrize(
    "update, reason",
    [
        ({"w": np.array([np.nan, 1.0], np.float32)}, "NaN or Inf"),
        ({"w": np.array([np.inf, 1.0], np.float32)}, "NaN or Inf"),
        ({"w": np.zeros(3, np.float32)}, "shape"),
        ({"w": np.zeros(2, np.float64)}, "dtype"),
        ({"v": np.zeros(2, np.float32)}, "names differ"),
    ],
)
def test_bad_updates_are_refused_and_change_nothing(update, reason):
    mean = WeightedMean({"w": np.zeros(2, np.float32)})
    mean.accept({"w": np.array([2.0, 4.0], np.float32)}, 1)
    with pytest.raises(UpdateError, match=reason):
        mean.accept(update, 1)
    assert mean.count == 1
    np.testing.assert_allclose(mean.result()["w"], [2.0, 4.0])


def test_huge_but_finite_values_are_not_mistaken_for_inf():
    mean = WeightedMean({"w": np.zeros(4, np.float32)})
    mean.accept({"w": np.full(4, 3e38, np.float32)}, 1)  # the sum overflows, the values do not
    assert mean.count == 1


def test_weight_must_be_positive():
    mean = WeightedMean({"w": np.zeros(2)})
    with pytest.raises(ValueError, match="positive"):
        mean.accept({"w": np.zeros(2)}, 0)


def test_diff_and_apply_are_inverse():
    old = {"w": np.array([1.0, 2.0], np.float32)}
    new = {"w": np.array([1.5, 1.0], np.float32)}
    np.testing.assert_array_equal(apply_diff(old, diff(new, old))["w"], new["w"])


def test_an_owned_first_update_becomes_the_accumulator_without_a_copy():
    g = {"w": np.zeros(3, np.float32)}
    first = {"w": np.array([1.0, 2.0, 3.0], np.float32)}
    mean = WeightedMean(g)
    mean.accept(first, 1, owned=True)
    mean.accept({"w": np.array([3.0, 2.0, 1.0], np.float32)}, 1)
    out = mean.result()["w"]
    assert np.shares_memory(out, first["w"])
    np.testing.assert_allclose(out, [2.0, 2.0, 2.0])


def test_unowned_or_read_only_updates_are_never_written():
    g = {"w": np.zeros(2, np.float32)}
    frozen = np.array([1.0, 1.0], np.float32)
    frozen.flags.writeable = False
    for owned in (False, True):
        mean = WeightedMean(g)
        mean.accept({"w": frozen}, 1, owned=owned)
        mean.accept({"w": np.array([3.0, 3.0], np.float32)}, 1)
        assert not np.shares_memory(mean.result()["w"], frozen)
    np.testing.assert_array_equal(frozen, [1.0, 1.0])
