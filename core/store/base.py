"""The ``Store`` contract: what the engine keeps, and the one atomic write a turn makes.

Two implementations honour it (embedded SQLite; PostgreSQL + Redis) and one contract test suite runs
against both. Contexts and events are plain dicts (JSON-able); stores serialise them once (orjson).
Every method is scoped by tenant: a conversation or flow of another tenant is simply not found.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal, Protocol

import orjson

from mcp_engine.errors import ExperimentConflict, ExperimentNotFound, UnstorableData
from mcp_engine.security.grants import Grants

if TYPE_CHECKING:
    from mcp_engine.runtime.breaker import BreakerStore

FlowStatus = Literal["draft", "published"]
ExperimentStatus = Literal["draft", "running", "stopped"]


def encode_json(value: Any, what: str, canonical: bool = False) -> bytes:
    """Serialise ``value`` once with orjson, or raise ``UnstorableData`` naming where the bad value is.

    Called before any write starts, so a context a plugin filled with a Python object fails loudly and
    leaves the store untouched instead of half a turn being saved. ``canonical`` sorts keys, so equal
    documents give equal bytes (how a re-saved flow version is told from a changed one).
    """
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if canonical else None)
    except orjson.JSONEncodeError as exc:
        raise UnstorableData(
            f"{_bad_path(value, what) or what} cannot be stored as JSON: {exc}", {"what": what}
        ) from exc


def encode_events(events: Sequence[dict[str, Any]]) -> list[bytes]:
    """``encode_json`` of each of a turn's events; the pointer (``events[i]``) is only made for the one
    that fails."""
    dumps = orjson.dumps
    try:
        return [dumps(event) for event in events]
    except orjson.JSONEncodeError:
        return [encode_json(event, f"events[{i}]") for i, event in enumerate(events)]


def _bad_path(value: Any, path: str) -> str | None:
    """The dotted path of the first value orjson refuses (only walked when encoding failed)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path} (key {key!r})"
            found = _bad_path(item, f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(value, list | tuple):
        return next((p for i, v in enumerate(value) if (p := _bad_path(v, f"{path}[{i}]"))), None)
    try:
        orjson.dumps(value)
    except orjson.JSONEncodeError:
        return path
    return None


@dataclass(frozen=True)
class FlowVersion:
    tenant_id: str
    flow_id: str
    version: str
    document: dict[str, Any]
    status: FlowStatus
    created_at: float
    published_at: float | None = None


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    default_flow: str | None = None
    enabled_plugins: tuple[str, ...] | None = None  # None: every installed plugin
    outbound_webhook: str | None = None
    grants: Grants = field(default_factory=Grants)  # the operator's, never the tenant's own to change
    webhook_secret: str | None = None  # signs what is POSTed to outbound_webhook; never shown back


@dataclass(frozen=True)
class Delivery:
    """A POST to a tenant's outbound webhook, kept until acknowledged (``mcp_engine.runtime.outbound``)."""

    delivery_id: str
    tenant_id: str
    conversation_id: str
    body: bytes
    attempts: int = 0
    next_at: float = 0.0
    created_at: float = 0.0


@dataclass(frozen=True)
class ApiKey:
    """A tenant's API key as the store keeps it: never the secret, only its hash (in the store, not here).

    ``key_id`` is public (it is part of the key's readable prefix and what an operator revokes by);
    ``revoked_at`` is None while the key is live.
    """

    key_id: str
    tenant_id: str
    created_at: float
    revoked_at: float | None = None


@dataclass(frozen=True)
class ExperimentRecord:
    """An experiment as the store keeps it: its document (``ExperimentDefinition.stored()``), immutable
    once stored, and its life: draft -> running -> stopped (final). ``bases`` is fixed at start: for each
    merge-patched variant, the flow version its patch applies to."""

    tenant_id: str
    experiment_id: str
    flow_id: str
    document: dict[str, Any]
    status: ExperimentStatus
    created_at: float
    started_at: float | None = None
    stopped_at: float | None = None
    bases: dict[str, str] = field(default_factory=dict)


def found_experiment(record: ExperimentRecord | None, experiment_id: str) -> ExperimentRecord:
    """``record``, or ``ExperimentNotFound`` (what a store's start or stop says of an unknown id)."""
    if record is None:
        raise ExperimentNotFound(f"experiment '{experiment_id}' not found", {"experiment_id": experiment_id})
    return record


def start_changed_nothing(record: ExperimentRecord | None, experiment_id: str) -> ExperimentRecord:
    """What a store's start returns when no draft was there to start: the running experiment as it is;
    ``ExperimentNotFound``, or ``ExperimentConflict`` for a stopped one (stopped is final)."""
    current = found_experiment(record, experiment_id)
    if current.status == "stopped":
        raise ExperimentConflict(
            f"experiment '{experiment_id}' is stopped and cannot start again: create a new one",
            {"experiment_id": experiment_id, "status": "stopped"},
        )
    return current


@dataclass(frozen=True)
class VariantCounts:
    """What the store counted for one variant of an experiment, from the events of its runs: runs
    exposed, runs completed, the turns those completed runs took, every turn, and no-matches."""

    variant: str
    conversations: int
    completions: int
    turns_to_complete: int
    turns: int
    no_matches: int


@dataclass
class Conversation:
    """A conversation's one row: the context and its version (for compare-and-set)."""

    tenant_id: str
    conversation_id: str
    context: dict[str, Any]
    version: int


@dataclass(frozen=True)
class Timer:
    """A server-side timeout: fire ``state``'s timeout for the conversation at ``due_at`` (epoch seconds).

    ``run`` identifies the wait it belongs to, so a timer left from an earlier visit fires nothing.
    """

    tenant_id: str
    conversation_id: str
    due_at: float
    state: str
    run: str


@dataclass
class TurnWrite:
    """Everything one turn writes, atomically: the context (CAS on ``expected_version``), new events (kept
    once: the conversation's history, also listed by ``Store.events``, and the counts of an experiment's
    run), the idempotency record, and the conversation's timer (set, cleared, or left as it is)."""

    tenant_id: str
    conversation_id: str
    expected_version: int | None  # None: the conversation must not exist yet
    context: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)
    message_id: str | None = None
    reply: dict[str, Any] | None = None  # stored with message_id (a record needs both)
    timer: Timer | Literal["keep"] | None = "keep"  # a Timer sets, None clears, "keep" leaves it

    @cached_property
    def encoded_context(self) -> bytes:
        """The context as the store writes it, serialised once (the engine checks its size first)."""
        return encode_json(self.context, "context")


