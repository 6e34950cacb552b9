"""Built-in transition conditions (SPEC §4)."""
