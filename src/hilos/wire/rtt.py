"""One round-trip estimator (RFC 6298 srtt + 4 rttvar) giving every engine its adaptive timeout."""

from __future__ import annotations

__all__ = ["RttEstimator"]


class RttEstimator:
    """Smoothed RTT and its variation (RFC 6298, as TCP and nmap estimate), in seconds.

    `timeout` is the wait for an answer now: `initial` until the first sample, then
    srtt + 4 rttvar (and at least `srtt_multiple` x srtt, plus `margin`), clamped to
    [`minimum`, `maximum`]. With `fixed` set, `timeout` is always `fixed` and samples are
    ignored. `sample()` runs once per answer, so it does only arithmetic on slots.

    >>> est = RttEstimator(initial=1.0, minimum=0.1, maximum=1.25)
    >>> est.sample(0.2); round(est.timeout, 3)
    0.6
    """

    __slots__ = (
        "fixed",
        "margin",
        "maximum",
        "minimum",
        "rttvar",
        "srtt",
        "srtt_multiple",
        "timeout",
    )

    def __init__(
        self,
        *,
        initial: float,
        minimum: float,
        maximum: float,
        fixed: float | None = None,
        srtt_multiple: float = 0.0,
        margin: float = 0.0,
    ) -> None:
        if not 0 <= minimum <= maximum:
            raise ValueError(f"need 0 <= minimum <= maximum, not {minimum} and {maximum}")
        self.fixed = fixed
        self.minimum = minimum
        self.maximum = maximum
        self.srtt_multiple = srtt_multiple
        self.margin = margin
        self.srtt = -1.0  # no sample yet
        self.rttvar = 0.0
        self.timeout = fixed if fixed is not None else initial

    @property
    def measured(self) -> bool:
        """True once a sample came in (and no fixed timeout hides them)."""
        return self.srtt >= 0

    def sample(self, rtt: float) -> None:
        """Take one measured round trip (seconds) into the estimate and the timeout."""
        if self.fixed is not None:
            return
        srtt = self.srtt
        if srtt < 0:
            self.srtt = srtt = rtt
            self.rttvar = rttvar = rtt / 2
        else:
            rttvar = self.rttvar
            self.rttvar = rttvar = rttvar + 0.25 * (abs(srtt - rtt) - rttvar)
            self.srtt = srtt = srtt + 0.125 * (rtt - srtt)
        self._set_timeout(srtt, rttvar)

    def _set_timeout(self, srtt: float, rttvar: float) -> None:
        t = srtt + 4 * rttvar
        floor = self.srtt_multiple * srtt
        if t < floor:
            t = floor
        t += self.margin
        # Compared by hand, not min()/max(): this runs once per answer.
        if t < self.minimum:
            t = self.minimum
        elif t > self.maximum:
            t = self.maximum
        self.timeout = t

    def restore(self, srtt: float, rttvar: float) -> None:
        """Take back a saved estimate (a resumed run's): its timeout as its samples gave."""
        if self.fixed is None:
            self.srtt, self.rttvar = srtt, rttvar
            self._set_timeout(srtt, rttvar)

    def at_least(self, floor: float) -> float:
        """The timeout, but covering at least `floor` seconds (still within the bounds): for an
        engine that also tracks a recent peak RTT, which the smoothed estimate lags."""
        if self.fixed is not None or self.srtt < 0:
            return self.timeout
        return min(self.maximum, max(self.minimum, self.timeout, floor))
