"""The HTTP API of spec §10: the old pipeline monitor and consumer routes, status and metrics."""
