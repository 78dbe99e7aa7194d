"""The progress line shows the packets/s achieved beside the --rate asked for; the sweep's
closing line says the same with the kernel's drops."""

from __future__ import annotations

import io

from hilos.output.progress import Progress, rate_line


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_shows_packets_per_second_and_the_requested_rate() -> None:
    now = [0.0]
    p = Progress(_Tty(), label="sweep", clock=lambda: now[0])
    now[0] = 2.0
    p.update(100, 1000, found=5)
    assert "sent" not in p.render()
    p.update(200, 1000, found=7, sent=100_000)
    assert p.render().endswith("7 up  sent 50k/s (no --rate cap)")
    p.requested_rate = 80000
    assert p.render().endswith("sent 50k/s of --rate 80000")


def test_rate_line() -> None:
    assert rate_line(1000, 0.5, None, 3) == (
        "hilos: sent 1000 packets in 0.50 s (2000 packets/s; no --rate cap); "
        "3 replies dropped by the kernel\n"
    )
    assert "(0 packets/s; --rate 10)" in rate_line(0, 0.0, 10.0, 0)
    assert (
        rate_line(10, 1.0, None)
        == "hilos: sent 10 packets in 1.00 s (10 packets/s; no --rate cap)\n"
    )
