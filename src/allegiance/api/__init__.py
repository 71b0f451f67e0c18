"""The HTTP API: app factory, authentication, the idempotent unit of work, errors."""
