"""Built-in slot validation rules and entity extractors."""
