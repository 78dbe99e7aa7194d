"""The exception tree of hilos, and the errno mapping used where sockets are made.

HilosError                    root: catch this to catch everything hilos raises
├── UsageError                bad input from the user (the CLI exits 2)
│   ├── TargetError           a target, exclusion or target file that cannot be parsed
│   │   └── ResolveError      a host name that does not resolve (exclusions, library calls)
│   ├── PortSpecError         a port specification that cannot be parsed
│   ├── InvalidArgument       an option out of range or of the wrong type (also a ValueError)
│   ├── TooLargeError         a target space too large for the operation (also an OverflowError)
│   └── InputError            a scan file to report or compare that is missing or unreadable
├── PrivilegeError            needs root/CAP_NET_RAW or a sysctl (the message names the fix)
├── ResourceError             out of file descriptors, buffers or memory (EMFILE, ENOBUFS, ...)
├── NetworkError              any other socket failure (EHOSTUNREACH, ENETUNREACH, ...)
├── OutputError               writing a result output failed (a full disk, a closed pipe)
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


class ResolveError(TargetError):
    """A host name given as a target or exclusion resolved to no address."""


class InvalidArgument(UsageError, ValueError):
    """An argument out of range or of the wrong type (``timeout=-1``, ``threads=0``).

    Also a ValueError, so code that guards a call with ``except ValueError`` keeps working.
    """


class TooLargeError(UsageError, OverflowError):
    """A target space too large for the operation: ``len()`` of more than sys.maxsize
    addresses (use ``.size``), or a sweep or scan of more addresses than hilos walks.

    Also an OverflowError, what ``len()`` raised before.
    """


class PortSpecError(UsageError):
    """A port specification that cannot be parsed (0, 70000, `5-1`, ...)."""


class InputError(UsageError):
    """A scan file given to `hilos report` or `hilos diff` is missing, unreadable or of no
    format hilos reads; the message names the file (and the line when it can)."""


class PrivilegeError(HilosError):
    """The operation needs a privilege the process lacks; the message says how to get it."""


class ResourceError(HilosError):
    """A resource limit was hit: file descriptors, socket buffers, memory."""


class NetworkError(HilosError):
    """A socket operation failed for a network reason."""


class LabError(HilosError):
    """The practice lab could not be built, queried or torn down."""


class OutputError(HilosError):
    """Writing an output failed (a full disk, a closed pipe); names the output and the reason.

    `name` is the output's path ("-" for stdout), `errno` the OSError's number: the CLI exits
    quietly on EPIPE (the reader went away, as with `| head -1`) and with one line otherwise.
    """

    def __init__(self, name: str, exc: OSError) -> None:
        self.name = name
        self.errno = exc.errno
        where = "stdout" if name == "-" else name
        super().__init__(f"writing {where}: {exc.strerror or exc}")

    @property
    def broken_pipe(self) -> bool:
        return self.errno == errno.EPIPE


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
