"""The HTTP surface: REST API under /api/v1, health and metrics."""
