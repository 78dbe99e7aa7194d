"""Make untrusted text (banners, product names) safe for terminals and every output file.

A banner is whatever a remote service chose to send. Printed raw, it can drive the terminal
of whoever reads the output: ANSI/VT sequences repaint the screen, set the window title (OSC),
rewrite the clipboard (OSC 52) or hide text; bidirectional overrides reorder what is shown
(CVE-2021-42574, "Trojan Source"). JSON escaping alone does not help: `cat results.jsonl` on a
terminal decodes nothing, but a JSON string holds the raw characters once a tool such as `jq -r`
prints it. So hilos cleans these strings once, the same way, before any writer sees them:

1. bytes are decoded as UTF-8, or as latin-1 when they are not valid UTF-8 (so the 8-bit
   C1 forms such as 0x9b CSI are seen as the sequences they are, and nothing is lost);
2. whole escape sequences are removed (ECMA-48: CSI, OSC, DCS, SOS, PM, APC, two-byte ESC
   sequences; 7-bit and 8-bit forms; an unterminated string sequence runs to the end);
3. each run of line breaks and tabs (CR, LF, TAB, VT, FF, NEL, U+2028/9) becomes one space;
4. every remaining C0/C1 control, DEL, lone surrogate, bidi control and the noncharacters
   U+FFFE/U+FFFF are dropped (they are also invalid in XML 1.0);
5. the result is stripped and cut to `limit` characters, marked with "…" when cut.

Usage::

    >>> clean("SSH-2.0-OpenSSH_9.2p1\\r\\n\\x1b]0;pwned\\x07")
    'SSH-2.0-OpenSSH_9.2p1'
"""

from __future__ import annotations

import re

__all__ = ["BANNER_DATA_LIMIT", "BANNER_TEXT_LIMIT", "FIELD_LIMIT", "clean", "clean_optional"]

# What a human reads on a terminal line (text and grepable output).
BANNER_TEXT_LIMIT = 256
# What data formats keep (JSON, CSV, XML): more context, still bounded.
BANNER_DATA_LIMIT = 2048
# service / product / version names.
FIELD_LIMIT = 128

_ELLIPSIS = "…"

# ECMA-48 escape sequences, 7-bit (ESC-introduced) and 8-bit (C1) forms.
_ESCAPES = re.compile(
    r"""
      (?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?      # CSI ... final byte
    | (?:\x1b[\]PX^_]|[\x9d\x90\x98\x9e\x9f])                  # OSC, DCS, SOS, PM, APC ...
      .*?(?:\x07|\x1b\\|\x9c|\Z)                               # ... up to BEL or ST (or the end)
    | \x1b[\x20-\x2f]*[\x30-\x7e]?                             # other ESC sequences (ESC c, ...)
    """,
    re.VERBOSE | re.DOTALL,
)
_SPACES = re.compile("[\t\n\v\f\r\x85\u2028\u2029]+")
# Everything still unsafe after the sequences are gone.
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\ud800-\udfff\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ufffe\uffff]"
)


def clean(value: str | bytes, limit: int = BANNER_TEXT_LIMIT) -> str:
    """Return `value` without escape sequences or control characters, at most `limit` chars."""
    if isinstance(value, bytes):
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            text = value.decode("latin-1")
    else:
        text = value
    # Fast path: the common case is a short printable ASCII string.
    if not (text.isascii() and text.isprintable()):
        text = _ESCAPES.sub("", text)
        text = _SPACES.sub(" ", text)
        text = _UNSAFE.sub("", text)
    text = text.strip()
    if len(text) > limit:
        text = text[: max(limit - 1, 0)].rstrip() + _ELLIPSIS if limit > 0 else ""
    return text


def clean_optional(value: str | bytes | None, limit: int = BANNER_TEXT_LIMIT) -> str | None:
    """`clean` that keeps None as None and turns a string that cleans to nothing into None."""
    if value is None:
        return None
    text = clean(value, limit)
    return text or None
