"""Flow documents: models, loading, validation, JSON Schema and graph export."""
