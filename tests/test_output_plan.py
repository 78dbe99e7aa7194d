"""Tests of hilos.output.plan: how --format, -o, -oA and nmap's -oX become a list of outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from hilos.errors import UsageError
from hilos.output import FORMATS, OutputSpec, formats_for, plan_outputs
from hilos.output.plan import EXTENSIONS, RULES, infer_format


def _plan(kind: str, formats=None, paths=None, base=None) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(s.format, s.path) for s in plan_outputs(kind, formats, paths, base)]  # type: ignore[arg-type]


def test_default_is_text_to_stdout() -> None:
    assert _plan("sweep") == [("text", "-")]


def test_lone_format_goes_to_stdout() -> None:
    assert _plan("scan", ["json"]) == [("json", "-")]


def test_formats_and_files_pair_in_order_and_text_still_goes_to_stdout() -> None:
    got = _plan("scan", ["json", "xml"], ["a.jsonl", "a.xml"])
    assert got == [("json", "a.jsonl"), ("xml", "a.xml"), ("text", "-")]


def test_extra_format_without_file_goes_to_stdout_and_replaces_text() -> None:
    assert _plan("scan", ["xml", "json"], ["a.xml"]) == [("xml", "a.xml"), ("json", "-")]


@pytest.mark.parametrize(
    ("path", "fmt"),
    [
        ("r.jsonl", "json"),
        ("r.JSON", "json"),
        ("r.csv", "csv"),
        ("r.xml", "xml"),
        ("r.gnmap", "grep"),
        ("r.nmap", "text"),
        ("r.txt", "text"),
        ("r.out", "text"),
        ("noext", "text"),
    ],
)
def test_file_without_format_infers_from_extension(path: str, fmt: str) -> None:
    assert _plan("scan", None, [path]) == [(fmt, path), ("text", "-")]


def test_extra_file_with_unknown_extension_is_an_error_when_formats_were_given() -> None:
    with pytest.raises(UsageError, match="pair up in order"):
        plan_outputs("scan", ["json"], ["a.jsonl", "b.out"], None)


def test_extra_file_with_known_extension_is_inferred_after_pairs() -> None:
    assert _plan("scan", ["json"], ["a.jsonl", "b.csv"]) == [
        ("json", "a.jsonl"),
        ("csv", "b.csv"),
        ("text", "-"),
    ]


def test_dash_means_stdout() -> None:
    assert _plan("sweep", ["csv"], ["-"]) == [("csv", "-")]


def test_oa_writes_every_format_of_the_kind() -> None:
    assert _plan("sweep", base="out/r") == [
        ("text", "out/r.nmap"),
        ("json", "out/r.jsonl"),
        ("csv", "out/r.csv"),
        ("xml", "out/r.xml"),
        ("grep", "out/r.gnmap"),
        ("text", "-"),
    ]
    scan = [f for f, _ in _plan("scan", base="r")]
    assert scan == [*(f for f in formats_for("scan") if f != "html"), "text"]
    assert set(formats_for("scan")) == {"text", "json", "csv", "xml", "grep", "html"}


def test_oa_with_a_stdout_format() -> None:
    plan = _plan("sweep", ["json"], None, "r")
    assert plan[0] == ("json", "-") and ("text", "-") not in plan and len(plan) == 6


def test_xml_and_grep_serve_sweeps_too() -> None:
    # nmap -sn -oX/-oG: hosts without ports; nmap users type them for discovery.
    assert _plan("sweep", None, ["hosts.xml", "hosts.gnmap"]) == [
        ("xml", "hosts.xml"),
        ("grep", "hosts.gnmap"),
        ("text", "-"),
    ]


def test_two_outputs_to_stdout_are_rejected() -> None:
    with pytest.raises(UsageError, match="only one output can go to stdout"):
        plan_outputs("scan", ["json", "csv"], None, None)
    with pytest.raises(UsageError, match="only one output"):
        plan_outputs("scan", ["json", "csv"], ["-"], None)


def test_same_file_twice_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="named by two outputs"):
        plan_outputs("scan", ["json", "csv"], [str(tmp_path / "a"), str(tmp_path / "a")], None)


def test_oa_to_stdout_is_rejected() -> None:
    with pytest.raises(UsageError, match="-oA"):
        plan_outputs("scan", None, None, "-")


def test_plan_returns_specs() -> None:
    spec = plan_outputs("sweep", ["json"], None, None)[0]
    assert spec == OutputSpec("json", "-") and spec.to_stdout


def test_explicit_pairs_keep_their_format_whatever_the_extension() -> None:
    # nmap's -oX out.txt writes XML into out.txt; the text report still goes to stdout.
    plan = plan_outputs("scan", None, None, None, explicit=[("xml", "out.txt")])
    assert plan == [OutputSpec("xml", "out.txt"), OutputSpec("text", "-")]


def test_explicit_pair_to_stdout_replaces_the_text_report() -> None:
    plan = plan_outputs("sweep", ["json"], ["r.jsonl"], None, explicit=[("grep", "-")])
    assert plan == [OutputSpec("grep", "-"), OutputSpec("json", "r.jsonl")]


def test_format_and_extension_that_disagree_name_both() -> None:
    with pytest.raises(UsageError, match=r"-o a\.jsonl pairs with --format xml.*means json"):
        plan_outputs("scan", ["xml"], ["a.jsonl"], None)


def test_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="kind"):
        plan_outputs("ping", None, None, None)  # type: ignore[arg-type]


def test_oa_with_an_empty_base_is_rejected() -> None:
    with pytest.raises(UsageError, match="-oA"):
        plan_outputs("sweep", None, None, "")


@pytest.mark.parametrize(
    ("path", "fmt"),
    [("-", None), ("a.NDJSON", "json"), ("dir.xml/file", None), ("a.tar.gz", None)],
)
def test_infer_format(path: str, fmt: str | None) -> None:
    assert infer_format(path) == fmt


def test_every_format_has_a_writer_and_the_rules_agree() -> None:
    # The planning rules and the writers are kept in two modules: they must name the same formats.
    assert list(FORMATS) == list(RULES)
    for name, rule in RULES.items():
        assert FORMATS[name].extension == rule.extension and FORMATS[name].kinds == rule.kinds
    assert set(EXTENSIONS.values()) <= set(RULES)
    assert all(infer_format("r" + rule.extension) == name for name, rule in RULES.items())
