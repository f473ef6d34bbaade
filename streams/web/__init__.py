"""The worker's web server: Prometheus metrics and profile look-ups (see `server`)."""
