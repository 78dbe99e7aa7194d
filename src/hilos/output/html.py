"""HTML output: the results are kept as they arrive and the report page is written at close.

The only writer that does not stream: a page is one document (hilos.report.html), so it is
written once, at the end of the run, also after Ctrl-C (then marked partial). Closed ports are
left out unless --all, as in JSON Lines.
"""

from __future__ import annotations

import time

from hilos.output.base import Result, Summary, Writer, split_ports
from hilos.results import ScanHostResult

__all__ = ["HtmlWriter"]


class HtmlWriter(Writer):
    """Collects every host written, renders the report page at close."""

    def _setup(self) -> None:
        self._hosts: list[ScanHostResult] = []

    def _write(self, result: Result) -> None:
        if isinstance(result, ScanHostResult):
            shown = split_ports(result.ports, self.show_all, fold_many=False).shown
            if len(shown) != len(result.ports):
                from dataclasses import replace

                result = replace(result, ports=shown)
            self._hosts.append(result)
        else:
            self._hosts.append(
                ScanHostResult(
                    result.host,
                    result.status,
                    result.reason,
                    (),
                    result.rtt_ms,
                    result.hostname,
                )
            )

    def _trailer(self, summary: Summary) -> None:
        # Imported here: the report package is only needed by runs that write a page.
        from hilos.report.html import render_html
        from hilos.report.model import ScanRun

        run = ScanRun(
            hosts=tuple(self._hosts),
            tool="hilos",
            args=self.args,
            start=self.start,
            end=time.time(),
            elapsed=summary.elapsed,
            targets=summary.addresses,
            source="",  # the page itself: no file was read
            complete=summary.error is None,
        )
        self.stream.write(render_html(run, title=f"hilos {self.kind} report"))
