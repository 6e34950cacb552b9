"""The runtime: compiled flows, the turn, context, locks, timers and idempotency."""
