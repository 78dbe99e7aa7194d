"""Old path of the token bucket (now hilos.wire.ratelimit), kept until every engine imports it."""

from __future__ import annotations

from hilos.wire.ratelimit import TokenBucket

__all__ = ["TokenBucket"]
