"""``/v2/experiments``: create, list, read, start, stop an A/B experiment of a tenant, and its results.

Tenant-scoped exactly like flows: the tenant comes from the key (or, with auth off, the request names
it), and another tenant's experiment is simply not found. The engine's ``ExperimentService`` does the
work; documents are checked there, every problem at once (422), each with its JSON pointer.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from mcp_engine.api.rest import experiment_models as models
from mcp_engine.api.rest.edge import Call, model_response
from mcp_engine.api.rest.models import Problem
from mcp_engine.api.rest.routing import Route
from mcp_engine.experiments.allocation import ActiveExperiment
from mcp_engine.experiments.models import ExperimentDefinition
from mcp_engine.experiments.results import ExperimentResults
from mcp_engine.store.base import ExperimentRecord


def _fields(record: ExperimentRecord) -> dict[str, Any]:
    definition = ExperimentDefinition.model_validate(record.document)
    runs_on = {variant.name: variant.modifications.flow_version for variant in definition.variants}
    if record.status != "draft":
        runs_on = {arm.name: arm.flow_version for arm in ActiveExperiment.of(record).arms}
    return {
        "tenant_id": record.tenant_id,
        "experiment_id": record.experiment_id,
        "flow_id": record.flow_id,
        "name": definition.name,
        "description": definition.description,
        "control": definition.control_variant,
        "variants": [
            models.VariantOut(**variant.model_dump(), runs_on=runs_on[variant.name])
            for variant in definition.variants
        ],
        "metadata": definition.metadata,
        "status": record.status,
        "created_at": record.created_at,
        "started_at": record.started_at,
        "stopped_at": record.stopped_at,
    }


def _out(record: ExperimentRecord) -> models.ExperimentOut:
    return models.ExperimentOut(**_fields(record))


async def create_experiment(call: Call) -> web.StreamResponse:
    """Check the experiment document and store it as a draft (``start=true``: and start it). 201 when
    stored, 200 when this exact document was stored already, 409 when its id is stored with another
    document, 422 with every problem (percentages, unknown flow or version, a merge patch whose patched
    flow does not validate, with the flow validator's pointers under the patch, another experiment
    running on the flow)."""
    document = call.body_as(models.ExperimentDocument).root
    named = document.get("tenant_id")
    tenant_id = await call.tenant(named if isinstance(named, str) and named else None)
    start = call.query_as(models.CreateQuery).start
    record, problems, existed = await call.engine.experiments.create(tenant_id, document, start)
    created = models.ExperimentCreated(**_fields(record), problems=[Problem(**p.to_dict()) for p in problems])
    return model_response(created, 200 if existed else 201)


async def list_experiments(call: Call) -> web.StreamResponse:
    query = call.query_as(models.ListQuery)
    records = await call.engine.experiments.of_tenant(await call.tenant())
    chosen = [
        r
        for r in records
        if (query.status is None or r.status == query.status)
        and (query.flow_id is None or r.flow_id == query.flow_id)
    ]
    return model_response(models.ExperimentList(experiments=[_out(r) for r in chosen]))


async def get_experiment(call: Call) -> web.StreamResponse:
    record = await call.engine.experiments.get(await call.tenant(), call.path["experiment_id"])
    return model_response(_out(record))


async def start_experiment(call: Call) -> web.StreamResponse:
    """Start splitting the flow's new runs among the variants (a running experiment: unchanged). Checked
    again first (422 with every problem): merge patches apply to the version published now. A stopped
    experiment does not start again (409)."""
    record = await call.engine.experiments.start(await call.tenant(), call.path["experiment_id"])
    return model_response(_out(record))


async def stop_experiment(call: Call) -> web.StreamResponse:
    """Stop allocating new runs (a stopped experiment: unchanged); runs already in a variant keep it
    until they end. Final: results stay readable."""
    record = await call.engine.experiments.stop(await call.tenant(), call.path["experiment_id"])
    return model_response(_out(record))


async def experiment_results(call: Call) -> web.StreamResponse:
    """Per variant: runs, completions, completion rate with its 95 % Wilson interval, mean turns to
    completion, no-match rate, and the completion rate against the control's (two-proportion z-test,
    p-value, significant at 95 %), from the recorded events of the experiment's runs."""
    results = await call.engine.experiments.results(await call.tenant(), call.path["experiment_id"])
    return model_response(results)


EXPERIMENT = "/v2/experiments/{experiment_id}"
ROUTES = (
    Route(
        "POST",
        "/v2/experiments",
        create_experiment,
        "Create an experiment (a draft)",
        "experiments",
        {201: models.ExperimentCreated, 200: models.ExperimentCreated},
        body=models.ExperimentDocument,
        body_schema=ExperimentDefinition,
        query=models.CreateQuery,
        errors=(409, 422),
    ),
    Route(
        "GET",
        "/v2/experiments",
        list_experiments,
        "List the tenant's experiments",
        "experiments",
        {200: models.ExperimentList},
        query=models.ListQuery,
    ),
    Route("GET", EXPERIMENT, get_experiment, "Get an experiment", "experiments", {200: models.ExperimentOut}),
    Route(
        "POST",
        EXPERIMENT + "/start",
        start_experiment,
        "Start an experiment",
        "experiments",
        {200: models.ExperimentOut},
        errors=(409, 422),
    ),
    Route(
        "POST",
        EXPERIMENT + "/stop",
        stop_experiment,
        "Stop an experiment",
        "experiments",
        {200: models.ExperimentOut},
    ),
    Route(
        "GET",
        EXPERIMENT + "/results",
        experiment_results,
        "An experiment's results",
        "experiments",
        {200: ExperimentResults},
    ),
)
