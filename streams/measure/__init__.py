"""Measurement of what campaigns earned: conversions joined to triggers, holdout lift with a
confidence interval (results.py, stats.py), and the worker's `GET /v1/campaigns` (web.py).

Reads output records only (never the engine), so replay, the worker and the console compute the
same figures from the same records."""
