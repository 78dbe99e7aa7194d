"""The SYN scan's timing: the adaptive probe timeout and delay-based congestion control."""

from __future__ import annotations

from hilos.wire.rtt import RttEstimator

__all__ = ["MIN_PACE", "Control"]

MIN_TIMEOUT = 0.03
MAX_TIMEOUT = 2.5
INITIAL_TIMEOUT = 1.0
MIN_PACE = 500.0  # congestion control never slows below this many packets/s


class Control:
    """RTT samples in, the probe timeout and a send pace out.

    The timeout adapts to the measured RTTs (srtt + 4 rttvar, RFC 6298, hilos.wire.rtt; and 1.5x
    the recent peak RTT, which the smoothed estimate lags; clamped to 30 ms .. 2.5 s) unless
    `fixed`. RTTs rising above the smallest one seen (a queue building up somewhere) halve the
    send pace; it grows back while they do not. The receiver thread updates the `rtt_*` fields
    per answer (see ScanState.on_reply); `control` runs in the sender about once per RTT.
    """

    __slots__ = (
        "_hold",
        "_last",
        "_next",
        "_sent",
        "est",
        "fixed",
        "pace",
        "peak",
        "rtt_count",
        "rtt_max",
        "rtt_min",
        "rtt_sum",
    )

    def __init__(self, fixed: float | None) -> None:
        self.est = RttEstimator(
            initial=INITIAL_TIMEOUT,
            minimum=MIN_TIMEOUT,
            maximum=MAX_TIMEOUT,
            margin=0.002,
        )
        # Not the estimator's own `fixed`: the samples still set the control interval.
        self.fixed = fixed
        self.pace = 0.0  # packets/s cap, 0: none
        self.rtt_min: float | None = None
        self.rtt_max = 0.0  # this interval's samples: peak, sum and count
        self.rtt_sum = 0.0
        self.rtt_count = 0
        self.peak = 0.0
        self._next = 0.0
        self._last = 0.0
        self._sent = 0
        self._hold = 0.0

    @property
    def timeout(self) -> float:
        """The per-probe timeout in use now (fixed, or adapted from measured RTTs)."""
        if self.fixed is not None:
            return self.fixed
        return self.est.at_least(1.5 * self.peak + 0.002)

    def control(self, now: float, sent: int) -> None:
        """Delay-based congestion control, about once per RTT (parent side only).

        RTT samples well above the smallest one mean our probes or their answers queue up
        somewhere (a slow link, a router, our own receiver): halve the pace to the rate
        actually achieved, and hold it while the queue drains; otherwise grow it by 15% per
        interval. nmap's -T5 without this lost answers under 40 ms of latency.
        """
        if now < self._next:
            return
        dt = now - self._last if self._last else 0.0
        rate = (sent - self._sent) / dt if dt > 0 else 0.0
        self._last, self._sent = now, sent
        peak, self.rtt_max = self.rtt_max, 0.0
        total, count = self.rtt_sum, self.rtt_count
        self.rtt_sum, self.rtt_count = 0.0, 0
        self.peak = max(peak, self.peak * 0.8)
        srtt = self.est.srtt if self.est.measured else 0.0
        self._next = now + min(0.2, max(0.02, 2 * srtt))
        base = self.rtt_min
        if base is None or count == 0:
            return
        # The interval's mean, not its peak: one answer that waited for our own receiver thread
        # (the GIL) is not a queue in the network.
        if total / count > base + max(0.03, base):
            if now >= self._hold and rate > 0:
                cur = min(self.pace, rate) if self.pace > 0 else rate
                self.pace = max(MIN_PACE, cur * 0.5)
                self._hold = now + max(0.05, 2 * peak)
        elif self.pace > 0 and now >= self._hold:
            self.pace *= 1.15
