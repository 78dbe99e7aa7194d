"""The exception tree of hilos, and the errno mapping used where sockets are made.

HilosError                    root: catch this to catch everything hilos raises
├── UsageError                bad input from the user (the CLI exits 2)
│   ├── TargetError           a target, exclusion or target file that cannot be parsed
│   └── PortSpecError         a port specification that cannot be parsed
├── PrivilegeError            needs root/CAP_NET_RAW or a sysctl (the message names the fix)
├── ResourceError             out of file descriptors, buffers or memory (EMFILE, ENOBUFS, ...)
├── NetworkError              any other socket failure (EHOSTUNREACH, ENETUNREACH, ...)
└── LabError                  the practice lab could not be built or torn down
"""

from __future__ import annotations

import errno


class HilosError(Exception):
    """Root of every error hilos raises on purpose."""


class UsageError(HilosError):
    """Bad input: a target, port spec or option the user gave. The CLI exits 2."""


class TargetError(UsageError):
    """A target specification, exclusion or target file that cannot be parsed."""


class PortSpecError(UsageError):
    """A port specification that cannot be parsed (0, 70000, `5-1`, ...)."""


class PrivilegeError(HilosError):
    """The operation needs a privilege the process lacks; the message says how to get it."""


class ResourceError(HilosError):
    """A resource limit was hit: file descriptors, socket buffers, memory."""


class NetworkError(HilosError):
    """A socket operation failed for a network reason."""


class LabError(HilosError):
    """The practice lab could not be built, queried or torn down."""


_PERMISSION = {errno.EPERM, errno.EACCES}
_RESOURCE = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


def from_oserror(exc: OSError, what: str, fix: str = "") -> HilosError:
    """Map an OSError raised while `what` to the matching HilosError subclass.

    Use as ``raise from_oserror(exc, "opening a raw ICMP socket", fix="run as root") from exc``.
    """
    code = exc.errno
    detail = exc.strerror or str(exc)
    if code in _PERMISSION:
        msg = f"{what}: permission denied"
        return PrivilegeError(f"{msg} ({fix})" if fix else msg)
    if code in _RESOURCE:
        return ResourceError(f"{what}: {detail}")
    return NetworkError(f"{what}: {detail}")
