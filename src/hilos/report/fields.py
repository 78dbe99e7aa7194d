"""Fields of a scan file turned into hilos results: numbers checked, every string cleaned."""

from __future__ import annotations

from typing import cast

from hilos.results import PortResult, PortState
from hilos.sanitize import BANNER_DATA_LIMIT, FIELD_LIMIT, clean, clean_optional

__all__ = ["address", "make_port", "opt_str"]

_STATES = {"open", "closed", "filtered", "open|filtered", "unfiltered", "closed|filtered"}


def make_port(
    port: object,
    proto: object,
    state: object,
    reason: object = "",
    service: object = None,
    product: object = None,
    version: object = None,
    banner: object = None,
    tls: bool = False,
) -> PortResult:
    """A PortResult from untrusted values: numbers checked, every string cleaned."""
    if isinstance(port, bool) or not isinstance(port, (int, str)):
        raise ValueError(f"port {port!r} is not a number")
    number = int(port)
    if not 0 <= number <= 65535:
        raise ValueError(f"port {number} out of range")
    text_state = str(state)
    if text_state not in _STATES:
        raise ValueError(f"unknown port state {clean(text_state, 32)!r}")
    return PortResult(
        port=number,
        state=cast(PortState, text_state),
        reason=clean(str(reason or ""), FIELD_LIMIT),
        proto=clean(str(proto or "tcp"), 16) or "tcp",
        service=clean_optional(opt_str(service), FIELD_LIMIT),
        product=clean_optional(opt_str(product), FIELD_LIMIT),
        version=clean_optional(opt_str(version), FIELD_LIMIT),
        banner=clean_optional(opt_str(banner), BANNER_DATA_LIMIT),
        tls=tls,
    )


def opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def address(value: object) -> str:
    """A host address as the file gives it; anything but an IP address is refused."""
    import ipaddress

    text = str(value).strip()
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ValueError(f"{clean(text, 64)!r} is not an IP address") from None
