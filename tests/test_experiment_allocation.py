"""Sticky allocation: the configured split over many users, the same user always in the same variant,
the same answer in any process (a fixed hash, no state), and independent experiments."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest

from mcp_engine.experiments.allocation import ActiveExperiment, Arm, bucket
from mcp_engine.store.base import ExperimentRecord

USERS = [f"user-{n}" for n in range(10_000)]


def active(*shares: float, experiment_id: str = "exp") -> ActiveExperiment:
    variants = [{"name": f"v{i}", "percentage": share} for i, share in enumerate(shares)]
    document = {"experiment_id": experiment_id, "flow_id": "pizza", "variants": variants}
    record = ExperimentRecord("demo", experiment_id, "pizza", document, "running", 1.0, 2.0)
    return ActiveExperiment.of(record)


@pytest.mark.parametrize("shares", [(50, 50), (70, 20, 10), (33.333333, 33.333333, 33.333334), (90, 10)])
def test_10000_users_split_within_2_percent_of_the_configuration(shares: tuple[float, ...]) -> None:
    experiment = active(*shares)
    got = Counter(experiment.choose(user).name for user in USERS)
    for i, share in enumerate(shares):
        assert abs(got[f"v{i}"] / len(USERS) * 100 - share) <= 2, (got, shares)


def test_the_same_user_always_gets_the_same_variant() -> None:
    experiment = active(50, 30, 20)
    first = [experiment.choose(user).name for user in USERS[:2000]]
    again = [active(50, 30, 20).choose(user).name for user in USERS[:2000]]  # rebuilt, as after a restart
    assert first == again


def test_the_hash_is_fixed_so_processes_and_releases_agree() -> None:
    # Pinned values: if these change, every running experiment would move its users between variants.
    assert bucket("demo", "short-greeting", "user-1") == pytest.approx(45.534997748962354)
    assert bucket("demo", "short-greeting", "user-2") == pytest.approx(30.80532324357195)
    code = (
        "from mcp_engine.experiments.allocation import bucket;"
        "print(repr([bucket('demo', 'exp', f'user-{n}') for n in range(200)]))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert other.stdout.strip() == repr([bucket("demo", "exp", f"user-{n}") for n in range(200)])


def test_experiments_allocate_independently() -> None:
    one, two = active(50, 50, experiment_id="one"), active(50, 50, experiment_id="two")
    pairs = Counter((one.choose(user).name, two.choose(user).name) for user in USERS)
    for pair in [("v0", "v0"), ("v0", "v1"), ("v1", "v0"), ("v1", "v1")]:
        assert abs(pairs[pair] / len(USERS) - 0.25) <= 0.02


def test_a_zero_percent_variant_gets_nobody_and_rounding_never_falls_off_the_end() -> None:
    experiment = active(0, 100, 0)
    assert {experiment.choose(user).name for user in USERS[:3000]} == {"v1"}
    rounded = ActiveExperiment(
        "demo", "exp", "pizza", (Arm("a", 49.9999999, None), Arm("b", 99.9999999, None))
    )
    assert {rounded.choose(user).name for user in USERS} <= {"a", "b"}
