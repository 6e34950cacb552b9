"""An experiment's results per variant, from what the store counted of its runs' recorded events.

The unit is a run exposed to the experiment (a conversation's run from its start to its ``end`` state;
a conversation that starts again is exposed again, in the same variant). Per variant: runs
("conversations"), completions, the completion rate with its 95 % Wilson interval, the mean turns of
the completed runs, the no-match rate (no-matches per user message), and, against the control, the
difference in completion rate with a pooled two-proportion z-test.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from mcp_engine.experiments.models import ExperimentDefinition
from mcp_engine.experiments.stats import CONFIDENCE, two_proportion_test, wilson_interval
from mcp_engine.store.base import ExperimentRecord, ExperimentStatus, VariantCounts


class Interval(BaseModel):
    low: float
    high: float


class Comparison(BaseModel):
    """This variant's completion rate against the control's (two-sided pooled z-test)."""

    difference: float = Field(description="This variant's completion rate minus the control's.")
    z: float
    p_value: float
    significant: bool = Field(description="p_value below 1 - confidence_level.")


class VariantResult(BaseModel):
    name: str
    percentage: float
    control: bool
    conversations: int = Field(description="Runs allocated to this variant.")
    completions: int = Field(description="Those of them that reached an end state.")
    completion_rate: float | None = Field(description="completions / conversations; null without any.")
    completion_rate_interval: Interval = Field(description="The Wilson score interval of the rate.")
    mean_turns_to_completion: float | None = Field(description="User messages per completed run.")
    turns: int = Field(description="User messages in all its runs.")
    no_matches: int
    no_match_rate: float | None = Field(description="no_matches / turns; null without any turn.")
    vs_control: Comparison | None = Field(
        description="Null for the control itself, and while either side has no runs."
    )


class ExperimentResults(BaseModel):
    experiment_id: str
    flow_id: str
    status: ExperimentStatus
    started_at: float | None
    stopped_at: float | None
    control: str
    confidence_level: float
    variants: list[VariantResult] = Field(description="In the experiment's order.")
    notes: list[str] = Field(description="What to keep in mind reading these figures.")


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def summarize(
    record: ExperimentRecord, counts: list[VariantCounts], notes: list[str] | None = None
) -> ExperimentResults:
    definition = ExperimentDefinition.model_validate(record.document)
    control_name = definition.control_variant
    found = {c.variant: c for c in counts}
    empty = VariantCounts("", 0, 0, 0, 0, 0)
    control = found.get(control_name, empty)
    variants = []
    for variant in definition.variants:
        mine = found.get(variant.name, empty)
        is_control = variant.name == control_name
        test = (
            None
            if is_control
            else two_proportion_test(
                mine.completions, mine.conversations, control.completions, control.conversations
            )
        )
        low, high = wilson_interval(mine.completions, mine.conversations)
        variants.append(
            VariantResult(
                name=variant.name,
                percentage=variant.percentage,
                control=is_control,
                conversations=mine.conversations,
                completions=mine.completions,
                completion_rate=_ratio(mine.completions, mine.conversations),
                completion_rate_interval=Interval(low=low, high=high),
                mean_turns_to_completion=_ratio(mine.turns_to_complete, mine.completions),
                turns=mine.turns,
                no_matches=mine.no_matches,
                no_match_rate=_ratio(mine.no_matches, mine.turns),
                vs_control=None
                if test is None
                else Comparison(
                    difference=test.difference,
                    z=test.z,
                    p_value=test.p_value,
                    significant=test.significant(),
                ),
            )
        )
    return ExperimentResults(
        experiment_id=record.experiment_id,
        flow_id=record.flow_id,
        status=record.status,
        started_at=record.started_at,
        stopped_at=record.stopped_at,
        control=control_name,
        confidence_level=CONFIDENCE,
        variants=variants,
        notes=notes or [],
    )
