"""hilos.results: the helpers beside the result records."""

from __future__ import annotations

from collections.abc import Sequence

from hilos.results import nothing_written, unwritten_archive


def test_an_archive_splits_into_hosts_written_and_answers_kept() -> None:
    names = ["198.18.0.1", "198.18.0.2", "198.18.0.3"]
    asked: list[list[str]] = []

    def written(hosts: Sequence[str]) -> list[bool]:
        asked.append(list(hosts))
        return [h == "198.18.0.2" for h in hosts]

    done, kept = unwritten_archive({0: {0: 1}, 1: {5: 2}, 2: {9: 1}}, names, written)
    assert done == [1] and kept == [{0: 1}, {9: 1}]
    assert asked == [names]
    assert unwritten_archive({}, names, written) == ([], []) and len(asked) == 1  # not asked
    assert nothing_written(names) == [False, False, False]
