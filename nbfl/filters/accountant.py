"""How much privacy a repeated Gaussian mechanism has spent: Rényi DP, then (epsilon, delta).

The mechanism is the one the DP filter runs and DP-SGD runs: a sum with L2 sensitivity
``C`` released with ``N(0, (z*C)^2)`` noise, ``z`` being the noise multiplier, each time
with probability ``q``, independently each time (Poisson sampling: a client drawn into a
round, an example into a batch; a fixed-size draw is not exactly this) or every time
(``q = 1``). Neighbouring inputs differ by adding or removing one
contribution, the setting of DP-SGD and DP-FedAvg; a client that compares its noised
update against *any* other update it could have sent (sensitivity ``2C``) should account
with ``z / 2``.

Rényi DP composes by addition, so one step's RDP at each order, times the steps, is the
whole history; a conversion then gives the smallest epsilon over the orders. RDP per step
follows Mironov, Talwar & Zhang (2019), "Rényi Differential Privacy of the Sampled
Gaussian Mechanism", Section 3.3: a finite binomial sum at integer orders, two
converging series at fractional ones. Both run in log space, since the terms overflow
long before their logarithms do.

Two conversions from RDP to (epsilon, delta):

* ``"improved"`` (the default), Balle et al. (2020), "Hypothesis Testing Interpretations
  and Rényi Differential Privacy", Theorem 21, also Canonne, Kamath & Steinke (2020),
  Proposition 12: ``rdp + log((a-1)/a) - (log(delta) + log(a)) / (a-1)``. It holds for
  every mechanism and is smaller than the classic one at every order, which is why
  current TF Privacy (``dp_accounting``) and Opacus report it; on the same orders nbfl's
  epsilon is theirs.
* ``"classic"``, Mironov (2017), Proposition 3: ``rdp - log(delta) / (a-1)``, which TF
  Privacy used until 2020; kept to compare with figures published then.
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import numpy as np

Conversion = Literal["improved", "classic"]

# Fractional orders matter when noise is small and epsilon large; integers up to 256 and
# a few beyond cover the rest (the best order grows as the noise does and steps shrink).
DEFAULT_ORDERS: tuple[float, ...] = (
    (1.25, 1.5, 1.75, 2.25, 2.5, 3.5, 4.5) + tuple(float(a) for a in range(2, 257)) + (512.0, 1024.0)
)

_NEGLIGIBLE = -30.0  # log of a series term too small to matter: A_alpha >= 1, so relative error <= 1e-13


def gaussian_rdp(
    noise_multiplier: float, sample_rate: float, orders: Sequence[float] | np.ndarray = DEFAULT_ORDERS
) -> np.ndarray:
    """Rényi DP of one step of the (Poisson-)sampled Gaussian mechanism at each order."""
    z = _check_noise(noise_multiplier)
    q = _check_rate(sample_rate)
    alphas = _check_orders(orders)
    if q == 1.0:
        return alphas / (2 * z * z)  # the plain Gaussian mechanism
    log_a = [_log_a_int(q, z, int(a)) if a.is_integer() else _log_a_frac(q, z, float(a)) for a in alphas]
    return np.array(log_a) / (alphas - 1)


def rdp_to_epsilon(
    rdp: Sequence[float] | np.ndarray,
    orders: Sequence[float] | np.ndarray,
    delta: float,
    conversion: Conversion = "improved",
) -> tuple[float, float]:
    """The smallest epsilon at ``delta`` that the RDP curve guarantees, and the order that gives it."""
    alphas = _check_orders(orders)
    rdp = np.asarray(rdp, dtype=float)
    if rdp.shape != alphas.shape or np.any(rdp < 0) or np.any(np.isnan(rdp)):
        raise ValueError("rdp needs one non-negative value per order")
    delta = _check_delta(delta)
    if conversion == "improved":
        eps = rdp + np.log1p(-1 / alphas) - (math.log(delta) + np.log(alphas)) / (alphas - 1)
    elif conversion == "classic":
        eps = rdp - math.log(delta) / (alphas - 1)
    else:
        raise ValueError(f"conversion must be 'improved' or 'classic', not {conversion!r}")
    # Total variation <= sqrt(1 - exp(-KL)) (Bretagnolle-Huber) and KL <= RDP at any order,
    # so this little RDP is already (0, delta): no steps at all, or almost no signal.
    eps[-np.expm1(-rdp) <= delta * delta] = 0.0
    best = int(np.argmin(eps))
    return max(0.0, float(eps[best])), float(alphas[best])  # a negative epsilon still only promises (0, delta)


def epsilon_for(
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    delta: float,
    *,
    orders: Sequence[float] = DEFAULT_ORDERS,
    conversion: Conversion = "improved",
) -> float:
    """Epsilon at ``delta`` after ``steps`` sampled Gaussian steps; for DP-SGD ``sample_rate = batch / n``."""
    steps = _check_steps(steps)
    return rdp_to_epsilon(steps * gaussian_rdp(noise_multiplier, sample_rate, orders), orders, delta, conversion)[0]


class PrivacyAccountant:
    """Privacy spent by one client (or one training run) so far, one ``step()`` per noised release.

    >>> acct = PrivacyAccountant(noise_multiplier=1.1, sample_rate=0.1)
    >>> acct.step(10)
    >>> eps, delta = acct.spent()
    """

    def __init__(
        self,
        noise_multiplier: float,
        sample_rate: float = 1.0,
        delta: float = 1e-5,
        *,
        orders: Sequence[float] = DEFAULT_ORDERS,
        conversion: Conversion = "improved",
    ) -> None:
        if conversion not in ("improved", "classic"):
            raise ValueError(f"conversion must be 'improved' or 'classic', not {conversion!r}")
        self.noise_multiplier = _check_noise(noise_multiplier)
        self.sample_rate = _check_rate(sample_rate)
        self.delta = _check_delta(delta)
        self.orders = _check_orders(orders)
        self.conversion: Conversion = conversion
        self.steps = 0
        self._rdp_per_step = gaussian_rdp(self.noise_multiplier, self.sample_rate, self.orders)  # the same every step

    def step(self, n: int = 1) -> None:
        """Record ``n`` more releases (rounds the client was sampled in, or batches)."""
        self.steps += _check_steps(n)

    def epsilon(self, delta: float | None = None) -> float:
        """Epsilon spent so far at ``delta`` (the accountant's own delta by default)."""
        delta = self.delta if delta is None else delta
        return rdp_to_epsilon(self.steps * self._rdp_per_step, self.orders, delta, self.conversion)[0]

    def spent(self) -> tuple[float, float]:
        """``(epsilon, delta)`` spent so far."""
        return self.epsilon(), self.delta

    def __repr__(self) -> str:
        eps, delta = self.spent()
        return (
            f"PrivacyAccountant(noise_multiplier={self.noise_multiplier}, sample_rate={self.sample_rate}, "
            f"steps={self.steps}: epsilon={eps:.3g} at delta={delta:g})"
        )


# --- A_alpha = E_{x ~ N(0, z^2)} [((1-q) + q * exp((2x - 1) / (2 z^2)))^alpha], in log space ---


def _log_a_int(q: float, z: float, alpha: int) -> float:
    """Integer order: sum_k C(alpha,k) (1-q)^(alpha-k) q^k exp((k^2-k)/(2 z^2)), every term positive."""
    k = np.arange(alpha + 1)
    log_fact = np.concatenate(([0.0], np.cumsum(np.log(np.arange(1, alpha + 1)))))
    log_binom = log_fact[alpha] - log_fact[k] - log_fact[alpha - k]
    terms = log_binom + (alpha - k) * math.log1p(-q) + k * math.log(q) + (k * k - k) / (2 * z * z)
    top = terms.max()
    return float(top + math.log(np.exp(terms - top).sum()))


def _log_a_frac(q: float, z: float, alpha: float) -> float:
    """Fractional order: the integral split where q*N(1,z^2) overtakes (1-q)*N(0,z^2), each side a binomial series.

    Below the split, at ``x0``, the mixture ratio is ``(1-q)^alpha (1 + r)^alpha`` with
    ``r < 1``, so it expands in powers of ``r``; above, in powers of ``1/r``. Each power
    integrates to a Gaussian tail (the erfc), and the generalized binomial coefficients
    alternate in sign past ``alpha``. Past ``alpha`` the terms only shrink, so the series
    stop at the first term that no longer matters.
    """
    log_q, log_1mq = math.log(q), math.log1p(-q)
    x0 = z * z * (log_1mq - log_q) + 0.5
    scale = math.sqrt(2) * z
    positive: list[float] = []
    negative: list[float] = []
    log_coef, sign, i = 0.0, 1.0, 0  # log |C(alpha, i)| and its sign
    while True:
        j = alpha - i
        below = log_coef + i * log_q + j * log_1mq + (i * i - i) / (2 * z * z) + _log_half_erfc((i - x0) / scale)
        above = log_coef + j * log_q + i * log_1mq + (j * j - j) / (2 * z * z) + _log_half_erfc((x0 - j) / scale)
        (positive if sign > 0 else negative).extend((below, above))
        if i > alpha and max(below, above) < _NEGLIGIBLE:
            break
        log_coef += math.log(abs(alpha - i)) - math.log(i + 1)
        sign = sign if alpha > i else -sign
        i += 1
    log_pos = _log_sum_exp(positive)
    return log_pos + math.log1p(-math.exp(_log_sum_exp(negative) - log_pos)) if negative else log_pos


def _log_half_erfc(x: float) -> float:
    """log(erfc(x) / 2), also where erfc underflows (its asymptotic series; 4e-11 relative at x = 25)."""
    if x < 25:
        return math.log(0.5 * math.erfc(x))
    x2 = x * x
    return -x2 - math.log(2 * x * math.sqrt(math.pi)) + math.log1p(-1 / (2 * x2) + 3 / (4 * x2 * x2) - 15 / (8 * x2**3))


def _log_sum_exp(logs: list[float]) -> float:
    arr = np.array(logs)
    top = arr.max()
    return float(top + math.log(np.exp(arr - top).sum()))


# --- arguments ---


def _check_noise(noise_multiplier: float) -> float:
    z = _number("noise_multiplier", noise_multiplier)
    if not (z > 0 and math.isfinite(z)):
        raise ValueError(
            f"noise_multiplier must be positive and finite (no noise, no guarantee), not {noise_multiplier!r}"
        )
    return z


def _check_rate(sample_rate: float) -> float:
    q = _number("sample_rate", sample_rate)
    if not 0 < q <= 1:
        raise ValueError(f"sample_rate must be in (0, 1], not {sample_rate!r}")
    return q


def _check_delta(delta: float) -> float:
    d = _number("delta", delta)
    if not 0 < d < 1:
        raise ValueError(f"delta must be in (0, 1), not {delta!r}")
    return d


def _number(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, not {value!r}")
    return float(value)


def _check_steps(steps: int) -> int:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, not {steps!r}")
    return int(steps)


def _check_orders(orders: Sequence[float] | np.ndarray) -> np.ndarray:
    alphas = np.asarray(orders, dtype=float)
    if alphas.ndim != 1 or alphas.size == 0 or not np.all(np.isfinite(alphas)) or np.any(alphas <= 1):
        raise ValueError("orders must be a non-empty list of finite numbers above 1")
    return alphas


class PrivacyLedger:
    """The controller's running tally: each client's DP releases, as it reported them.

    Every update a client sends through the ``dp`` filter is one Gaussian release with
    that spec's noise multiplier. The ledger adds up each client's RDP and reports the
    epsilon every client has spent at ``delta``, accounted with ``z / 2``: the controller
    sees each site's own update, and a different dataset can move a clipped update by up
    to ``2 * clip`` (replace-one adjacency), the conservative reading for local DP.
    """

    def __init__(self, delta: float = 1e-5, orders: Sequence[float] = DEFAULT_ORDERS) -> None:
        self.delta = _check_delta(delta)
        self.orders = _check_orders(orders)
        self.rdp: dict[str, np.ndarray] = {}

    def record(self, client: str, specs: Sequence[dict]) -> None:
        """Add one update's releases from the filter specs its client reported."""
        for spec in specs:
            if isinstance(spec, dict) and spec.get("name") == "dp":
                z = spec.get("noise_multiplier")
                if isinstance(z, (int, float)) and not isinstance(z, bool) and math.isfinite(z) and z > 0:
                    step = gaussian_rdp(z / 2, 1.0, self.orders)
                else:
                    step = np.full(len(self.orders), np.inf)
                self.rdp[client] = self.rdp.get(client, 0.0) + step

    def epsilons(self) -> dict[str, float]:
        """Epsilon each client has spent so far (inf where it sent a release without noise)."""
        return {
            name: math.inf
            if np.isinf(rdp).all()
            else rdp_to_epsilon(np.where(np.isinf(rdp), 1e300, rdp), self.orders, self.delta)[0]
            for name, rdp in self.rdp.items()
        }