class TurnStart(Protocol):
    """What a turn starts from, while the conversation's lock is held (``Store.begin_turn``).

    ``reply`` is the stored reply when the turn's ``message_id`` was already processed: the caller returns
    it and does nothing else. Otherwise ``conversation`` is the loaded conversation (None: a new one), and
    ``commit`` writes the turn and, where the store can, releases the lock in the same round trip.
    """

    conversation: Conversation | None
    reply: dict[str, Any] | None

    async def commit(self, write: TurnWrite) -> int: ...


class Store(Protocol):
    """What the engine keeps. ``open`` migrates the schema; every method is safe to call concurrently."""

    name: str

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ready(self) -> bool:
        """The store answers (readiness)."""
        ...

    def breaker_store(self) -> BreakerStore:
        """Where circuit breakers keep their state, once the store is open: in this process, or shared
        by every engine process on the store."""
        ...

    # tenants
    async def put_tenant(self, tenant: Tenant) -> None: ...

    async def get_tenant(self, tenant_id: str) -> Tenant | None: ...

    async def list_tenants(self) -> list[Tenant]:
        """Every tenant, by id (for operators: ``mcp-engine tenants list``)."""
        ...

    # API keys (the secret itself is never handed to the store: ``key_hash`` is its SHA-256, hex)
    async def put_api_key(self, tenant_id: str, key_id: str, key_hash: str) -> ApiKey:
        """Store a new live key; a ``key_id`` the tenant already has, or a stored hash: ``InvalidInput``."""
        ...

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        """The live key with this hash, else None: a revoked key is not found, so no caller can forget
        to check ``revoked_at`` and let it in."""
        ...

    async def revoke_api_key(self, tenant_id: str, key_id: str) -> bool:
        """Revoke the tenant's key; False when it has no live key of that id (another tenant's: untouched)."""
        ...

    async def list_api_keys(self, tenant_id: str) -> list[ApiKey]:
        """The tenant's keys, live and revoked, oldest first."""
        ...

    # flows
    async def save_flow_version(self, tenant_id: str, document: dict[str, Any]) -> FlowVersion:
        """Store a draft version (``document["flow_id"]``/``["version"]``); the same content again is a
        no-op returning the stored one, other content for a stored version raises ``VersionExists``."""
        ...

    async def get_flow_version(self, tenant_id: str, flow_id: str, version: str) -> FlowVersion | None: ...

    async def publish(self, tenant_id: str, flow_id: str, version: str) -> FlowVersion:
        """Make ``version`` the one new runs use (also an older one: a rollback). Raises ``FlowNotFound``."""
        ...

    async def published(self, tenant_id: str, flow_id: str) -> FlowVersion | None: ...

    async def published_version(self, tenant_id: str, flow_id: str) -> str | None:
        """Only the name of the published version: what a new run looks up (no document to decode)."""
        ...

    async def list_flows(self, tenant_id: str) -> list[FlowVersion]:
        """The latest-created version of each flow of the tenant (published or not)."""
        ...

    async def list_versions(self, tenant_id: str, flow_id: str) -> list[FlowVersion]: ...

    async def catalogue_stamp(self) -> str | None:
        """A token that changes with every change to what a new run looks up (a tenant's settings, a
        flow's published version, a running experiment), made by any process sharing the store; None:
        not known, so nothing may be cached on it. Cheap (a local read, or one Redis GET): what lets a
        process cache those lookups and still see another's publish from its next turn on."""
        ...

    async def delete_flow(self, tenant_id: str, flow_id: str) -> bool: ...

    # conversations
    async def load(self, tenant_id: str, conversation_id: str) -> Conversation | None: ...

    async def reply_for(self, tenant_id: str, conversation_id: str, message_id: str) -> dict[str, Any] | None:
        """The stored reply of an already processed message, else None."""
        ...

    async def commit(self, write: TurnWrite) -> int:
        """Apply a turn atomically and return the new context version; ``ConcurrentUpdate`` on CAS failure
        (nothing written). Versions of a conversation never repeat, not even across ``reset``, so a writer
        that loaded the context before a reset cannot overwrite the fresh run."""
        ...

    async def reset(self, tenant_id: str, conversation_id: str) -> bool:
        """Forget the conversation's context and timer (history is kept); False when there was none."""
        ...

    async def history(
        self, tenant_id: str, conversation_id: str, limit: int = 50, before: int | None = None
    ) -> list[dict[str, Any]]:
        """Events newest first, each with its ``seq``; ``before`` a seq for the next page."""
        ...

    # timers
    async def due_timers(self, now: float, limit: int = 100) -> list[Timer]: ...

    async def claim_timer(self, timer: Timer) -> bool:
        """Lease ``timer`` for firing: True for one caller at a time, and only while it is still set.

        The timer is not deleted: it stays until the turn that fires it commits (that turn's write clears
        or replaces it), and ``due_timers`` leaves it out while the lease lasts. If the claimer dies before
        that commit, the lease expires and another caller claims it, so a crash never loses a timer; the
        turn finds a timer fired meanwhile stale (the context names the wait it belongs to), so none fires
        twice."""
        ...

    async def drop_timer(self, timer: Timer) -> None:
        """Delete ``timer`` if it is still the one set (not a newer one of its conversation): its firing
        found it stale."""
        ...

    # analytics events: a turn's own (written by its commit) and those recorded outside a turn
    async def record_events(self, events: list[dict[str, Any]]) -> None:
        """Append analytics events that are no turn's (an abandoned turn's error, a plugin's own events
        through ``Services.write_events``); each carries ``tenant_id`` and ``type`` (else
        ``UnstorableData``), usually ``conversation_id`` too, and none shows in a conversation's
        ``history``. Nothing is written unless every event is stored. Events of an
        experiment's run (``experiment_id``, ``variant``, ``run``) also update that run's counts, in the
        same transaction (``experiment_counts``)."""
        ...

    async def events(
        self, tenant_id: str, event_type: str | None = None, limit: int = 1000, after: int | None = None
    ) -> list[dict[str, Any]]:
        """The tenant's analytics events oldest first, each with its ``seq``: every committed turn's events
        and those of ``record_events``, in one order; ``after``: a seq, for the next page, so a reader can
        go through every event without one capped page hiding the rest)."""
        ...

    # experiments
    async def create_experiment(self, record: ExperimentRecord) -> tuple[ExperimentRecord, bool]:
        """Store a draft; the stored record and whether it was stored already (the same document again is
        a no-op). Another document under a stored id raises ``ExperimentConflict``."""
        ...

    async def get_experiment(self, tenant_id: str, experiment_id: str) -> ExperimentRecord | None: ...

    async def list_experiments(self, tenant_id: str) -> list[ExperimentRecord]:
        """The tenant's experiments, oldest first."""
        ...

    async def start_experiment(
        self, tenant_id: str, experiment_id: str, bases: dict[str, str], now: float
    ) -> ExperimentRecord:
        """Draft -> running with its ``bases``; a running one is returned as it is. ``ExperimentNotFound``,
        ``ExperimentConflict`` for a stopped one, ``ExperimentOverlap`` when another experiment of the
        tenant is running on the same flow (checked by the store itself, so two starts racing in two
        processes cannot both win)."""
        ...

    async def stop_experiment(self, tenant_id: str, experiment_id: str, now: float) -> ExperimentRecord:
        """Draft or running -> stopped; a stopped one is returned as it is. ``ExperimentNotFound``."""
        ...

    async def published_with_experiment(self, tenant_id: str, flow_id: str) -> tuple[str | None, str | None]:
        """A new run's one lookup: the name of the flow's published version and the id of the experiment
        running on it (each None when there is none)."""
        ...

    async def experiment_counts(self, tenant_id: str, experiment_id: str) -> list[VariantCounts]:
        """Per variant, what the turns' commits and ``record_events`` counted from the events of the
        experiment's runs (events carrying ``experiment_id``, ``variant`` and ``run``): one aggregate
        query, by variant name."""
        ...

    # per-conversation serialisation
    # outbound webhook deliveries, leased like timers
    async def add_delivery(self, delivery: Delivery) -> None: ...

    async def due_deliveries(self, now: float, limit: int = 100) -> list[Delivery]:
        """Deliveries whose ``next_at`` has come, oldest first."""
        ...

    async def claim_delivery(self, delivery: Delivery, until: float, now: float) -> bool:
        """Lease a due delivery until ``until``: True for one caller only, across every process."""
        ...

    async def defer_delivery(self, delivery_id: str, attempts: int, next_at: float) -> None:
        """Record a failed attempt: ``attempts`` so far, the next one at ``next_at``."""
        ...

    async def finish_delivery(self, delivery_id: str) -> None:
        """Forget an acknowledged (or abandoned) delivery."""
        ...

    def lock(
        self, tenant_id: str, conversation_id: str, timeout_s: float
    ) -> AbstractAsyncContextManager[None]:
        """Hold the conversation's lock; ``ConversationBusy`` when it cannot be had within ``timeout_s``."""
        ...

    def begin_turn(
        self,
        tenant_id: str,
        conversation_id: str,
        message_id: str | None,
        timeout_s: float,
        *,
        fresh: bool = False,
    ) -> AbstractAsyncContextManager[TurnStart]:
        """A turn's start in one step: hold the lock (as ``lock``), then the stored reply of ``message_id``
        if it was processed already, else the conversation (as ``reply_for`` and ``load``). The lock is
        released when the block ends, or earlier by a successful ``TurnStart.commit``. This is the turn's
        hot path: the production store makes it one Redis round trip, and the commit one more.
        ``fresh`` (the ``bypass_cache`` hint): read the conversation from the durable store, never from a
        cache (a store without one reads it there anyway)."""
        ...


@dataclass
class LoadedTurn:
    """A ``TurnStart`` of a store whose lock, reads and commit are each cheap on their own."""

    store: Store
    conversation: Conversation | None = None
    reply: dict[str, Any] | None = None

    async def commit(self, write: TurnWrite) -> int:
        return await self.store.commit(write)


@asynccontextmanager
async def begin_turn_in_steps(
    store: Store, tenant_id: str, conversation_id: str, message_id: str | None, timeout_s: float
) -> AsyncIterator[TurnStart]:
    """``Store.begin_turn`` out of ``lock``, ``reply_for``, ``load`` and ``commit``, for the embedded store,
    whose lock is in process and whose reads are local."""
    async with store.lock(tenant_id, conversation_id, timeout_s):
        reply = None if message_id is None else await store.reply_for(tenant_id, conversation_id, message_id)
        if reply is not None:
            yield LoadedTurn(store, reply=reply)
        else:
            yield LoadedTurn(store, await store.load(tenant_id, conversation_id))
