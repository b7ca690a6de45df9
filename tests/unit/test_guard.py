"""The guard's join budgets, on a clock the test turns (the rest is tested over sockets in test_hostile)."""

from nbfl.transport.guard import Guard, GuardSettings


def test_expected_joins_pass_the_rooms_pace_and_only_as_many_as_expected():
    now = [0.0]
    guard = Guard(GuardSettings(joins_per_address=(0.0, 2), joins=(0.0, 100)), clock=lambda: now[0])

    def join(n: int, address: str = "127.0.0.1") -> str | None:
        return guard.join_refusal(guard.peer(bytes([n]), lambda: address), known=False)

    assert [join(1), join(2)] == [None, None]
    assert join(3) == "too many joins from this address"
    guard.expect("127.0.0.1", 3)
    assert [join(4), join(5), join(6)] == [None, None, None]
    assert join(7) == "too many joins from this address"
    assert join(8, "10.0.0.9") is None  # another address keeps its own pace
