"""Built-in state types, one module each."""
