"""Probe engines: ICMP echo, TCP discovery and the token bucket that paces them."""

from __future__ import annotations

from hilos.probes.ratelimit import TokenBucket

__all__ = ["TokenBucket"]
