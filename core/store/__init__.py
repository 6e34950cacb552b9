"""Stores: the Store contract; the embedded SQLite store; the production PostgreSQL + Redis store."""
