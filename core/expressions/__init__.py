"""The safe expression language of SPEC §4: parse once into a typed AST, evaluate strictly and null-safely."""
