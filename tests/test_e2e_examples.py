"""End-to-end conversations of every example flow through ``ExecutionService`` (SPEC §3-§6).

Each test talks to an engine on a temporary SQLite file with all example flows published for tenant
"demo", and checks every turn's messages and state. The bank and support flows call a real aiohttp
server on 127.0.0.1 (their ``integrations.*.base_url`` rewritten to it before publishing).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mcp_engine.errors import EngineError, FlowNotFound, InvalidInput, PayloadTooLarge
from mcp_engine.runtime.execution import ExecutionService, Hints, InboundMessage
from mcp_engine.runtime.timers import fire_due_timers
from mcp_engine.testing import FakeIntegration
from tests.engine_fixtures import (
    ENV,
    HELPDESK_KEY,
    TENANT,
    TOKEN,
    Conversation,
    ExampleBackend,
    engine_settings,
    example_flow,
    open_engine,
    texts,
)


@pytest.fixture
def backend(fake_integration: FakeIntegration) -> ExampleBackend:
    return ExampleBackend(fake_integration)


def bank_flow(backend: ExampleBackend) -> dict[str, Any]:
    document = example_flow("bank")
    document["integrations"]["core_banking"]["base_url"] = f"{backend.base}/api/v1"
    return document


def support_flow(backend: ExampleBackend) -> dict[str, Any]:
    document = example_flow("support")
    document["integrations"]["helpdesk"]["base_url"] = f"{backend.base}/helpdesk"
    return document


@pytest.fixture
async def engine(tmp_path: Path, backend: ExampleBackend) -> AsyncIterator[ExecutionService]:
    documents = {"bank": bank_flow(backend), "support": support_flow(backend)}
    async with open_engine(tmp_path / "engine.db", documents, env=ENV) as service:
        yield service


def pizza(engine: ExecutionService, conversation_id: str = "pizza-1") -> Conversation:
    return Conversation(engine, conversation_id, "pizza")


async def turn(chat: Conversation, text: str, state: str, messages: list[str]) -> dict[str, Any]:
    """Send ``text``; the reply must end in ``state`` having said exactly ``messages``."""
    reply = (await chat.say(text)).data
    assert (texts(reply), reply["current_state"]) == (messages, state), f"after {text!r}"
    return reply


# --- pizza -----------------------------------------------------------------------------------------

GREETING = "Hi, welcome to Pronto Pizza! Would you like to order a pizza?"
CLARIFY = "I can take a pizza order or tell you our opening hours. Which would you like?"
ASK_SIZE = "What size would you like: small, medium or large?"
ASK_COUNT_LARGE = "How many large pizzas would you like?"
RETRY_COUNT = "Please give a number of pizzas between 1 and 20."
ASK_ADDRESS_2_LARGE = "Where should we deliver your 2 large pizzas?"
ASK_PHONE = "And a phone number the driver can call?"
CALL_US = "Let's do this by phone: call us at 555-0100 and we'll take your order."
PIZZA_NO_MATCH = (
    'Sorry, I didn\'t catch that. You can order a pizza, ask for our opening hours or say "help".'
)
PIZZA_HELP = (
    'I take pizza orders: tell me the size, how many and the crust, e.g. "two large thin pizzas". '
    'Say "cancel" at any time to stop.'
)
CANCELLED = "No problem, I've cancelled the order. Hope to see you soon!"


CONFIRM_TWO_LARGE = "So that's 2 large pizzas to 12 Main Street, 34 USD in total. Shall I place the order?"


async def order_two_large(chat: Conversation) -> None:
    """Order two large pizzas slot by slot, up to the confirmation question."""
    await turn(chat, "I'd like to order a pizza", "take_order", [GREETING, ASK_SIZE])
    await turn(chat, "large", "take_order", [ASK_COUNT_LARGE])
    await turn(chat, "two", "delivery_details", [ASK_ADDRESS_2_LARGE])
    await turn(chat, "12 Main Street", "delivery_details", [ASK_PHONE])
    await turn(
        chat,
        "212-555-0198",
        "confirm_order",
        [CONFIRM_TWO_LARGE],
    )


async def test_pizza_happy_path_slot_by_slot(engine: ExecutionService) -> None:
    chat = pizza(engine)
    await order_two_large(chat)
    reply = await turn(
        chat,
        "yes please",
        "order_placed",
        ["Thank you! Your large pizzas are in the oven and will be at 12 Main Street in about 40 minutes."],
    )
    assert reply["flow_id"] == "pizza"
    assert reply["flow_version"] == "1.0.0"
    context = await chat.state()
    assert context["slots"] == {
        "size": "large",
        "count": 2,
        "address": "12 Main Street",
        "phone": "+12125550198",
    }
    assert context["variables"] == {"unit_price": 15, "price": 30, "delivery_fee": 4, "total": 34}
    assert context["run"]["completed"] is True
    assert context["previous_states"][-1] == "confirm_order"


async def test_pizza_count_and_size_given_with_the_order(engine: ExecutionService) -> None:
    chat = pizza(engine)
    reply = await turn(chat, "I'd like two large pizzas", "delivery_details", [GREETING, ASK_ADDRESS_2_LARGE])
    assert reply["context_updates"]["slots.size"] == "large"
    assert reply["context_updates"]["slots.count"] == 2
    assert reply["confidence_scores"]["order_pizza"] >= 0.7


async def test_pizza_free_delivery_over_50(engine: ExecutionService) -> None:
    chat = pizza(engine)
    await turn(
        chat,
        "four large thin pizzas please",
        "delivery_details",
        [
            GREETING,
            "Good news: orders over 50 USD are delivered for free!",
            "Where should we deliver your 4 large pizzas?",
        ],
    )
    await turn(chat, "5 Elm Road", "delivery_details", [ASK_PHONE])
    await turn(
        chat,
        "(415) 867-5309",
        "confirm_order",
        ["So that's 4 large pizzas with thin crust to 5 Elm Road, 60 USD in total. Shall I place the order?"],
    )
    context = await chat.state()
    assert context["variables"] == {"unit_price": 15, "price": 60, "delivery_fee": 0, "total": 60}


async def test_pizza_invalid_count_gets_the_retry_prompt_then_exhausts(engine: ExecutionService) -> None:
    chat = pizza(engine)
    await turn(chat, "I want to order", "take_order", [GREETING, ASK_SIZE])
    await turn(chat, "a big one", "take_order", [ASK_COUNT_LARGE])
    await turn(chat, "30", "take_order", [RETRY_COUNT])
    await turn(chat, "thirty", "take_order", [RETRY_COUNT])
    # max_retries is 3: the third invalid answer for the slot exhausts it, and the flow gives up
    await turn(chat, "lots", "call_us", [CALL_US])
    context = await chat.state()
    assert context["slots"] == {"size": "large"}
    assert context["run"]["completed"] is True


async def test_pizza_valid_answer_after_a_retry(engine: ExecutionService) -> None:
    chat = pizza(engine)
    await turn(chat, "pizza please", "take_order", [GREETING, ASK_SIZE])
    await turn(chat, "huge", "take_order", [ASK_COUNT_LARGE])
    await turn(chat, "30", "take_order", [RETRY_COUNT])
    await turn(chat, "2", "delivery_details", [ASK_ADDRESS_2_LARGE])


async def test_pizza_help_digression_resumes_the_interrupted_slot(engine: ExecutionService) -> None:
    chat = pizza(engine)
    await turn(chat, "I'd like to order a pizza", "take_order", [GREETING, ASK_SIZE])
    await turn(chat, "large", "take_order", [ASK_COUNT_LARGE])
    reply = await turn(chat, "help", "take_order", [PIZZA_HELP, ASK_COUNT_LARGE])
    assert reply["flow_id"] == "pizza"
    context = await chat.state()
    assert context["run"]["completed"] is False
    assert context["return_stack"] == []
    assert context["slots"] == {"size": "large"}
    # the order goes on where it was
    await turn(chat, "two", "delivery_details", [ASK_ADDRESS_2_LARGE])


async def test_pizza_help_from_the_menu_returns_to_the_menu(engine: ExecutionService) -> None:
    chat = pizza(engine)
    await turn(
        chat,
        "when are you open?",
        "main_menu",
        [GREETING, "We're open every day from 11am to 11pm. Shall I take an order?"],
    )
    await turn(chat, "help", "main_menu", [PIZZA_HELP])
    await turn(chat, "two small pizzas", "delivery_details", ["Where should we deliver your 2 small pizzas?"])


async def test_pizza_cancel(engine: ExecutionService) -> None:
    chat = pizza(engine)
    await turn(chat, "I'd like to order a pizza", "take_order", [GREETING, ASK_SIZE])
    await turn(chat, "cancel", "order_cancelled", [CANCELLED])
    assert (await chat.state())["run"]["completed"] is True


async def test_pizza_deny_at_confirmation_cancels(engine: ExecutionService) -> None:
    chat = pizza(engine)
    await order_two_large(chat)
    await turn(chat, "no", "order_cancelled", [CANCELLED])


async def test_pizza_no_match_then_escalation(engine: ExecutionService) -> None:
    chat = pizza(engine)
    await order_two_large(chat)
    await turn(chat, "purple elephants", "confirm_order", [PIZZA_NO_MATCH])
    await turn(chat, "what about the weather", "confirm_order", [PIZZA_NO_MATCH])
    # max_consecutive is 3: the third miss in a row enters call_us instead of replying
    await turn(chat, "banana", "call_us", [CALL_US])


async def test_pizza_a_match_resets_the_no_match_count(engine: ExecutionService) -> None:
    chat = pizza(engine)
    await order_two_large(chat)
    await turn(chat, "purple elephants", "confirm_order", [PIZZA_NO_MATCH])
    await turn(chat, "banana", "confirm_order", [PIZZA_NO_MATCH])
    # the digression ends and confirm_order asks its question again
    await turn(chat, "help", "confirm_order", [PIZZA_HELP, CONFIRM_TWO_LARGE])
    await turn(chat, "lorem ipsum", "confirm_order", [PIZZA_NO_MATCH])
    assert (await chat.state())["no_match_count"] == 1


async def test_pizza_a_new_run_after_the_end(engine: ExecutionService) -> None:
    chat = pizza(engine)
    await order_two_large(chat)
    await turn(
        chat,
        "yes",
        "order_placed",
        ["Thank you! Your large pizzas are in the oven and will be at 12 Main Street in about 40 minutes."],
    )
    first = await chat.state()
    reply = await turn(chat, "hello again", "main_menu", [GREETING, CLARIFY])
    context = await chat.state()
    assert context["slots"] == {}
    assert context["variables"] == {"unit_price": 0, "price": 0, "delivery_fee": 0, "total": 0}
    assert context["run"]["completed"] is False
    assert context["run"]["id"] != first["run"]["id"]
    assert reply["context_updates"]["slots.size"] is None
    # history is kept across runs
    history = await chat.history()
    said = [event["data"]["text"] for event in history if event["type"] == "message_in"]
    assert said[0] == "I'd like to order a pizza"
    assert said[-1] == "hello again"
    # and the new run works
    await turn(chat, "two small pizzas", "delivery_details", ["Where should we deliver your 2 small pizzas?"])


# --- bank ------------------------------------------------------------------------------------------

WELCOME = "Welcome to Acme Bank."
MENU = "How can I help you? I can check your balance or put you through to an advisor."
ASK_ACCOUNT = "Which account? Please type its 8-digit number."
ANYTHING_ELSE = "Is there anything else I can do for you?"
HANDOFF = "I'm connecting you with an advisor. Please stay on the line."
UNAVAILABLE = "Our banking system is unavailable right now. Please try again in a few minutes."


def looking_up(account: str) -> str:
    return f"One moment while I look up account {account}..."


BALANCE = "The balance of account 12345678 is 1234.5 EUR (as of 2024-05-01)."


async def test_bank_balance_success(engine: ExecutionService, backend: ExampleBackend) -> None:
    chat = Conversation(engine, "bank-1", "bank")
    await turn(chat, "what's my balance?", "ask_account", [WELCOME, MENU, ASK_ACCOUNT])
    reply = await turn(chat, "12345678", "anything_else", [looking_up("12345678"), BALANCE, ANYTHING_ELSE])
    assert reply["context_updates"]["variables.balance"] == 1234.5
    assert reply["context_updates"]["variables.balance_date"] == "2024-05-01"
    context = await chat.state()
    assert context["integration_results"]["core_banking"] == {
        "data": {"balance": 1234.5, "as_of": "2024-05-01"}
    }
    (request,) = backend.requests
    assert request.path == "/api/v1/accounts/12345678/balance"
    assert request.query == {"currency": "EUR", "channel": "default"}
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    # the secret is resolved at call time, never stored resolved
    stored = await engine.store.get_flow_version(TENANT, "bank", "1.2.0")
    assert stored is not None
    assert stored.document["integrations"]["core_banking"]["headers"]["Authorization"] == (
        "Bearer ${env:BANK_API_TOKEN}"
    )
    assert TOKEN not in repr(context) + repr(await chat.history())
    await turn(chat, "no thanks", "goodbye", ["Thank you for banking with Acme. Goodbye!"])


async def test_bank_unknown_account_takes_the_4xx_branch(
    engine: ExecutionService, backend: ExampleBackend
) -> None:
    chat = Conversation(engine, "bank-404", "bank")
    await turn(chat, "check my account balance", "ask_account", [WELCOME, MENU, ASK_ACCOUNT])
    reply = await turn(
        chat,
        "00000404",
        "handoff",
        [
            looking_up("00000404"),
            "I couldn't find account 00000404. Let me put you through to an advisor who can help.",
            HANDOFF,
        ],
    )
    assert reply["messages"][-1]["attributes"]["response_type"] == "handoff"
    assert backend.attempts == {"00000404": 1}  # 4xx is never retried
    context = await chat.state()
    assert context["variables"]["handed_off"] is True
    assert "balance" not in context["variables"]


async def test_bank_5xx_is_not_retried_by_the_state_retry_config(
    engine: ExecutionService, backend: ExampleBackend
) -> None:
    # fetch_balance's retry_config (retry on timeout and network only) overrides the integration's policy
    chat = Conversation(engine, "bank-503", "bank")
    await turn(chat, "balance", "ask_account", [WELCOME, MENU, ASK_ACCOUNT])
    await turn(chat, "55555503", "bank_unavailable", [looking_up("55555503"), UNAVAILABLE])
    assert backend.attempts == {"55555503": 1}


async def test_bank_503_twice_then_200_is_retried(tmp_path: Path, backend: ExampleBackend) -> None:
    document = bank_flow(backend)
    document["states"]["fetch_balance"]["config"]["retry_config"] = {
        "max_retries": 2,
        "backoff_ms": 1,
        "retry_on": ["http_5xx", "timeout"],
    }
    async with open_engine(tmp_path / "e.db", {"bank": document}, env=ENV) as engine:
        chat = Conversation(engine, "bank-retry", "bank")
        await turn(chat, "balance", "ask_account", [WELCOME, MENU, ASK_ACCOUNT])
        await turn(
            chat,
            "55555503",
            "anything_else",
            [
                looking_up("55555503"),
                "The balance of account 55555503 is 1234.5 EUR (as of 2024-05-01).",
                ANYTHING_ELSE,
            ],
        )
        history = await chat.history()
    assert backend.attempts == {"55555503": 3}
    (call,) = [event for event in history if event["type"] == "integration_call"]
    assert call["data"]["outcome"] == "success"
    assert call["data"]["attempts"] == 3


async def test_bank_503_after_every_retry_is_unavailable(tmp_path: Path, backend: ExampleBackend) -> None:
    document = bank_flow(backend)
    document["states"]["fetch_balance"]["config"]["retry_config"] = {
        "max_retries": 1,
        "backoff_ms": 1,
        "retry_on": ["http_5xx"],
    }
    async with open_engine(tmp_path / "e.db", {"bank": document}, env=ENV) as engine:
        chat = Conversation(engine, "bank-down", "bank")
        await turn(chat, "balance", "ask_account", [WELCOME, MENU, ASK_ACCOUNT])
        await turn(chat, "55555503", "bank_unavailable", [looking_up("55555503"), UNAVAILABLE])
    assert backend.attempts == {"55555503": 2}


async def test_bank_slow_answer_takes_the_timeout_branch(tmp_path: Path, backend: ExampleBackend) -> None:
    document = bank_flow(backend)
    config = document["states"]["fetch_balance"]["config"]
    config["timeout_ms"] = 300  # the slow account never answers in time; the others answer at once
    config["retry_config"] = {"max_retries": 1, "backoff_ms": 1, "retry_on": ["timeout"]}
    async with open_engine(tmp_path / "e.db", {"bank": document}, env=ENV) as engine:
        chat = Conversation(engine, "bank-slow", "bank")
        await turn(chat, "balance", "ask_account", [WELCOME, MENU, ASK_ACCOUNT])
        await turn(
            chat,
            "77777777",
            "retry_offer",
            [looking_up("77777777"), "Our banking system is taking too long to answer. Shall I try again?"],
        )
        assert backend.attempts == {"77777777": 2}
        # the bank is back: trying again succeeds
        backend.slow = False
        await turn(
            chat,
            "yes",
            "anything_else",
            [
                looking_up("77777777"),
                "The balance of account 77777777 is 1234.5 EUR (as of 2024-05-01).",
                ANYTHING_ELSE,
            ],
        )


async def test_bank_missing_token_is_a_mapping_error(tmp_path: Path, backend: ExampleBackend) -> None:
    async with open_engine(tmp_path / "e.db", {"bank": bank_flow(backend)}, env={}) as engine:
        chat = Conversation(engine, "bank-notoken", "bank")
        await turn(chat, "balance", "ask_account", [WELCOME, MENU, ASK_ACCOUNT])
        await turn(chat, "12345678", "bank_unavailable", [looking_up("12345678"), UNAVAILABLE])
    assert backend.requests == []


async def test_bank_invalid_account_and_no_match(engine: ExecutionService) -> None:
    chat = Conversation(engine, "bank-nm", "bank")
    no_match = (
        'Sorry, I didn\'t understand. You can ask for your balance, or say "agent" to talk to a person.'
    )
    await turn(chat, "hello", "main_menu", [WELCOME, MENU, no_match])
    await turn(chat, "balance please", "ask_account", [ASK_ACCOUNT])
    await turn(
        chat,
        "1234",
        "ask_account",
        ["An account number has exactly 8 digits, e.g. 12345678. Which account?"],
    )
    await turn(chat, "cancel", "goodbye", ["Thank you for banking with Acme. Goodbye!"])


# --- support ---------------------------------------------------------------------------------------

SUPPORT_HI = "Hi, this is Acme support. In a few words, what's going on?"
RESTART = (
    "Let's try the classic first: unplug your router, wait 30 seconds and plug it back in. "
    "Tell me when it's back up; I'll check on you in two minutes."
)
CHECK_IN = "Just checking in: is your connection working again?"
ESCALATE = (
    "I'm sorry I couldn't fix this here. I'll open a ticket for an engineer; "
    "first I need your contact details."
)
ASK_NAME = "Who should the engineer ask for?"
SUPPORT_BYE = "Thanks for contacting Acme support. Bye!"
RESOLVED = "Great, glad it's working again! Have a good day."
SUPPORT_HELP = (
    "I can answer billing questions, help with connection problems and open a ticket for an engineer. "
    'Say "cancel" to stop.'
)


async def reach_wait_state(chat: Conversation) -> dict[str, Any]:
    reply = await turn(chat, "my internet is down", "wait_for_restart", [SUPPORT_HI, RESTART])
    restart = reply["messages"][1]["attributes"]
    assert restart == {"response_type": "text", "typing_indicator": "true", "delay_ms": "800"}
    return reply


async def test_support_wait_times_out_server_side(engine: ExecutionService) -> None:
    chat = Conversation(engine, "support-timer", "support")
    await reach_wait_state(chat)
    assert await fire_due_timers(engine, now=time.time() + 60) == []  # not due yet (two minutes)
    fired = await fire_due_timers(engine, now=time.time() + 3600)
    assert fired == [
        {
            "tenant_id": TENANT,
            "conversation_id": "support-timer",
            "messages": [{"type": "text", "text": CHECK_IN, "attributes": {}}],
        }
    ]
    # exactly once
    assert await fire_due_timers(engine, now=time.time() + 7200) == []
    context = await chat.state()
    assert context["current_state"] == "check_in"
    assert context["timer"] is None
    history = await chat.history()
    assert [e["data"]["text"] for e in history if e["type"] == "message_out"][-1] == CHECK_IN
    assert any(e["type"] == "timer_fired" for e in history)
    # the conversation goes on from the check-in
    await turn(chat, "yes it works", "resolved", [RESOLVED])


async def test_support_client_sent_timeout_event(engine: ExecutionService) -> None:
    chat = Conversation(engine, "support-event", "support")
    await reach_wait_state(chat)
    reply = (await chat.say("timeout", type="event")).data
    assert (texts(reply), reply["current_state"]) == ([CHECK_IN], "check_in")
    # leaving the wait state cancelled its server-side timer
    assert await fire_due_timers(engine, now=time.time() + 3600) == []
    assert (await chat.state())["current_state"] == "check_in"


async def test_support_help_in_the_wait_state_keeps_its_timeout(engine: ExecutionService) -> None:
    chat = Conversation(engine, "support-help", "support")
    await reach_wait_state(chat)
    await turn(
        chat,
        "help",
        "wait_for_restart",
        [SUPPORT_HELP],
    )
    # the digression returned to the wait state, whose server-side timeout still fires
    fired = await fire_due_timers(engine, now=time.time() + 3600)
    assert [texts(timer) for timer in fired] == [[CHECK_IN]]
    assert (await chat.state())["current_state"] == "check_in"


async def test_support_cancel_in_the_wait_state_drops_its_timeout(engine: ExecutionService) -> None:
    chat = Conversation(engine, "support-cancel", "support")
    await reach_wait_state(chat)
    await turn(chat, "cancel", "cancelled", ["OK, I've stopped here. Write again any time."])
    assert await fire_due_timers(engine, now=time.time() + 3600) == []
    assert (await chat.state())["current_state"] == "cancelled"


async def test_the_timer_survives_a_new_engine(tmp_path: Path, backend: ExampleBackend) -> None:
    db = tmp_path / "timers.db"
    async with open_engine(db, {"support": support_flow(backend)}, env=ENV) as engine:
        await reach_wait_state(Conversation(engine, "support-restart", "support"))
    async with open_engine(db, publish=False, env=ENV) as engine:
        fired = await fire_due_timers(engine, now=time.time() + 3600)
        assert [(timer["conversation_id"], texts(timer)) for timer in fired] == [
            ("support-restart", [CHECK_IN])
        ]
        history = await engine.store.history(TENANT, "support-restart")
        assert history[0]["type"] == "timer_fired"


async def test_a_timeout_event_outside_a_wait_state_is_ignored(engine: ExecutionService) -> None:
    # main_menu's low_confidence transition must not hold on the intent of the previous message ("hi"),
    # and an event nothing waits for is neither answered nor counted as a miss
    chat = pizza(engine, "stray-timeout")
    await turn(chat, "hi", "main_menu", [GREETING, CLARIFY])
    reply = (await chat.say("timeout", type="event")).data
    assert (texts(reply), reply["current_state"]) == ([], "main_menu")
    assert (await engine.get_state("demo", "stray-timeout"))["no_match_count"] == 0


async def test_support_reply_to_the_wait_state_resolves(engine: ExecutionService) -> None:
    chat = Conversation(engine, "support-ok", "support")
    await reach_wait_state(chat)
    reply = await turn(chat, "OK it's back up", "resolved", [RESOLVED])
    assert reply["context_updates"]["variables.restart_reply"] == "ok it's back up"
    assert await fire_due_timers(engine, now=time.time() + 3600) == []


async def test_support_sub_flow_collects_contact_and_returns(
    engine: ExecutionService, backend: ExampleBackend
) -> None:
    chat = Conversation(engine, "support-sub", "support")
    await reach_wait_state(chat)
    reply = await turn(chat, "still not working", "ask_contact", [ESCALATE, ASK_NAME])
    assert reply["flow_id"] == "collect_contact"
    context = await chat.state()
    assert [frame["state"] for frame in context["return_stack"]] == ["open_ticket"]
    assert await fire_due_timers(engine, now=time.time() + 3600) == []  # the wait's timer is gone
    await turn(
        chat, "Jane Doe", "ask_contact", ["Thanks Jane Doe. What's the best email address to reach you?"]
    )
    await turn(
        chat,
        "jane at example",
        "ask_contact",
        ["That doesn't look like an email address. Could you check it?"],
    )
    await turn(
        chat, "jane@example.com", "confirm_contact", ["I have Jane Doe, jane@example.com. Is that right?"]
    )
    reply = await turn(
        chat,
        "yes",
        "goodbye",
        [
            "Thanks Jane Doe, we'll reach you at jane@example.com.",
            "Your ticket is T-1001. An engineer will contact you at jane@example.com "
            "within one business day.",
            SUPPORT_BYE,
        ],
    )
    assert (reply["flow_id"], reply["flow_version"]) == ("support", "2.0.1")
    context = await chat.state()
    assert context["return_stack"] == []
    assert context["run"]["completed"] is True
    assert context["variables"]["ticket_id"] == "T-1001"
    (ticket,) = [r for r in backend.requests if r.path == "/helpdesk/tickets"]
    assert ticket.headers["X-Api-Key"] == HELPDESK_KEY
    assert ticket.json() == {
        "summary": "my internet is down",
        "contact_name": "Jane Doe",
        "contact_email": "jane@example.com",
        "conversation_id": "support-sub",
    }


async def test_support_sub_flow_skipped_contact(engine: ExecutionService) -> None:
    chat = Conversation(engine, "support-skip", "support")
    await turn(chat, "I want to talk to someone", "ask_contact", [SUPPORT_HI, ESCALATE, ASK_NAME])
    await turn(chat, "Bob", "ask_contact", ["Thanks Bob. What's the best email address to reach you?"])
    await turn(chat, "bob@example.org", "confirm_contact", ["I have Bob, bob@example.org. Is that right?"])
    await turn(
        chat,
        "no",
        "goodbye",
        [
            "No problem, we'll use the contact details on your account instead.",
            "Your ticket is T-1001. An engineer will contact you within one business day.",
            SUPPORT_BYE,
        ],
    )


async def test_support_billing(engine: ExecutionService) -> None:
    chat = Conversation(engine, "support-bill", "support")
    await turn(
        chat,
        "why was I charged twice?",
        "goodbye",
        [
            SUPPORT_HI,
            "All your invoices are in the app under Account > Billing. For refunds, our billing team answers "
            "on weekdays at billing@example.com.",
            SUPPORT_BYE,
        ],
    )


# --- idempotency, persistence, versions ------------------------------------------------------------


async def test_the_same_message_id_twice_returns_the_stored_reply(engine: ExecutionService) -> None:
    chat = pizza(engine, "idem")
    first = (await chat.say("I'd like to order a pizza", message_id="m-1")).data
    before = await engine.store.load(TENANT, "idem")
    history = await chat.history()
    again = (await chat.say("I'd like to order a pizza", message_id="m-1")).data
    assert again == first
    after = await engine.store.load(TENANT, "idem")
    assert before is not None
    assert after is not None
    assert after.version == before.version
    assert after.context == before.context
    assert await chat.history() == history
    # the same id with other text is still the same message
    assert (await chat.say("large", message_id="m-1")).data == first
    # a new id is a new message
    reply = (await chat.say("large", message_id="m-2")).data
    assert (texts(reply), reply["current_state"]) == ([ASK_COUNT_LARGE], "take_order")


async def test_a_new_engine_on_the_same_file_continues(tmp_path: Path) -> None:
    db = tmp_path / "persist.db"
    async with open_engine(db) as engine:
        chat = pizza(engine, "persist")
        await turn(chat, "I'd like to order a pizza", "take_order", [GREETING, ASK_SIZE])
        await turn(chat, "large", "take_order", [ASK_COUNT_LARGE])
    async with open_engine(db, publish=False) as engine:
        chat = pizza(engine, "persist")
        chat.replies.append({})  # not the first message: no force_flow, the conversation's own flow
        await turn(chat, "two", "delivery_details", [ASK_ADDRESS_2_LARGE])
        context = await chat.state()
        assert context["slots"] == {"size": "large", "count": 2}


async def test_a_new_version_affects_new_runs_only(engine: ExecutionService) -> None:
    chat = pizza(engine, "versions")
    await turn(chat, "I'd like to order a pizza", "take_order", [GREETING, ASK_SIZE])
    document = example_flow("pizza")
    document["version"] = "1.1.0"
    document["states"]["greeting"]["config"]["response_templates"]["default"] = "Ciao!"
    await engine.catalogue.publish_document(document)
    reply = await turn(chat, "cancel", "order_cancelled", [CANCELLED])
    assert reply["flow_version"] == "1.0.0"
    reply = await turn(chat, "hi", "main_menu", ["Ciao!", CLARIFY])
    assert reply["flow_version"] == "1.1.0"


# --- bad input -------------------------------------------------------------------------------------


async def assert_refused(
    engine: ExecutionService,
    error: type[EngineError],
    code: str,
    message: InboundMessage,
    hints: Hints | None = None,
    tenant: str = TENANT,
) -> None:
    with pytest.raises(error) as caught:
        await engine.process_message(tenant, "bad-1", message, hints)
    assert caught.value.code == code
    assert caught.value.message
    assert await engine.store.load(tenant, "bad-1") is None
    assert await engine.store.history(tenant, "bad-1") == []


@pytest.mark.parametrize("text", ["", "   \n"])
async def test_empty_text_is_refused(engine: ExecutionService, text: str) -> None:
    await assert_refused(
        engine, InvalidInput, "invalid_argument", InboundMessage(text=text), Hints(force_flow="pizza")
    )


async def test_a_megabyte_of_text_is_refused(engine: ExecutionService) -> None:
    message = InboundMessage(text="a" * (1024 * 1024))
    await assert_refused(engine, PayloadTooLarge, "payload_too_large", message, Hints(force_flow="pizza"))


async def test_text_over_the_flows_limit_is_refused(engine: ExecutionService) -> None:
    message = InboundMessage(text="pizza " * 1000)  # 6000 characters: under the engine's bytes, over 4000
    await assert_refused(engine, InvalidInput, "invalid_argument", message, Hints(force_flow="pizza"))


async def test_an_unknown_content_type_is_refused(engine: ExecutionService) -> None:
    message = InboundMessage(text="hi", type="image")
    await assert_refused(engine, InvalidInput, "invalid_argument", message, Hints(force_flow="pizza"))


async def test_an_unknown_flow_is_refused(engine: ExecutionService) -> None:
    message = InboundMessage(text="hi")
    await assert_refused(engine, FlowNotFound, "flow_not_found", message, Hints(force_flow="no_such_flow"))


async def test_a_tenant_without_a_default_flow_is_refused(engine: ExecutionService) -> None:
    await assert_refused(engine, FlowNotFound, "flow_not_found", InboundMessage(text="hi"))
    await assert_refused(engine, FlowNotFound, "flow_not_found", InboundMessage(text="hi"), tenant="nobody")


async def test_another_tenants_flow_is_not_found(engine: ExecutionService) -> None:
    message = InboundMessage(text="hi")
    await assert_refused(engine, FlowNotFound, "flow_not_found", message, Hints(force_flow="pizza"), "other")


async def test_the_default_flow_is_used_without_hints(engine: ExecutionService) -> None:
    await engine.catalogue.publish_document(example_flow("pizza"), make_default=True)
    reply = await engine.process_message(TENANT, "default-1", InboundMessage(text="two small pizzas"))
    assert texts(reply) == [GREETING, "Where should we deliver your 2 small pizzas?"]
    assert reply["flow_id"] == "pizza"


async def test_settings_by_field_name() -> None:
    settings = engine_settings(state_execution_timeout_ms=1234)
    assert settings.state_execution_timeout_ms == 1234
