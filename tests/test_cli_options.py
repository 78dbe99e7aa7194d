"""Tests of hilos.cli.options: the value types, the parser's error contract, the shared groups."""

from __future__ import annotations

import argparse
import io

import pytest

from hilos.cli.options import (
    Parser,
    add_output_options,
    add_probe_options,
    add_target_options,
    non_negative_float,
    non_negative_int,
    notifier,
    positive_float,
    positive_int,
)


@pytest.mark.parametrize(
    ("kind", "good", "bad"),
    [
        (positive_int, {"1": 1, "4096": 4096}, {"0": "at least 1", "-3": "at least 1", "x": "not"}),
        (non_negative_int, {"0": 0, "7": 7}, {"-1": "not be negative", "1.5": "not an integer"}),
        (
            positive_float,
            {"0.5": 0.5, "3": 3.0},
            {"0": "positive", "nan": "positive", "inf": "positive", "s": "not a number"},
        ),
        (
            non_negative_float,
            {"0": 0.0, "2.5": 2.5},
            {"-0.1": "non-negative", "nan": "non-negative", "inf": "non-negative"},
        ),
    ],
)
def test_value_types(kind: object, good: dict[str, object], bad: dict[str, str]) -> None:
    assert callable(kind)
    for text, value in good.items():
        assert kind(text) == value
    for text, message in bad.items():
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            kind(text)


def test_parser_error_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    parser = Parser(prog="hilos")
    parser.add_argument("--n", type=positive_int)
    with pytest.raises(SystemExit) as info:
        parser.parse_args(["--n", "0"])
    assert info.value.code == 2
    assert capsys.readouterr().err == "hilos: error: argument --n: must be at least 1: '0'\n"


def test_parser_help_to_a_failing_stream_raises() -> None:
    # argparse's own _print_message swallows write errors; --help > /dev/full must not exit 0.
    class Full(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        Parser(prog="hilos").print_help(Full())


def test_shared_groups_give_sweep_and_scan_the_same_options() -> None:
    parser = Parser(prog="hilos")
    add_target_options(parser)
    add_probe_options(parser)
    add_output_options(parser, ("text", "json"))
    args = parser.parse_args(
        ["127.0.0.1", "--exclude", "a,b", "--exclude", "c", "--rate", "5", "--retries", "0",
         "--format", "json", "-o", "r.jsonl", "-oA", "base", "-q", "--all"]
    )  # fmt: skip
    assert args.targets == ["127.0.0.1"] and args.exclude == ["a,b", "c"]
    assert args.rate == 5.0 and args.retries == 0 and args.timeout is None
    assert args.format == ["json"] and args.output == ["r.jsonl"] and args.output_all == "base"
    assert args.quiet and args.show_all
    with pytest.raises(SystemExit):
        parser.parse_args(["--format", "xml"])  # not offered to this parser


def test_notifier_is_silenced_by_quiet(capsys: pytest.CaptureFixture[str]) -> None:
    notifier(argparse.Namespace(quiet=False))("SYN scan")
    notifier(argparse.Namespace(quiet=True))("hidden")
    assert capsys.readouterr().err == "hilos: SYN scan\n"
