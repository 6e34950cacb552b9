"""The statistics an experiment's results need, and nothing more: a Wilson score interval for a
completion rate and a pooled two-proportion z-test of a variant against the control.

Both are a few lines of closed-form arithmetic on the standard library (``math.erfc`` for the normal
tail, ``statistics.NormalDist`` for the critical value); scipy or statsmodels would bring a heavy
dependency for them. The tests check both against published worked examples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

CONFIDENCE = 0.95


def critical_z(confidence: float = CONFIDENCE) -> float:
    """The two-sided standard normal quantile: 1.959964 for 95 %."""
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_interval(successes: int, trials: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval of ``successes / trials`` (Wilson 1927); (0, 1) with no trials.

    Unlike the textbook normal interval it stays inside [0, 1] and keeps its coverage for rates near 0
    or 1 and for small samples, which is where a young experiment's rates are."""
    if trials <= 0:
        return 0.0, 1.0
    z = critical_z(confidence)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class ProportionTest:
    """A variant's rate against the control's: the difference, the z statistic and two-sided p-value."""

    difference: float
    z: float
    p_value: float

    def significant(self, confidence: float = CONFIDENCE) -> bool:
        return self.p_value < 1 - confidence


def two_proportion_test(
    successes: int, trials: int, control_successes: int, control_trials: int
) -> ProportionTest | None:
    """The pooled two-proportion z-test of H0 "both rates are equal"; None when either side has no
    trials. When the pooled rate is 0 or 1 the two rates are equal and nothing can differ: z = 0, p = 1."""
    if trials <= 0 or control_trials <= 0:
        return None
    rate, control = successes / trials, control_successes / control_trials
    pooled = (successes + control_successes) / (trials + control_trials)
    variance = pooled * (1 - pooled) * (1 / trials + 1 / control_trials)
    if variance <= 0:
        return ProportionTest(rate - control, 0.0, 1.0)
    z = (rate - control) / math.sqrt(variance)
    return ProportionTest(rate - control, z, math.erfc(abs(z) / math.sqrt(2)))
