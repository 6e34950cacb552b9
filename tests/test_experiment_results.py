"""Results from recorded events on scripted populations, on both stores: a population whose variants
complete at clearly different rates (significant) and one whose rates are the same (not significant),
with every count checked against the script."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mcp_engine.runtime.execution import ExecutionService
from mcp_engine.store.base import Store
from mcp_engine.store.postgres import ProductionStore
from mcp_engine.store.sqlite import SQLiteStore
from tests.engine_fixtures import TENANT, engine_settings
from tests.experiment_kit import SURVEY, document, say, variant
from tests.production_kit import POSTGRES_URI, REDIS_URL, fresh_backing

USERS = 400


@pytest.fixture(params=["sqlite", "postgres"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ExecutionService]:
    async with fresh_backing("xr") as name:
        store: Store = (
            SQLiteStore(str(tmp_path / "engine.db"))
            if request.param == "sqlite"
            else ProductionStore(POSTGRES_URI, REDIS_URL, schema=name, key_prefix=name)
        )
        engine = ExecutionService(store, settings=engine_settings())
        await engine.start()
        try:
            await engine.catalogue.publish_document(dict(SURVEY))
            yield engine
        finally:
            await engine.close()


async def run_population(engine: ExecutionService, rates: dict[str, float], seed: int) -> Counter[str]:
    """Each user says something the survey does not understand, then completes it ("yes") with the
    true rate of the variant they got, or misses again; the completions, by variant."""
    rng = random.Random(seed)
    completed: Counter[str] = Counter()
    for n in range(USERS):
        first = await say(engine, f"c-{n}", "nope", f"user-{n}", flow="survey")
        chosen = first["ab_variant"]
        if rng.random() < rates[chosen]:
            completed[chosen] += 1
            assert (await say(engine, f"c-{n}", "yes", flow="survey"))["current_state"] == "done"
        else:
            await say(engine, f"c-{n}", "still nope", flow="survey")
    await engine.sinks.drain()
    return completed


async def start(engine: ExecutionService) -> None:
    survey = document("survey-test", "survey", variant("control", 50), variant("treatment", 50))
    await engine.experiments.create(TENANT, survey, start=True)


async def test_clearly_different_rates_are_significant(engine: ExecutionService) -> None:
    await start(engine)
    completed = await run_population(engine, {"control": 0.3, "treatment": 0.6}, seed=12)
    results = await engine.experiments.results(TENANT, "survey-test")
    by_name = {v.name: v for v in results.variants}
    assert sum(v.conversations for v in results.variants) == USERS
    for name, result in by_name.items():
        runs = result.conversations
        assert result.completions == completed[name]
        assert result.completion_rate == pytest.approx(completed[name] / runs)
        assert (
            result.completion_rate_interval.low
            < result.completion_rate
            < result.completion_rate_interval.high
        )
        assert result.mean_turns_to_completion == 2.0
        assert result.turns == 2 * runs
        assert result.no_matches == runs + (runs - completed[name])  # one miss each, two for the rest
        assert result.no_match_rate == pytest.approx(result.no_matches / result.turns)
    assert by_name["control"].control
    assert by_name["control"].vs_control is None
    comparison = by_name["treatment"].vs_control
    assert comparison is not None
    assert comparison.significant
    assert comparison.p_value < 1e-6
    assert comparison.difference == pytest.approx(
        by_name["treatment"].completion_rate - by_name["control"].completion_rate  # type: ignore[operator]
    )
    assert results.notes == []


async def test_equal_rates_are_not_significant(engine: ExecutionService) -> None:
    await start(engine)
    await run_population(engine, {"control": 0.5, "treatment": 0.5}, seed=3)
    results = await engine.experiments.results(TENANT, "survey-test")
    comparison = results.variants[1].vs_control
    assert comparison is not None
    assert not comparison.significant
    assert comparison.p_value > 0.05


async def test_results_before_any_run_are_empty_not_an_error(engine: ExecutionService) -> None:
    await start(engine)
    results = await engine.experiments.results(TENANT, "survey-test")
    assert [(v.name, v.conversations, v.completion_rate, v.vs_control) for v in results.variants] == [
        ("control", 0, None, None),
        ("treatment", 0, None, None),
    ]
    assert results.status == "running"
