// A conversation's history events (GET /v2/conversations/{id}/history) read as a designer reads them:
// the path a turn took on the graph, and one line per event for the replay's timeline.

const MOVES = new Set(["transition", "digression", "resumed", "subflow_started", "subflow_returned"]);
const TROUBLE = new Set(["no_match", "error", "slot_invalid"]);

/** The states entered and transitions taken in ``events`` (oldest first) on the flow ``flowId@version``
 * (a sub-flow's events are on another graph); ``chain`` is every state entered, sub-flows included. */
export function pathOf(events, flowId, version) {
  const path = { states: [], transitions: [], globals: [], start: false, chain: [], trouble: [] };
  let move = null; // what led to the next state entered: null means the run's start
  for (const event of events) {
    const here = event.flow_id === flowId && event.flow_version === version;
    const data = event.data || {};
    // "resumed": back in the state a digression interrupted (not entered anew, but on the path again)
    if (event.type === "state_entered" || event.type === "resumed") {
      path.chain.push(here ? data.state : `${event.flow_id}:${data.state}`);
      if (here) path.states.push(data.state);
      if (here && move === null && event.type === "state_entered") path.start = true;
      move = null;
    } else if (MOVES.has(event.type)) {
      move = event;
      if (event.type === "transition" && !path.chain.length) path.chain.push(data.from); // where the turn began
      if (event.type === "transition" && here) {
        if (!path.states.length) path.states.push(data.from);
        path.transitions.push(`${data.from}#${data.index}`);
      }
      if (event.type === "digression" && here) path.globals.push(data.target);
    } else if (TROUBLE.has(event.type)) {
      path.trouble.push(describe(event));
    }
  }
  return path;
}

/** One line for an event: what happened, in words. */
export function describe(event) {
  const d = event.data || {};
  switch (event.type) {
    case "message_in":
      return `user: ${d.text}`;
    case "message_out":
      return `bot: ${d.text}`;
    case "state_entered":
      return `entered ${d.state} (${d.type})`;
    case "transition":
      return `${d.from} → ${d.to} (transition ${d.index})`;
    case "digression":
      return `global handler ${d.intent} → ${d.target}${d.resume ? " (resume)" : ""}`;
    case "action":
      return `action ${d.type}`;
    case "slot_filled":
      return `slot ${d.slot} = ${JSON.stringify(d.value)}`;
    case "slot_invalid":
      return `slot ${d.slot} invalid (${d.reason}, attempt ${d.attempt})`;
    case "no_match":
      return "no match";
    case "error":
      return `error ${d.kind}: ${d.message || ""}`;
    case "integration_call":
      return `integration ${d.integration_id}: ${d.outcome || ""} ${d.latency_ms !== undefined ? `${d.latency_ms} ms` : ""}`;
    case "subflow_started":
      return `sub-flow ${d.flow_id}@${d.version}`;
    case "subflow_returned":
      return `back from the sub-flow to ${d.state}`;
    case "resumed":
      return `back in ${d.state} after the digression`;
    case "run_completed":
      return `run completed in ${d.state}`;
    case "timer_fired":
      return "timeout fired";
    case "custom":
      return `event ${d.event || ""}`;
    default:
      return event.type;
  }
}

/** The kind of line in the timeline (its colour). */
export function kindOf(event) {
  if (event.type === "message_in") return "user";
  if (event.type === "message_out") return "bot";
  if (event.type === "state_entered" || MOVES.has(event.type)) return "move";
  if (TROUBLE.has(event.type)) return "trouble";
  return "other";
}

/** Slots as the events filled them up to ``index`` (a new run starts empty). */
export function slotsAt(events, index) {
  let slots = {};
  for (const event of events.slice(0, index + 1)) {
    if (event.type === "slot_filled") slots[event.data.slot] = event.data.value;
    if (event.type === "run_completed") slots = {};
  }
  return slots;
}
