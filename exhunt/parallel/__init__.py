"""Scaling the scan: work units, byte ranges of big logs, the watched pool, resume and fleets."""
