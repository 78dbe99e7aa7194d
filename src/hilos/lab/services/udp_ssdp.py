"""Lab SSDP (UPnP) responder: answers an M-SEARCH with MAN "ssdp:discover", else silence."""

from __future__ import annotations

__all__ = ["SERVER", "answer"]

SERVER = "Linux/6.1 UPnP/1.0 MiniUPnPd/2.3.3"


def answer(data: bytes) -> bytes | None:
    """The response to one datagram, or None (stay silent)."""
    if not data.startswith(b"M-SEARCH * HTTP/1.1\r\n") or b"\r\n\r\n" not in data:
        return None
    headers = {}
    for line in data.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    if headers.get(b"man") != b'"ssdp:discover"' or b"st" not in headers:
        return None
    return (
        b"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\nEXT:\r\n"
        b"LOCATION: http://198.18.0.1:49152/rootDesc.xml\r\n"
        b"SERVER: " + SERVER.encode() + b"\r\nST: upnp:rootdevice\r\n"
        b"USN: uuid:4d696e69-5550-6e50-0000-000000000001::upnp:rootdevice\r\n\r\n"
    )
