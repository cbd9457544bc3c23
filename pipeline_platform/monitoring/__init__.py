"""Monitoring state shared by the HTTP API (/status, /metrics) and the monitoring checks."""
