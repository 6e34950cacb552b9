"""Sticky allocation: which variant a new run of an experiment's flow gets, and what that does to the
conversation.

The variant is a function of the experiment and the unit (the user id, else the conversation id) only:
a BLAKE2b hash of both, read as a point in [0, 100) and looked up among the variants' cumulative
percentages. No state, no randomness, nothing stored to decide it, so every engine process, before and
after any restart, puts the same user in the same variant; and experiments are independent of each other
because each hashes with its own id.

The choice is recorded on the run (``context["run"]``: ``experiment_id``, ``variant``, ``turns``) when it
starts, so the run keeps it to its end, even if the experiment stops meanwhile; the next run is allocated
afresh (the same variant, while the experiment runs). Every event of the run carries the experiment and
variant, so results (and any downstream consumer of the event sinks) can split by variant.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from mcp_engine.experiments.models import ExperimentDefinition, derived_version
from mcp_engine.store.base import ExperimentRecord

EXPOSURE = "experiment_exposure"
_SCALE = 100 / 2**64


def bucket(tenant_id: str, experiment_id: str, unit: str) -> float:
    """Where ``unit`` falls in [0, 100) for this experiment: stable across processes and versions."""
    key = f"{tenant_id}\x00{experiment_id}\x00{unit}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") * _SCALE


@dataclass(frozen=True)
class Arm:
    """A variant as allocation sees it: its share's upper bound, the flow version it runs (None: the
    published one) and the variables it sets."""

    name: str
    upper: float
    flow_version: str | None
    variables: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ActiveExperiment:
    """A running experiment, ready for allocation; cached per flow by ``ExperimentService``."""

    tenant_id: str
    experiment_id: str
    flow_id: str
    arms: tuple[Arm, ...]

    @classmethod
    def of(cls, record: ExperimentRecord) -> ActiveExperiment:
        definition = ExperimentDefinition.model_validate(record.document)
        arms, upper = [], 0.0
        for variant in definition.variants:
            upper += variant.percentage
            changes = variant.modifications
            version = changes.flow_version
            if changes.merge_patch is not None:
                version = derived_version(record.bases[variant.name], record.experiment_id, variant.name)
            arms.append(Arm(variant.name, upper, version, changes.variables))
        return cls(record.tenant_id, record.experiment_id, record.flow_id, tuple(arms))

    def choose(self, unit: str) -> Arm:
        point = bucket(self.tenant_id, self.experiment_id, unit)
        for arm in self.arms:
            if point < arm.upper:
                return arm
        return next(arm for arm in reversed(self.arms) if arm.upper > 0)  # float rounding at 100


@dataclass(frozen=True)
class Assignment:
    """A new run's variant: recorded on the run and announced by the run's first event."""

    experiment_id: str
    arm: Arm
    unit: str  # "user" or "conversation": what the hash was of

    def apply(self, context: dict[str, Any]) -> None:
        context["run"].update(experiment_id=self.experiment_id, variant=self.arm.name, turns=0)
        if self.arm.variables:  # a copy: the run may change its variables, never the experiment's
            context["variables"].update(orjson.loads(orjson.dumps(self.arm.variables)))

    def exposure(self) -> dict[str, Any]:
        return {
            "experiment_id": self.experiment_id,
            "variant": self.arm.name,
            "allocated_by": self.unit,
            "flow_version": self.arm.flow_version,
        }


def mark_turn(context: dict[str, Any], events: list[dict[str, Any]]) -> None:
    """Tag a finished turn's events with its run's experiment and variant, and count its turns (a
    completion carries the run's turn count). Nothing happens for a run outside experiments."""
    run = context["run"]
    experiment_id = run.get("experiment_id")
    if not experiment_id:
        return
    variant = run["variant"]
    for event in events:
        kind = event["type"]
        if kind == "message_in":
            run["turns"] = run.get("turns", 0) + 1
        elif kind == "run_completed":
            event["data"]["turns"] = run.get("turns", 0)
        event["experiment_id"], event["variant"] = experiment_id, variant
