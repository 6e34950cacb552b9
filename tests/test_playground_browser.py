"""The playground in a real browser: Debian's Chromium driven by selenium through Debian's chromedriver
(both installed by ``.ci/setup``; no browser download), against ``mcp-engine serve`` with auth on.

One served engine and one browser per module. Every test leaves screenshots under a temporary folder
(``MCP_PLAYGROUND_SHOTS`` to choose it), the last one taken when the test ends, failed or not, and
fails on any script error or Content-Security-Policy violation the page logged.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.engine_fixtures import example_flow
from tests.serve_kit import FLOWS_DIR, serve

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# As root, headless, and quiet on a machine whose only network is the loopback.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,800",
    "--force-prefers-reduced-motion",  # no transitions: each screenshot shows the page settled
)
VIEWPORT = {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False}
WAIT_S = 15.0
ADMIN_KEY = "playground-admin-key"
RIVAL_FLOW = "rival_secret"
VOICE_GREETING = "Hi, welcome to Pronto Pizza. Would you like to order?"


@dataclass
class Site:
    base: str
    keys: dict[str, str]

    def call(self, method: str, path: str, key: str, body: Any = None) -> Any:
        """The REST API as a client of the tenant (or the admin) calls it."""
        request = urllib.request.Request(
            self.base + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=WAIT_S) as response:
            raw = response.read()
        return json.loads(raw) if raw else None


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """``serve --flows examples/flows`` with auth on; tenant "demo" owns the examples, tenant "rival"
    one flow of its own; a key for each."""
    folder = tmp_path_factory.mktemp("playground-serve")
    env = {"MCP_AUTH": "on", "MCP_ADMIN_KEY": ADMIN_KEY}
    with serve(folder, "--flows", str(FLOWS_DIR), env=env) as served:
        site = Site(served.base, {})
        site.call("PUT", "/v2/tenants/rival", ADMIN_KEY, {})
        for tenant in ("demo", "rival"):
            site.keys[tenant] = site.call("POST", f"/v2/tenants/{tenant}/keys", ADMIN_KEY)["key"]
        rival = {**example_flow("collect_contact"), "flow_id": RIVAL_FLOW, "tenant_id": "rival"}
        rival["name"] = "Rival secret flow"
        site.call("POST", "/v2/flows", site.keys["rival"], rival)
        site.call("POST", f"/v2/flows/{RIVAL_FLOW}/versions/1.0.0/publish", site.keys["rival"])
        yield site


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("MCP_PLAYGROUND_SHOTS")
    if chosen:
        Path(chosen).mkdir(parents=True, exist_ok=True)
        return Path(chosen)
    return tmp_path_factory.mktemp("playground-screenshots")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    missing = [str(tool) for tool in (CHROMIUM, CHROMEDRIVER) if not tool.exists()]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not found: the browser tests need Debian's chromium and "
            "chromium-driver packages, which .ci/setup installs",
            pytrace=False,
        )
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", VIEWPORT)
        yield driver
    finally:
        driver.quit()


Shot = Callable[[str], Path]


@pytest.fixture
def shot(browser: WebDriver, shots: Path, request: pytest.FixtureRequest) -> Iterator[Shot]:
    """``shot("name")`` saves a screenshot; one more is taken as the test ends. The page must have
    logged no script error and no CSP violation (failed requests are the API's answers, not bugs)."""
    test = request.node.name

    def take(name: str) -> Path:
        path = shots / f"{test}-{name}.png"
        browser.save_screenshot(str(path))
        return path

    browser.get_log("browser")  # drop what earlier tests left
    yield take
    take("end")
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE" and e["source"] != "network"]
    assert not errors, f"the page logged errors: {errors}"


# --- driving the page ---------------------------------------------------------------------------


def wait(browser: WebDriver, until: Callable[[WebDriver], Any], what: str) -> Any:
    waiting = WebDriverWait(browser, WAIT_S, ignored_exceptions=(StaleElementReferenceException,))
    return waiting.until(until, f"timed out waiting for {what}")


def by_id(browser: WebDriver, element_id: str) -> WebElement:
    return browser.find_element(By.ID, element_id)


def open_page(browser: WebDriver, site: Site) -> None:
    """A fresh page with no credentials kept. The storage is cleared on a page of the same origin that
    runs no script (the health check), so no playground script still connecting can write it again."""
    browser.get(site.base + "/v2/health")
    browser.execute_script("sessionStorage.clear()")
    browser.get(site.base + "/playground")
    wait(browser, lambda b: by_id(b, "credential").is_displayed(), "the connect dialog")


def connect(browser: WebDriver, credential: str) -> None:
    field = by_id(browser, "credential")
    field.clear()
    field.send_keys(credential + "\n")


def connected(browser: WebDriver, site: Site, tenant: str) -> None:
    open_page(browser, site)
    connect(browser, site.keys[tenant])
    wait(browser, lambda b: by_id(b, "flow-select").is_enabled(), "the flow list")
    wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#graph svg g.node[data-state]"), "a graph")


def flow_options(browser: WebDriver) -> list[str]:
    return [o.get_attribute("value") or "" for o in Select(by_id(browser, "flow-select")).options]


def pick_flow(browser: WebDriver, flow_id: str) -> None:
    Select(by_id(browser, "flow-select")).select_by_value(flow_id)
    wait(browser, lambda b: shown_states(b) == set(example_flow(flow_id)["states"]), f"the {flow_id} graph")
    wait(browser, lambda b: by_id(b, "chat-input").is_enabled(), "the chat")


def states_of(browser: WebDriver, selector: str) -> list[str]:
    """The ``data-state`` of the graph's elements matching ``selector``, read in one step (the graph
    may be redrawn between two reads)."""
    script = "return [...document.querySelectorAll(arguments[0])].map((el) => el.dataset.state || '')"
    found: list[str] = browser.execute_script(script, selector)
    return found


def shown_states(browser: WebDriver) -> set[str]:
    return set(states_of(browser, "#graph svg g.node[data-state]"))


def lit(browser: WebDriver) -> list[str]:
    """The states lit as current on the graph (one, or none)."""
    return states_of(browser, "#graph svg g.node.lit")


def marked(browser: WebDriver, selector: str) -> set[str]:
    return set(states_of(browser, selector))


def say(browser: WebDriver, text: str, state: str) -> None:
    """Send ``text`` in the chat; wait until the turn is drawn with ``state`` lit."""
    turns = len(browser.find_elements(By.CSS_SELECTOR, "#messages .path, #messages .error"))
    field = by_id(browser, "chat-input")
    wait(browser, lambda b: field.is_enabled(), "the chat input")
    field.send_keys(text + "\n")
    wait(
        browser,
        lambda b: len(b.find_elements(By.CSS_SELECTOR, "#messages .path, #messages .error")) > turns,
        f"the reply to {text!r}",
    )
    assert not browser.find_elements(By.CSS_SELECTOR, "#messages .error"), by_id(browser, "messages").text
    wait(browser, lambda b: lit(b) == [state], f"{state} lit after {text!r}")


def turn_path(browser: WebDriver) -> list[str]:
    """The states of the inspector's "This turn", in order."""
    return [step.text for step in browser.find_elements(By.CSS_SELECTOR, "#turn-path .step")]


def bot_texts(browser: WebDriver) -> list[str]:
    return [el.text for el in browser.find_elements(By.CSS_SELECTOR, "#messages .bot .text")]


def open_tab(browser: WebDriver, name: str) -> None:
    browser.find_element(By.CSS_SELECTOR, f'[data-tab="{name}"]').click()
    wait(browser, lambda b: by_id(b, f"tab-{name}").is_displayed(), f"the {name} tab")


# --- the tests ----------------------------------------------------------------------------------


def test_order_a_pizza_and_watch_the_lit_state_move(browser: WebDriver, site: Site, shot: Shot) -> None:
    open_page(browser, site)
    assert by_id(browser, "credential-label").text == "Tenant API key"  # the engine checks keys
    shot("connect")
    connected(browser, site, "demo")
    pick_flow(browser, "pizza")
    assert by_id(browser, "problems-count").text == "none"
    assert "published" in by_id(browser, "version-status").text
    shot("pizza")

    say(browser, "I'd like to order a pizza", "take_order")
    assert turn_path(browser) == ["greeting", "main_menu", "take_order"]
    assert marked(browser, "#graph g.node.visited") == {"greeting", "main_menu", "take_order"}
    assert browser.find_elements(By.CSS_SELECTOR, '#graph g.edge.taken[id="edge_start"]')
    say(browser, "large", "take_order")
    assert turn_path(browser) == []
    say(browser, "two", "delivery_details")
    assert turn_path(browser) == ["take_order", "pick_unit_price", "price_check", "delivery_details"]
    assert len(browser.find_elements(By.CSS_SELECTOR, "#graph g.edge.taken")) == 3
    inspector = by_id(browser, "inspector-body").text
    assert "size large" in inspector
    assert "count 2" in inspector
    assert "none (no experiment)" in by_id(browser, "ab-variant").text
    assert bot_texts(browser)[-1] == "Where should we deliver your 2 large pizzas?"
    shot("delivery")

    say(browser, "12 Main Street", "delivery_details")
    say(browser, "212-555-0198", "confirm_order")
    say(browser, "yes please", "order_placed")
    inspector = by_id(browser, "inspector-body").text
    assert "run completed" in inspector
    assert "affirm" in inspector  # the intent of the last turn, with its confidence
    shot("placed")


def test_reset_and_a_channel_of_its_own(browser: WebDriver, site: Site, shot: Shot) -> None:
    connected(browser, site, "demo")
    pick_flow(browser, "pizza")
    say(browser, "hello", "main_menu")
    by_id(browser, "reset").click()
    wait(browser, lambda b: not lit(b), "the lit state cleared by the reset")
    assert not bot_texts(browser)
    channel = by_id(browser, "channel")
    channel.clear()
    channel.send_keys("voice")
    say(browser, "hello", "main_menu")
    assert bot_texts(browser)[0] == VOICE_GREETING  # the state's template for the voice channel
    assert "channel voice" in by_id(browser, "inspector-body").text
    shot("voice")


def test_replay_a_conversation_step_by_step(browser: WebDriver, site: Site, shot: Shot) -> None:
    key = site.keys["demo"]
    path = "/v2/conversations/replay-me/messages"
    site.call("POST", path, key, {"content": {"text": "two large pizzas"}, "hints": {"force_flow": "pizza"}})
    site.call("POST", path, key, {"content": {"text": "12 Main Street"}})
    events = site.call("GET", "/v2/conversations/replay-me/history?limit=500", key)["events"][::-1]

    connected(browser, site, "demo")
    open_tab(browser, "replay")
    field = by_id(browser, "replay-id")
    field.clear()
    field.send_keys("replay-me\n")
    wait(
        browser,
        lambda b: len(b.find_elements(By.CSS_SELECTOR, "#timeline li")) == len(events),
        "the timeline",
    )
    assert by_id(browser, "replay-position").text == f"1 / {len(events)}"
    wait(browser, lambda b: lit(b) == [events[0]["state"]], "the first event's state")

    taken = next(n for n, event in enumerate(events) if event["type"] == "transition" and n > 5)
    for _ in range(taken):
        by_id(browser, "replay-next").click()
    wait(browser, lambda b: by_id(b, "replay-position").text == f"{taken + 1} / {len(events)}", "the step")
    transition = events[taken]["data"]
    wait(browser, lambda b: lit(b) == [transition["from"]], "the transition's state")
    assert browser.find_elements(By.CSS_SELECTOR, "#graph g.edge.taken")
    current = browser.find_element(By.CSS_SELECTOR, "#timeline li.current").text
    assert f"{transition['from']} → {transition['to']}" in current
    shot("transition")

    by_id(browser, "replay-last").click()
    wait(browser, lambda b: lit(b) == [events[-1]["state"]] == ["delivery_details"], "the last event's state")
    assert "address" in by_id(browser, "inspector-body").text  # slots filled so far, from slot_filled events
    shot("last")


def broken_pizza() -> dict[str, Any]:
    document = {**example_flow("pizza"), "flow_id": "pizza_draft", "name": "Pizza draft"}
    document["states"]["take_order"]["transitions"][1]["target_state"] = "pick_unit_prize"
    return document


def paste(browser: WebDriver, text: str) -> None:
    browser.execute_script("document.getElementById('document').value = arguments[0]", text)


def test_a_broken_upload_shows_its_problem_on_the_graph(browser: WebDriver, site: Site, shot: Shot) -> None:
    connected(browser, site, "demo")
    open_tab(browser, "upload")
    paste(browser, '{"flow_id": "x",')
    by_id(browser, "validate").click()
    wait(browser, lambda b: "json_syntax" in by_id(b, "problems").text, "the JSON syntax problem")

    pasted = json.dumps(broken_pizza(), indent=2)
    paste(browser, pasted)
    by_id(browser, "validate").click()
    pointer = "/states/take_order/transitions/1/target_state"
    wait(browser, lambda b: pointer in by_id(b, "problems").text, "the problem's pointer")
    line = next(n for n, text in enumerate(pasted.splitlines(), 1) if '"pick_unit_prize"' in text)
    assert f"{pointer} · line {line}" in by_id(browser, "problems").text  # a line of the pasted text
    assert "1 error" in by_id(browser, "problems-count").text
    assert "did you mean 'pick_unit_price'" in by_id(browser, "problems").text
    wait(browser, lambda b: "take_order" in marked(b, "#graph g.node.problem-error"), "the state marked")
    assert marked(browser, '#graph g.node[data-kind="missing"]') == {"pick_unit_prize"}
    assert browser.find_elements(By.CSS_SELECTOR, "#graph g.edge.problem-error")
    browser.find_element(By.CSS_SELECTOR, "#problems li.problem.error").click()
    wait(
        browser,
        lambda b: marked(b, "#graph g.node.focus") == {"take_order"},
        "the problem found on the graph",
    )
    assert "Preview" in by_id(browser, "graph-title").text
    shot("broken")
    by_id(browser, "close-preview").click()  # back to the flow picked before the upload
    wait(browser, lambda b: "Preview" not in by_id(b, "graph-title").text, "the picked flow's graph")
    assert by_id(browser, "problems-count").text == "none"

    fixed = {**broken_pizza(), "states": {**example_flow("pizza")["states"], "orphan": {"type": "end"}}}
    paste(browser, json.dumps(fixed, indent=2))
    by_id(browser, "save-publish").click()
    wait(
        browser,
        lambda b: by_id(b, "flow-select").get_attribute("value") == "pizza_draft",
        "the published flow",
    )
    wait(
        browser, lambda b: "orphan" in marked(b, "#graph g.node.problem-warning"), "the warning on the graph"
    )
    assert "published" in by_id(browser, "version-status").text
    assert "/states/orphan" in by_id(browser, "problems").text
    assert " · line " not in by_id(browser, "problems").text  # a stored version: its pointers, no lines
    shot("published")


def test_a_tenant_never_sees_another_tenants_flows(browser: WebDriver, site: Site, shot: Shot) -> None:
    connected(browser, site, "rival")
    assert flow_options(browser) == [RIVAL_FLOW]
    assert "pizza" not in browser.find_element(By.TAG_NAME, "body").text
    open_tab(browser, "replay")
    field = by_id(browser, "replay-id")
    field.clear()
    field.send_keys("replay-me\n")  # demo's conversation (the replay test made it, or nobody did)
    wait(browser, lambda b: "No history" in by_id(b, "replay-summary").text, "an empty history")
    shot("rival")

    connected(browser, site, "demo")
    assert RIVAL_FLOW not in flow_options(browser)
    assert {"pizza", "bank", "support", "collect_contact"} <= set(flow_options(browser))
    assert "Rival" not in browser.find_element(By.TAG_NAME, "body").text
    shot("demo")


def test_a_wrong_key_is_refused_and_asked_again(browser: WebDriver, site: Site, shot: Shot) -> None:
    open_page(browser, site)
    connect(browser, "not-a-key")
    wait(browser, lambda b: by_id(b, "connect-error").is_displayed(), "the refusal")
    assert "unknown or revoked API key" in by_id(browser, "connect-error").text
    assert browser.execute_script("return sessionStorage.length") == 0
    shot("refused")


def test_with_auth_off_the_page_names_a_tenant(
    browser: WebDriver, shot: Shot, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with serve(tmp_path_factory.mktemp("playground-off"), "--flows", str(FLOWS_DIR)) as served:
        open_page(browser, Site(served.base, {}))
        assert by_id(browser, "credential-label").text == "Tenant id"
        connect(browser, "demo")
        wait(browser, lambda b: "pizza" in flow_options(b), "demo's flows")
        assert by_id(browser, "who").text.startswith("tenant demo")
        shot("off")


def test_a_conversation_in_an_experiment_shows_its_variant(
    browser: WebDriver, site: Site, shot: Shot
) -> None:
    key = site.keys["demo"]
    patch = {"states": {"greeting": {"config": {"response_templates": {"default": "Hi! Pizza?"}}}}}
    experiment = {
        "experiment_id": "playground-test",
        "flow_id": "pizza",
        "variants": [
            {"name": "control", "percentage": 0},
            {"name": "short", "percentage": 100, "modifications": {"merge_patch": patch}},
        ],
    }
    site.call("POST", "/v2/experiments?start=true", key, experiment)
    try:
        connected(browser, site, "demo")
        pick_flow(browser, "pizza")
        say(browser, "I'd like to order a pizza", "take_order")  # drawn on the version the patch applies to
        assert turn_path(browser) == ["greeting", "main_menu", "take_order"]
        assert by_id(browser, "ab-variant").text == "short"
        assert "Hi! Pizza?" in bot_texts(browser)
        shot("variant")
    finally:
        site.call("POST", "/v2/experiments/playground-test/stop", key)
