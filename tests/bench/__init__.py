"""Smoke tests of bench/load.py's load scenarios: short versions of each,
against the real service as `make run` starts it, asserting behaviour (every
request answered, no 5xx but the documented shedding, nothing lost, nothing
logged as an exception), never speed."""
