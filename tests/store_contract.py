"""The ``Store`` contract suite: every backend must pass all of it.

A backend's test module subclasses ``StoreContract`` (its name starting with ``Test``) and provides the
fixture ``open_store``: an async factory that returns a new, opened store on the same backing storage each
time it is called (a second engine process, in effect), and closes them all at teardown. Tests that close a
store rely on ``close()`` being safe to call twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from mcp_engine.errors import (
    ConcurrentUpdate,
    ConversationBusy,
    ExperimentConflict,
    ExperimentNotFound,
    ExperimentOverlap,
    FlowNotFound,
    InvalidInput,
    UnstorableData,
    VersionExists,
)
from mcp_engine.security.grants import Grants
from mcp_engine.store.base import (
    Delivery,
    ExperimentRecord,
    Store,
    Tenant,
    Timer,
    TurnWrite,
    VariantCounts,
)

OpenStore = Callable[[], Awaitable[Store]]
A, B = "tenant-a", "tenant-b"


def flow(flow_id: str = "pizza", version: str = "1.0.0", **extra: Any) -> dict[str, Any]:
    return {"flow_id": flow_id, "version": version, "name": "Pizza", "initial_state": "start", **extra}


def turn(expected: int | None = None, tenant: str = A, conversation: str = "c1", **fields: Any) -> TurnWrite:
    fields.setdefault("context", {"current_state": "start", "slots": {}})
    return TurnWrite(tenant, conversation, expected, **fields)


def timer(due_at: float = 100.0, run: str = "r1", tenant: str = A, conversation: str = "c1") -> Timer:
    return Timer(tenant, conversation, due_at, "waiting", run)


def experiment(
    experiment_id: str = "exp", flow_id: str = "pizza", tenant: str = A, **extra: Any
) -> ExperimentRecord:
    variants = [{"name": "a", "percentage": 50}, {"name": "b", "percentage": 50}]
    document = {"experiment_id": experiment_id, "flow_id": flow_id, "variants": variants, **extra}
    return ExperimentRecord(tenant, experiment_id, flow_id, document, "draft", 100.0)


# The ``events`` table's rows before events were written once (the migration that retires it sorts them out):
# the ``store`` sink's copy of a turn's history event, an abandoned turn's error, a plugin's own event.
TURN_EVENT = b'{"type":"message_in","conversation_id":"c1","n":1}'
OLD_EVENTS = [
    ("message_in", TURN_EVENT),
    ("error", b'{"type":"error","conversation_id":"c1","n":2}'),
    ("plugin", b'{"type":"plugin","n":3}'),
]


async def old_events_moved(store: Store) -> None:
    """The history rows are kept, the rest of ``OLD_EVENTS`` moved into history, the copies dropped."""
    assert [(e["type"], e["n"]) for e in await store.events(A)] == [
        ("message_in", 1),
        ("error", 2),
        ("plugin", 3),
    ]
    assert [e["n"] for e in await store.events(A, "message_in")] == [1]
    assert [e["n"] for e in await store.history(A, "c1")] == [1]


def run_event(
    kind: str, run: str, variant: str = "a", experiment_id: str = "exp", tenant: str = A, **data: Any
) -> dict[str, Any]:
    """An analytics event of an experiment run, as ``experiments.allocation.mark_turn`` tags it."""
    return {
        "type": kind,
        "ts": 10.0,
        "tenant_id": tenant,
        "conversation_id": f"c-{run}",
        "run": run,
        "experiment_id": experiment_id,
        "variant": variant,
        "data": data,
    }


class StoreContract:
    @pytest.fixture
    async def store(self, open_store: OpenStore) -> Store:
        return await open_store()

    # readiness and tenants

    async def test_ready(self, store: Store) -> None:
        assert await store.ready()

    async def test_tenant_round_trip_and_update(self, store: Store) -> None:
        assert await store.get_tenant(A) is None
        await store.put_tenant(
            Tenant(A, default_flow="pizza", enabled_plugins=("sms",), outbound_webhook="http://x")
        )
        assert await store.get_tenant(A) == Tenant(A, "pizza", ("sms",), "http://x")
        await store.put_tenant(Tenant(A, outbound_webhook="http://x", webhook_secret="k" * 16))
        assert await store.get_tenant(A) == Tenant(A, None, None, "http://x", webhook_secret="k" * 16)
        await store.put_tenant(Tenant(A))
        assert await store.get_tenant(A) == Tenant(A)
        assert await store.get_tenant(B) is None

    async def test_tenant_grants_round_trip(self, store: Store) -> None:
        """What an operator granted is kept with the tenant, and a settings change keeps it."""
        grants = Grants(("CRM_TOKEN",), ("10.0.0.0/8", "127.0.0.1:8080"), 2048, 512)
        await store.put_tenant(Tenant(A, grants=grants))
        assert await store.get_tenant(A) == Tenant(A, grants=grants)
        await store.put_tenant(Tenant(A, default_flow="pizza", grants=grants))
        assert await store.list_tenants() == [Tenant(A, default_flow="pizza", grants=grants)]
        await store.put_tenant(Tenant(A))
        assert await store.get_tenant(A) == Tenant(A)

    async def test_list_tenants(self, store: Store) -> None:
        assert await store.list_tenants() == []
        await store.put_tenant(Tenant(B, default_flow="pizza"))
        await store.put_tenant(Tenant(A))
        assert await store.list_tenants() == [Tenant(A), Tenant(B, default_flow="pizza")]

    # outbound deliveries

    async def test_a_delivery_is_leased_deferred_and_finished(self, open_store: OpenStore) -> None:
        first, second = await open_store(), await open_store()
        delivery = Delivery("d1", A, "c1", b'{"messages": []}', 0, 100.0, 90.0)
        await first.add_delivery(delivery)
        assert await first.due_deliveries(99.0) == []
        [due] = await second.due_deliveries(100.0)
        assert due == delivery
        assert await second.claim_delivery(due, 160.0, 100.0)
        assert not await first.claim_delivery(due, 160.0, 100.0)  # one claimer, across processes
        assert await first.due_deliveries(159.0) == []
        await second.defer_delivery("d1", 1, 120.0)
        [again] = await first.due_deliveries(120.0)
        assert (again.attempts, again.next_at, again.body) == (1, 120.0, delivery.body)
        await first.finish_delivery("d1")
        assert await second.due_deliveries(1e12) == []

    # API keys

    async def test_api_key_round_trip(self, store: Store) -> None:
        assert await store.find_api_key("h1") is None
        stored = await store.put_api_key(A, "k1", "h1")
        assert (stored.key_id, stored.tenant_id, stored.revoked_at) == ("k1", A, None)
        assert await store.find_api_key("h1") == stored
        await store.put_api_key(A, "k2", "h2")
        assert await store.list_api_keys(A) == [stored, await store.find_api_key("h2")]
        assert await store.list_api_keys(B) == []

    async def test_api_key_ids_and_hashes_are_unique(self, store: Store) -> None:
        await store.put_api_key(A, "k1", "h1")
        with pytest.raises(InvalidInput):
            await store.put_api_key(A, "k1", "h2")
        with pytest.raises(InvalidInput):
            await store.put_api_key(B, "k9", "h1")
        await store.put_api_key(B, "k1", "h3")  # key ids are per tenant
        assert [k.key_id for k in await store.list_api_keys(A)] == ["k1"]

    async def test_a_revoked_api_key_is_not_found(self, store: Store) -> None:
        await store.put_api_key(A, "k1", "h1")
        await store.put_api_key(A, "k2", "h2")
        assert await store.revoke_api_key(A, "k1")
        assert not await store.revoke_api_key(A, "k1")  # already revoked
        assert not await store.revoke_api_key(A, "nope")
        assert await store.find_api_key("h1") is None
        assert await store.find_api_key("h2") is not None
        listed = {k.key_id: k.revoked_at for k in await store.list_api_keys(A)}
        assert listed["k1"] is not None
        assert listed["k2"] is None

    async def test_api_keys_are_tenant_scoped(self, store: Store) -> None:
        await store.put_api_key(A, "k1", "h1")
        assert not await store.revoke_api_key(B, "k1")  # another tenant's id revokes nothing
        found = await store.find_api_key("h1")
        assert found is not None
        assert found.tenant_id == A
        assert await store.list_api_keys(B) == []

    # flows

    async def test_save_flow_version_is_idempotent(self, store: Store) -> None:
        first = await store.save_flow_version(A, flow())
        again = await store.save_flow_version(A, dict(reversed(flow().items())))  # key order does not matter
        assert again == first
        assert first.status == "draft"
        assert first.published_at is None
        assert first.document == flow()
        assert await store.get_flow_version(A, "pizza", "1.0.0") == first

    async def test_flow_version_is_immutable(self, store: Store) -> None:
        await store.save_flow_version(A, flow())
        with pytest.raises(VersionExists):
            await store.save_flow_version(A, flow(name="Changed"))
        stored = await store.get_flow_version(A, "pizza", "1.0.0")
        assert stored is not None
        assert stored.document == flow()

    async def test_save_needs_flow_id_and_version(self, store: Store) -> None:
        with pytest.raises(InvalidInput):
            await store.save_flow_version(A, {"flow_id": "pizza"})

    async def test_publish_and_rollback(self, store: Store) -> None:
        await store.save_flow_version(A, flow(version="1.0.0"))
        await store.save_flow_version(A, flow(version="1.1.0"))
        assert await store.published(A, "pizza") is None
        assert await store.published_version(A, "pizza") is None
        assert (await store.publish(A, "pizza", "1.0.0")).status == "published"
        newer = await store.publish(A, "pizza", "1.1.0")
        assert newer.published_at is not None
        assert await store.published(A, "pizza") == newer
        assert await store.published_version(A, "pizza") == "1.1.0"
        await store.publish(A, "pizza", "1.0.0")  # rollback
        published = await store.published(A, "pizza")
        assert published is not None
        assert published.version == "1.0.0"
        assert await store.published_version(A, "pizza") == "1.0.0"
        assert await store.published_version(B, "pizza") is None  # another tenant's flow
        statuses = {v.version: v.status for v in await store.list_versions(A, "pizza")}
        assert statuses == {"1.0.0": "published", "1.1.0": "draft"}

    async def test_publish_unknown_version_changes_nothing(self, store: Store) -> None:
        await store.save_flow_version(A, flow())
        await store.publish(A, "pizza", "1.0.0")
        with pytest.raises(FlowNotFound):
            await store.publish(A, "pizza", "9.9.9")
        with pytest.raises(FlowNotFound):
            await store.publish(A, "nope", "1.0.0")
        published = await store.published(A, "pizza")
        assert published is not None
        assert published.version == "1.0.0"

    async def test_list_flows_gives_latest_version_of_each(self, store: Store) -> None:
        await store.save_flow_version(A, flow("pizza", "1.0.0"))
        await store.save_flow_version(A, flow("pizza", "2.0.0"))
        await store.save_flow_version(A, flow("bank", "0.1.0"))
        await store.publish(A, "pizza", "1.0.0")
        assert [(f.flow_id, f.version) for f in await store.list_flows(A)] == [
            ("bank", "0.1.0"),
            ("pizza", "2.0.0"),
        ]
        assert [v.version for v in await store.list_versions(A, "pizza")] == ["1.0.0", "2.0.0"]

    async def test_delete_flow(self, store: Store) -> None:
        await store.save_flow_version(A, flow("pizza", "1.0.0"))
        await store.save_flow_version(A, flow("pizza", "1.1.0"))
        await store.publish(A, "pizza", "1.1.0")
        assert await store.delete_flow(A, "pizza")
        assert not await store.delete_flow(A, "pizza")
        assert await store.list_versions(A, "pizza") == []
        assert await store.published(A, "pizza") is None

    async def test_flows_are_tenant_scoped(self, store: Store) -> None:
        await store.save_flow_version(A, flow())
        await store.publish(A, "pizza", "1.0.0")
        assert await store.get_flow_version(B, "pizza", "1.0.0") is None
        assert await store.published(B, "pizza") is None
        assert await store.list_flows(B) == []
        assert await store.list_versions(B, "pizza") == []
        with pytest.raises(FlowNotFound):
            await store.publish(B, "pizza", "1.0.0")
        assert not await store.delete_flow(B, "pizza")
        other = await store.save_flow_version(B, flow(name="B's own"))  # same id and version: no clash
        assert other.tenant_id == B
        assert other.document["name"] == "B's own"
        assert await store.published(A, "pizza") is not None

    # conversations

    async def test_commit_creates_then_compare_and_sets(self, store: Store) -> None:
        assert await store.load(A, "c1") is None
        assert await store.commit(turn(None, context={"n": 1})) == 1
        with pytest.raises(ConcurrentUpdate):
            await store.commit(turn(None, context={"n": 99}))  # must not exist yet
        assert await store.commit(turn(1, context={"n": 2})) == 2
        conversation = await store.load(A, "c1")
        assert conversation is not None
        assert (conversation.context, conversation.version) == ({"n": 2}, 2)

    async def test_conflict_writes_nothing(self, store: Store) -> None:
        await store.commit(turn(None, context={"n": 1}, events=[{"type": "first"}], timer=timer(run="r1")))
        await store.commit(turn(1, context={"n": 2}))
        with pytest.raises(ConcurrentUpdate):
            await store.commit(
                turn(
                    1,
                    context={"n": 3},
                    events=[{"type": "stale"}],
                    message_id="m",
                    reply={"r": 1},
                    timer=None,
                )
            )
        conversation = await store.load(A, "c1")
        assert conversation is not None
        assert conversation.context == {"n": 2}
        assert [e["type"] for e in await store.history(A, "c1")] == ["first"]
        assert await store.reply_for(A, "c1", "m") is None
        assert await store.due_timers(now=1e9) == [timer(run="r1")]

    async def test_concurrent_commits_one_wins(self, open_store: OpenStore) -> None:
        first, second = await open_store(), await open_store()
        await first.commit(turn(None))
        results = await asyncio.gather(
            first.commit(turn(1, context={"by": "first"})),
            second.commit(turn(1, context={"by": "second"})),
            return_exceptions=True,
        )
        assert sorted(type(r).__name__ for r in results) == ["ConcurrentUpdate", "int"]

    async def test_idempotency_record_round_trip(self, store: Store) -> None:
        assert await store.reply_for(A, "c1", "m1") is None
        reply = {"messages": [{"text": "hi"}], "current_state": "ask"}
        await store.commit(turn(None, message_id="m1", reply=reply))
        assert await store.reply_for(A, "c1", "m1") == reply
        assert await store.reply_for(A, "c1", "m2") is None
        assert await store.reply_for(A, "c2", "m1") is None

    async def test_history_pages_newest_first(self, store: Store) -> None:
        await store.commit(turn(None, events=[{"type": "e", "n": 1}, {"type": "e", "n": 2}]))
        await store.commit(turn(1, events=[{"type": "e", "n": 3}]))
        await store.commit(turn(2, events=[{"type": "e", "n": 4}, {"type": "e", "n": 5}]))
        page = await store.history(A, "c1", limit=2)
        assert [e["n"] for e in page] == [5, 4]
        assert page[0]["seq"] > page[1]["seq"]
        page = await store.history(A, "c1", limit=2, before=page[-1]["seq"])
        assert [e["n"] for e in page] == [3, 2]
        page = await store.history(A, "c1", limit=2, before=page[-1]["seq"])
        assert [e["n"] for e in page] == [1]
        assert await store.history(A, "c1", limit=2, before=page[-1]["seq"]) == []
        assert [e["n"] for e in await store.history(A, "c1")] == [5, 4, 3, 2, 1]

    async def test_reset_forgets_context_and_timer_keeps_history(self, store: Store) -> None:
        assert not await store.reset(A, "c1")
        await store.commit(turn(None, events=[{"type": "hello"}], timer=timer()))
        await store.commit(turn(1))
        assert await store.reset(A, "c1")
        assert await store.load(A, "c1") is None
        assert await store.due_timers(now=1e9) == []
        assert [e["type"] for e in await store.history(A, "c1")] == ["hello"]
        assert not await store.reset(A, "c1")
        with pytest.raises(ConcurrentUpdate):
            await store.commit(turn(2))  # a writer that loaded before the reset
        fresh = await store.commit(turn(None, context={"run": 2}))
        assert fresh > 2  # versions never repeat, not even across a reset
        conversation = await store.load(A, "c1")
        assert conversation is not None
        assert conversation.context == {"run": 2}

    async def test_conversations_are_tenant_scoped(self, store: Store) -> None:
        await store.commit(turn(None, tenant=A, events=[{"type": "a"}], message_id="m", reply={"r": "a"}))
        assert await store.load(B, "c1") is None
        assert await store.reply_for(B, "c1", "m") is None
        assert await store.history(B, "c1") == []
        assert not await store.reset(B, "c1")
        with pytest.raises(ConcurrentUpdate):
            await store.commit(turn(1, tenant=B))
        assert await store.commit(turn(None, tenant=B, context={"mine": "b"})) == 1
        a = await store.load(A, "c1")
        assert a is not None
        assert a.context == turn().context
        assert await store.reply_for(A, "c1", "m") == {"r": "a"}

    async def test_bad_data_raises_clearly_and_writes_nothing(self, store: Store) -> None:
        await store.commit(turn(None, context={"n": 1}))
        bad = turn(
            1, context={"variables": {"tags": {"a", "b"}}}, events=[{"type": "x"}], message_id="m", reply={}
        )
        with pytest.raises(UnstorableData, match=r"context\.variables\.tags"):
            await store.commit(bad)
        with pytest.raises(UnstorableData, match=r"events\[1\]"):  # named by its place in the turn
            await store.commit(turn(1, events=[{"type": "ok"}, {"type": "x", "at": object()}]))
        with pytest.raises(UnstorableData, match="key 1"):
            await store.commit(turn(1, context={"slots": {1: "one"}}))
        conversation = await store.load(A, "c1")
        assert conversation is not None
        assert (conversation.context, conversation.version) == ({"n": 1}, 1)
        assert await store.history(A, "c1") == []
        assert await store.reply_for(A, "c1", "m") is None

    # timers

    async def test_timer_set_keep_clear(self, store: Store) -> None:
        await store.commit(turn(None, timer=timer(due_at=50.0)))
        await store.commit(turn(1))  # "keep" by default
        assert await store.due_timers(now=50.0) == [timer(due_at=50.0)]
        assert await store.due_timers(now=49.9) == []
        await store.commit(turn(2, timer=timer(due_at=70.0, run="r2")))  # at most one per conversation
        assert await store.due_timers(now=1e9) == [timer(due_at=70.0, run="r2")]
        await store.commit(turn(3, timer=None))
        assert await store.due_timers(now=1e9) == []

    async def test_due_timers_in_due_order_up_to_limit(self, store: Store) -> None:
        for i, due in enumerate([30.0, 10.0, 20.0]):
            await store.commit(turn(None, conversation=f"c{i}", timer=timer(due, conversation=f"c{i}")))
        await store.commit(turn(None, tenant=B, timer=timer(15.0, tenant=B)))
        assert [t.due_at for t in await store.due_timers(now=25.0)] == [10.0, 15.0, 20.0]
        assert [t.due_at for t in await store.due_timers(now=1e9, limit=2)] == [10.0, 15.0]

    async def test_claim_timer_once_and_only_while_set(self, store: Store) -> None:
        await store.commit(turn(None, timer=timer(run="r1")))
        assert not await store.claim_timer(timer(run="r0"))  # an older wait
        assert not await store.claim_timer(timer(tenant=B))  # another tenant's
        assert await store.claim_timer(timer(run="r1"))
        assert not await store.claim_timer(timer(run="r1"))
        assert await store.due_timers(now=1e9) == []

    async def test_a_claimed_timer_stays_until_the_turn_that_fires_it_commits(self, store: Store) -> None:
        await store.commit(turn(None, timer=timer(run="r1")))
        assert await store.claim_timer(timer(run="r1"))
        assert await store.due_timers(now=1e9) == []  # leased: nobody else takes it meanwhile
        await store.commit(turn(1))  # a turn that keeps the timer keeps the lease too
        assert await store.due_timers(now=1e9) == []
        assert not await store.claim_timer(timer(run="r1"))
        await store.commit(turn(2, timer=timer(due_at=200.0, run="r2")))  # the fired turn armed another
        assert await store.due_timers(now=1e9) == [timer(due_at=200.0, run="r2")]
        assert await store.claim_timer(timer(due_at=200.0, run="r2"))
        await store.commit(turn(3, timer=None))  # the fired turn left the wait
        assert not await store.claim_timer(timer(due_at=200.0, run="r2"))
        assert await store.due_timers(now=1e9) == []

    async def test_drop_timer_deletes_only_that_timer(self, store: Store) -> None:
        await store.commit(turn(None, timer=timer(run="r1")))
        await store.drop_timer(timer(run="r0"))  # an older wait's: the newer timer stays
        await store.drop_timer(timer(tenant=B, run="r1"))
        assert await store.due_timers(now=1e9) == [timer(run="r1")]
        assert await store.claim_timer(timer(run="r1"))
        await store.drop_timer(timer(run="r1"))  # claimed or not
        assert await store.due_timers(now=1e9) == []
        assert not await store.claim_timer(timer(run="r1"))

    async def test_two_stores_race_to_claim(self, open_store: OpenStore) -> None:
        first, second = await open_store(), await open_store()
        timers = [timer(conversation=f"c{i}") for i in range(10)]
        for t in timers:
            await first.commit(turn(None, conversation=t.conversation_id, timer=t))
        for t in timers:
            results = await asyncio.gather(first.claim_timer(t), second.claim_timer(t))
            assert sorted(results) == [False, True]

    # locks

    async def test_lock_serialises_a_conversation(self, store: Store) -> None:
        inside: list[int] = []
        overlaps: list[int] = []

        async def hold(n: int) -> None:
            async with store.lock(A, "c1", timeout_s=5):
                if inside:
                    overlaps.append(n)
                inside.append(n)
                await asyncio.sleep(0.01)
                inside.remove(n)

        await asyncio.gather(*(hold(n) for n in range(5)))
        assert overlaps == []

    async def test_lock_times_out_with_conversation_busy(self, store: Store) -> None:
        async with store.lock(A, "c1", timeout_s=1):
            with pytest.raises(ConversationBusy):
                async with store.lock(A, "c1", timeout_s=0.05):
                    pass
            async with store.lock(A, "c2", timeout_s=0.05):  # other conversations are not held up
                pass
            async with store.lock(B, "c1", timeout_s=0.05):  # nor another tenant's of the same id
                pass
        async with store.lock(A, "c1", timeout_s=0.05):  # released, also after the timeout
            pass

    # the turn's start: lock, idempotency record and context in one step

    async def test_begin_turn_loads_commits_and_releases(self, store: Store) -> None:
        async with store.begin_turn(A, "c1", None, timeout_s=1) as start:
            assert (start.conversation, start.reply) == (None, None)
            assert await start.commit(turn(None, context={"n": 1}, message_id="m1", reply={"r": 1})) == 1
        async with store.begin_turn(A, "c1", "m2", timeout_s=0.05) as start:  # released
            assert start.reply is None
            assert start.conversation is not None
            assert (start.conversation.context, start.conversation.version) == ({"n": 1}, 1)
            assert await start.commit(turn(1, context={"n": 2})) == 2
        conversation = await store.load(A, "c1")
        assert conversation is not None
        assert conversation.context == {"n": 2}

    async def test_begin_turn_answers_a_processed_message_with_its_reply(self, open_store: OpenStore) -> None:
        first, second = await open_store(), await open_store()
        await first.commit(turn(None, context={"n": 1}, message_id="m1", reply={"r": 1}))
        async with second.begin_turn(A, "c1", "m1", timeout_s=1) as start:
            assert start.reply == {"r": 1}
        async with second.begin_turn(B, "c1", "m1", timeout_s=1) as start:  # another tenant's message
            assert (start.reply, start.conversation) == (None, None)

    async def test_begin_turn_holds_the_conversation(self, store: Store) -> None:
        async with store.begin_turn(A, "c1", None, timeout_s=1):
            with pytest.raises(ConversationBusy):
                async with store.begin_turn(A, "c1", None, timeout_s=0.05):
                    pass
            with pytest.raises(ConversationBusy):
                async with store.lock(A, "c1", timeout_s=0.05):
                    pass
            async with store.begin_turn(A, "c2", None, timeout_s=0.05):  # others are not held up
                pass
        with pytest.raises(RuntimeError, match="turn failed"):
            async with store.begin_turn(A, "c1", None, timeout_s=0.05):
                raise RuntimeError("turn failed")
        async with store.begin_turn(A, "c1", None, timeout_s=0.05):  # released after a failure too
            pass

    async def test_begin_turn_serialises_concurrent_turns(self, store: Store) -> None:
        async def increment() -> None:
            async with store.begin_turn(A, "c1", None, timeout_s=5) as start:
                found = start.conversation
                n = found.context["n"] if found is not None else 0
                await asyncio.sleep(0.002)
                await start.commit(turn(found.version if found else None, context={"n": n + 1}))

        await asyncio.gather(*(increment() for _ in range(8)))
        conversation = await store.load(A, "c1")
        assert conversation is not None
        assert (conversation.context, conversation.version) == ({"n": 8}, 8)

    async def test_turns_of_one_process_run_in_arrival_order(self, store: Store) -> None:
        """Within a process a conversation's turns queue in arrival order (no backoff lottery)."""
        order: list[int] = []

        async def take(n: int) -> None:
            async with store.begin_turn(A, "c1", None, timeout_s=5):
                order.append(n)
                await asyncio.sleep(0.002)

        tasks = []
        for n in range(8):
            tasks.append(asyncio.create_task(take(n)))
            await asyncio.sleep(0)  # each arrives after the one before
        await asyncio.gather(*tasks)
        assert order == list(range(8))

    # analytics events

    async def test_record_events_and_read_back(self, store: Store) -> None:
        await store.record_events(
            [{"tenant_id": A, "type": "message_in", "n": i} for i in range(3)]
            + [
                {"tenant_id": A, "type": "run_completed", "n": 3},
                {"tenant_id": B, "type": "message_in", "n": 4},
            ]
        )
        events = await store.events(A)
        assert [e["n"] for e in events] == [0, 1, 2, 3]
        assert [e["n"] for e in await store.events(A, "run_completed")] == [3]
        first = await store.events(A, "message_in", limit=2)
        assert [e["n"] for e in first] == [0, 1]
        assert [e["n"] for e in await store.events(A, "message_in", after=first[-1]["seq"])] == [2]
        assert [e["n"] for e in await store.events(B)] == [4]

    async def test_a_turns_events_are_its_history_and_the_tenants_events(self, store: Store) -> None:
        await store.commit(
            turn(None, events=[{"type": "message_in", "n": 0}, {"type": "message_out", "n": 1}])
        )
        await store.record_events([{"tenant_id": A, "type": "error", "conversation_id": "c1", "n": 2}])
        await store.commit(turn(1, events=[{"type": "message_in", "n": 3}]))
        await store.commit(turn(None, tenant=B, events=[{"type": "message_in", "n": 4}]))
        events = await store.events(A)
        assert [e["n"] for e in events] == [0, 1, 2, 3]  # written once, in one order with recorded ones
        assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
        assert [e["n"] for e in await store.events(A, "message_in")] == [0, 3]
        assert [e["n"] for e in await store.events(A, after=events[1]["seq"])] == [2, 3]
        assert [e["n"] for e in await store.events(B)] == [4]
        # an event recorded outside a turn is no part of its conversation's history
        assert [e["n"] for e in await store.history(A, "c1")] == [3, 1, 0]

    async def test_a_turn_counts_its_experiment_run_once(self, store: Store) -> None:
        tagged = [run_event("experiment_exposure", "r1"), run_event("message_in", "r1")]
        version = await store.commit(turn(None, conversation="c-r1", events=tagged))
        with pytest.raises(ConcurrentUpdate):  # a lost compare-and-set counts nothing
            await store.commit(turn(None, conversation="c-r1", events=[run_event("message_in", "r1")]))
        done = [run_event("message_in", "r1"), run_event("run_completed", "r1", turns=2)]
        await store.commit(turn(version, conversation="c-r1", events=done))
        assert await store.experiment_counts(A, "exp") == [
            VariantCounts("a", conversations=1, completions=1, turns_to_complete=2, turns=2, no_matches=0)
        ]
        assert len(await store.events(A)) == 4

    async def test_record_events_needs_tenant_and_type(self, store: Store) -> None:
        with pytest.raises(UnstorableData):
            await store.record_events([{"tenant_id": A, "type": "ok"}, {"type": "no tenant"}])
        with pytest.raises(UnstorableData):
            await store.record_events([{"tenant_id": A, "type": "ok", "bad": {1, 2}}])
        assert await store.events(A) == []

    # persistence

    async def test_everything_survives_reopen(self, open_store: OpenStore) -> None:
        store = await open_store()
        await store.put_tenant(Tenant(A, default_flow="pizza"))
        await store.save_flow_version(A, flow())
        await store.publish(A, "pizza", "1.0.0")
        await store.commit(turn(None, events=[{"type": "e"}], message_id="m", reply={"r": 1}, timer=timer()))
        await store.record_events([{"tenant_id": A, "type": "message_in"}])
        key = await store.put_api_key(A, "k1", "h1")
        await store.close()
        await store.close()  # twice is fine
        assert not await store.ready()

        reopened = await open_store()
        assert await reopened.get_tenant(A) == Tenant(A, default_flow="pizza")
        published = await reopened.published(A, "pizza")
        assert published is not None
        assert published.document == flow()
        conversation = await reopened.load(A, "c1")
        assert conversation is not None
        assert conversation.version == 1
        assert [e["type"] for e in await reopened.history(A, "c1")] == ["e"]
        assert await reopened.reply_for(A, "c1", "m") == {"r": 1}
        assert await reopened.due_timers(now=1e9) == [timer()]
        assert [e["type"] for e in await reopened.events(A)] == [
            "e",
            "message_in",
        ]  # the turn's and one recorded
        assert await reopened.find_api_key("h1") == key

    async def test_opening_again_migrates_nothing_and_keeps_data(self, open_store: OpenStore) -> None:
        store = await open_store()
        await store.commit(turn(None))
        again = await open_store()
        await again.open()  # and once more on the same instance
        conversation = await again.load(A, "c1")
        assert conversation is not None
        assert conversation.version == 1

    # experiments

    async def test_experiment_create_is_idempotent_and_immutable(self, store: Store) -> None:
        created, existed = await store.create_experiment(experiment())
        assert not existed
        assert (created.status, created.started_at, created.bases) == ("draft", None, {})
        assert created.document == experiment().document
        again, existed = await store.create_experiment(experiment())
        assert existed
        assert again == created
        with pytest.raises(ExperimentConflict):
            await store.create_experiment(experiment(name="other"))
        assert await store.get_experiment(A, "exp") == created

    async def test_experiment_life(self, store: Store) -> None:
        await store.create_experiment(experiment())
        started = await store.start_experiment(A, "exp", {"b": "1.0.0"}, 200.0)
        assert (started.status, started.started_at, started.bases) == ("running", 200.0, {"b": "1.0.0"})
        assert await store.start_experiment(A, "exp", {}, 300.0) == started  # running: unchanged
        stopped = await store.stop_experiment(A, "exp", 400.0)
        assert (stopped.status, stopped.started_at, stopped.stopped_at) == ("stopped", 200.0, 400.0)
        assert stopped.bases == {"b": "1.0.0"}
        assert await store.stop_experiment(A, "exp", 500.0) == stopped
        with pytest.raises(ExperimentConflict):
            await store.start_experiment(A, "exp", {}, 600.0)
        for act in (store.start_experiment(A, "nope", {}, 1.0), store.stop_experiment(A, "nope", 1.0)):
            with pytest.raises(ExperimentNotFound):
                await act
        await store.create_experiment(experiment("draft-only"))
        assert (await store.stop_experiment(A, "draft-only", 700.0)).status == "stopped"

    async def test_one_experiment_runs_per_flow_even_across_processes(self, open_store: OpenStore) -> None:
        one, two = await open_store(), await open_store()
        for record in (experiment("first"), experiment("second"), experiment("elsewhere", flow_id="bank")):
            await one.create_experiment(record)
        await one.start_experiment(A, "first", {}, 1.0)
        with pytest.raises(ExperimentOverlap) as raised:
            await two.start_experiment(A, "second", {}, 2.0)
        assert (raised.value.flow_id, raised.value.running) == ("pizza", "first")
        second = await two.get_experiment(A, "second")
        assert second is not None
        assert second.status == "draft"
        assert (await two.start_experiment(A, "elsewhere", {}, 3.0)).status == "running"
        await one.stop_experiment(A, "first", 4.0)
        assert (await two.start_experiment(A, "second", {}, 5.0)).status == "running"
        await one.create_experiment(experiment("first", tenant=B))  # another tenant's flow of the same id
        assert (await one.start_experiment(B, "first", {}, 6.0)).status == "running"

    async def test_a_new_run_reads_the_published_version_and_the_running_experiment(
        self, store: Store
    ) -> None:
        assert await store.published_with_experiment(A, "pizza") == (None, None)
        await store.save_flow_version(A, flow())
        await store.publish(A, "pizza", "1.0.0")
        assert await store.published_with_experiment(A, "pizza") == ("1.0.0", None)
        await store.create_experiment(experiment())
        assert await store.published_with_experiment(A, "pizza") == ("1.0.0", None)  # a draft splits nothing
        await store.start_experiment(A, "exp", {}, 1.0)
        assert await store.published_with_experiment(A, "pizza") == ("1.0.0", "exp")
        assert await store.published_with_experiment(B, "pizza") == (None, None)
        assert await store.published_with_experiment(A, "bank") == (None, None)
        await store.stop_experiment(A, "exp", 2.0)
        assert await store.published_with_experiment(A, "pizza") == ("1.0.0", None)

    async def test_experiments_are_tenant_scoped(self, store: Store) -> None:
        await store.create_experiment(experiment())
        assert await store.get_experiment(B, "exp") is None
        assert await store.list_experiments(B) == []
        for act in (store.start_experiment(B, "exp", {}, 1.0), store.stop_experiment(B, "exp", 1.0)):
            with pytest.raises(ExperimentNotFound):
                await act
        own, existed = await store.create_experiment(experiment(tenant=B, name="B's own"))
        assert (own.tenant_id, existed) == (B, False)
        assert [r.experiment_id for r in await store.list_experiments(A)] == ["exp"]
        listed = await store.list_experiments(A)
        assert listed[0].status == "draft"

    async def test_run_counts_come_from_recorded_events_in_any_order(self, store: Store) -> None:
        await store.record_events(
            [
                run_event("experiment_exposure", "r1"),
                run_event("message_in", "r1"),
                run_event("no_match", "r1"),
                run_event("experiment_exposure", "r3", "b"),
                run_event("run_completed", "r3", "b", turns=2),  # before its turns: another process's batch
                {"type": "message_in", "tenant_id": A, "conversation_id": "plain", "run": "x", "data": {}},
                run_event("message_in", "r9", experiment_id="other"),
                run_event("message_in", "r1", tenant=B),
            ]
        )
        await store.record_events(
            [
                run_event("message_in", "r1"),
                run_event("message_out", "r1"),
                run_event("run_completed", "r1", turns=2),
                run_event("experiment_exposure", "r2"),
                run_event("message_in", "r2"),
                run_event("message_in", "r3", "b"),
                run_event("message_in", "r3", "b"),
            ]
        )
        assert await store.experiment_counts(A, "exp") == [
            VariantCounts("a", conversations=2, completions=1, turns_to_complete=2, turns=3, no_matches=1),
            VariantCounts("b", conversations=1, completions=1, turns_to_complete=2, turns=2, no_matches=0),
        ]
        assert await store.experiment_counts(A, "other") == [VariantCounts("a", 1, 0, 0, 1, 0)]
        assert await store.experiment_counts(B, "exp") == [VariantCounts("a", 1, 0, 0, 1, 0)]
        assert await store.experiment_counts(A, "nope") == []
        assert len(await store.events(A)) == 14  # every event is kept as well
