"""Built-in integration clients."""
