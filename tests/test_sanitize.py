"""Tests of hilos.sanitize: hostile banners never carry control characters anywhere."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hilos.sanitize import BANNER_TEXT_LIMIT, clean, clean_optional

# C0, DEL, C1 (which includes the 8-bit CSI/OSC/DCS/ST introducers), and ESC itself.
CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f]")
UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069\ufffe\uffff]")

# Text biased toward what attackers send: escape introducers, terminators, controls.
hostile = st.text(
    alphabet=st.one_of(
        st.sampled_from(
            list("\x1b[]P^_X\\\x07\x9b\x9c\x9d\x90;0123456789mHJ\r\n\t \x00\x7f\u202e")
        ),
        st.characters(),
    )
)


@given(hostile, st.integers(min_value=0, max_value=300))
def test_no_controls_survive_any_text(value: str, limit: int) -> None:
    out = clean(value, limit)
    assert not UNSAFE.search(out)
    assert len(out) <= limit
    assert out == out.strip()


@given(st.binary())
def test_no_controls_survive_any_bytes(value: bytes) -> None:
    out = clean(value)
    assert not CONTROLS.search(out)
    assert "\x1b" not in out
    assert len(out) <= BANNER_TEXT_LIMIT


@given(hostile)
def test_cleaning_is_idempotent(value: str) -> None:
    once = clean(value, 64)
    assert clean(once, 64) == once


@given(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=256))
def test_printable_ascii_is_kept_as_is(value: str) -> None:
    assert clean(value) == value


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("SSH-2.0-OpenSSH_9.2p1\r\n", "SSH-2.0-OpenSSH_9.2p1"),
        ("\x1b[31mred\x1b[0m text", "red text"),
        ("\x1b[?1049h\x1b[2J\x1b[1;1Hscreen", "screen"),
        ("title\x1b]0;pwned\x07after", "titleafter"),
        ("clip\x1b]52;c;ZWNobyBoaQ==\x1b\\after", "clipafter"),
        ("dcs\x1bPq#0;2;0;0;0#0~~\x1b\\after", "dcsafter"),
        ("apc\x1b_payload\x9cafter", "apcafter"),
        ("8bit\x9b31mcsi", "8bitcsi"),
        ("8bit\x9d0;t\x07osc", "8bitosc"),
        ("reset\x1bcdone", "resetdone"),
        ("charset\x1b(Bdone", "charsetdone"),
        ("unterminated\x1b]0;title never ends", "unterminated"),
        ("HTTP/1.1 200 OK\r\nServer: x\r\n\r\n", "HTTP/1.1 200 OK Server: x"),
        ("tab\there", "tab here"),
        ("bell\x07nul\x00del\x7f", "bellnuldel"),
        ("user\u202eexe.txt", "userexe.txt"),
        ("caf\u00e9 \u4e2d\u6587", "caf\u00e9 \u4e2d\u6587"),
        (b"\xff\xfebin\x1b[0m", "\u00ff\u00febin"),
        (b"latin-1 \xe9\x9b31mcsi", "latin-1 \u00e9csi"),
        ("utf-8 \u00e9".encode(), "utf-8 \u00e9"),
    ],
)
def test_known_sequences(raw: str | bytes, expected: str) -> None:
    assert clean(raw) == expected


def test_length_cap_marks_the_cut() -> None:
    out = clean("x" * 1000, 10)
    assert out == "x" * 9 + "\u2026"
    assert clean("abc", 0) == ""


def test_clean_optional() -> None:
    assert clean_optional(None) is None
    assert clean_optional("\x1b[0m\r\n") is None
    assert clean_optional(" ok ") == "ok"
