"""The global handlers in force in a turn (SPEC §5): a flow's own, and inside a sub-flow its callers' too.

A sub-flow started by ``trigger_flow`` inherits the global handlers of the flow that called it, per key,
the way a Dialogflow CX designer reads them: the sub-flow's own intent handlers win per intent, its own
``no_match`` and ``error_state`` win when it sets them; for anything it leaves unset the caller's apply,
then the caller's caller's. A handler of a calling flow leads to a state of that flow: taking it leaves
the sub-flow (a ``resume`` handler comes back to it, like any digression).

Nothing here runs for a conversation outside a sub-flow: the callers are read off the return stack, and
the stack is empty there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mcp_engine.flow.models import IntentHandler, NoMatchHandler
from mcp_engine.runtime.compiled import CompiledFlow, CompiledState


@dataclass(frozen=True, slots=True)
class Owner:
    """A flow whose global handlers are in force, and the index in the return stack of the frame that
    returns into it (None: the flow the conversation is in)."""

    compiled: CompiledFlow
    frame: int | None = None


async def in_force(
    current: CompiledFlow,
    stack: Sequence[dict[str, Any]],
    resolve: Callable[[str], Awaitable[CompiledFlow]],
) -> list[Owner]:
    """The flows whose handlers apply, nearest first: the current flow, then each flow that called it
    (a ``subflow`` frame of the return stack names its caller), each once."""
    owners = [Owner(current)]
    seen = {current.key}
    for index in range(len(stack) - 1, -1, -1):
        frame = stack[index]
        if frame.get("kind") != "subflow":
            continue
        caller = await resolve(f"{frame['flow_id']}@{frame['flow_version']}")
        if caller.key not in seen:
            seen.add(caller.key)
            owners.append(Owner(caller, index))
    return owners


def inherited_intents(owners: Sequence[Owner], state: CompiledState) -> list[tuple[Owner, list[str]]]:
    """Per calling flow, the intents of its handlers that apply here: not handled by a nearer flow, and
    not named by the current state's own transitions (a state's own answer comes first, SPEC §5)."""
    taken = set(owners[0].compiled.flow.global_handlers.intents) | state.own_intents
    found: list[tuple[Owner, list[str]]] = []
    for owner in owners[1:]:
        names = [name for name in owner.compiled.flow.global_handlers.intents if name not in taken]
        taken.update(names)
        if names:
            found.append((owner, names))
    return found


def intent_handler(owner: Owner, name: str) -> IntentHandler:
    return owner.compiled.flow.global_handlers.intents[name]


def no_match_handler(owners: Sequence[Owner]) -> tuple[Owner, NoMatchHandler] | None:
    """The nearest ``no_match`` handler, with the flow that sets it."""
    for owner in owners:
        handler = owner.compiled.flow.global_handlers.no_match
        if handler is not None:
            return owner, handler
    return None


def error_state(owners: Sequence[Owner]) -> tuple[Owner, str] | None:
    """The nearest ``error_state``, with the flow that sets it."""
    for owner in owners:
        state = owner.compiled.flow.global_handlers.error_state
        if state:
            return owner, state
    return None
