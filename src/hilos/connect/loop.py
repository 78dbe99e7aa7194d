"""A connect-scan worker: one epoll set, a sliding window of non-blocking connects, answers."""

from __future__ import annotations

import _socket
import errno
import select
import socket
import threading
import time
from collections import deque

from hilos.connect.feed import HostFeed
from hilos.connect.hosts import (
    CLOSED,
    ERRNO_CODE,
    ERROR,
    NO_RESPONSE,
    OPEN,
    RESOURCE_ERRNOS,
    Item,
    Probe,
    Windows,
    close_connected,
)
from hilos.wire.rtt import RttEstimator

__all__ = ["Worker"]

# Per fill step at most this many connects, so answers already in are read without delay.
FILL_STEP = 256
# Adaptive timeout bounds (seconds); nmap -T4 uses 0.1 / 1.25 with a 0.5 initial value.
MIN_TIMEOUT = 0.15
MAX_TIMEOUT = 1.25
INITIAL_TIMEOUT = 1.0
# Congestion control never cuts a worker's window below this (EMFILE may).
MIN_WINDOW = 256

_SOCK_TYPE = socket.SOCK_STREAM | socket.SOCK_NONBLOCK
_AF_INET = socket.AF_INET
_EPOLLOUT = select.EPOLLOUT
_SOL_SOCKET, _SO_ERROR = socket.SOL_SOCKET, socket.SO_ERROR
_EINPROGRESS, _EALREADY, _EISCONN = errno.EINPROGRESS, errno.EALREADY, errno.EISCONN
_ECONNREFUSED, _ECONNABORTED = errno.ECONNREFUSED, errno.ECONNABORTED


class Worker:
    """One worker thread's scan: keeps its window of connects full from the feed, reads answers
    from its epoll set, expires silent probes and queues their resends, records answers.

    Syscalls per closed port: two connect() calls on a reused socket. On a fast path the RST
    is processed before connect() returns and a second connect() reports it and resets the
    socket; on a slow path the socket waits in epoll, and after its answer the same reset makes
    it the next probe's socket while it stays registered (`reg4`/`reg6`). Only open and silent
    ports cost a socket of their own. The window behaves like TCP's congestion window: slow
    start, a cut when a resend is answered (its first probe was lost in a queue we overflowed),
    additive growth, so a slow or shallow path stays exact.
    """

    #: The C socket type: socket.socket's Python __init__/close wrappers cost ~5 us per probe.
    socket_type: type[_socket.socket] = _socket.socket

    def __init__(
        self,
        wid: int,
        ep: select.epoll,
        feed: HostFeed,
        windows: Windows,
        *,
        tries: int,
        stop: threading.Event,
        timeout: float | None,
    ) -> None:
        self.wid = wid
        self.ep = ep
        self.feed = feed
        self.windows = windows
        self.ports = feed.ports
        self.tries = tries
        self.stop = stop
        self.rtt = RttEstimator(
            initial=INITIAL_TIMEOUT, minimum=MIN_TIMEOUT, maximum=MAX_TIMEOUT, fixed=timeout
        )
        self.active: dict[int, Probe] = {}  # fd -> probe in flight
        self.order: deque[Probe] = deque()  # probes by start time, for timeouts
        self.retry: deque[Item] = deque()  # probes to make again (host, port index, attempt)
        self.results: list[Item] = []  # answers not yet recorded (host, port index, code)
        self.spare4: _socket.socket | None = None  # a socket reset by a refused connect, reused
        self.spare6: _socket.socket | None = None
        self.reg4: list[_socket.socket] = []  # reset sockets still in the epoll set
        self.reg6: list[_socket.socket] = []
        self.source_empty = False
        self.next_cut = 0.0

    def run(self) -> None:
        """Scan until the feed is exhausted and every probe answered or expired, or until stop."""
        try:
            self._loop()
        finally:
            for probe in self.active.values():
                probe.sock.close()
            for spare in (self.spare4, self.spare6, *self.reg4, *self.reg6):
                if spare is not None:
                    spare.close()

    def _loop(self) -> None:
        """Fill the window, wait for answers or the oldest deadline, read them, expire, record."""
        stop = self.stop
        active = self.active
        order = self.order
        retry = self.retry
        results = self.results
        win = self.windows.win
        wid = self.wid
        rtt = self.rtt
        poll = self.ep.poll
        monotonic = time.monotonic
        while not stop.is_set():
            room = win[wid] - len(active)
            filled = self._fill(room) if room > 0 else -1
            # Reset sockets not reused now would wake every epoll wait (level-triggered): close.
            if self.reg4 or self.reg6:
                self._close_registered()
            if not active:
                if results:
                    self._flush()
                if retry or filled != 0:
                    continue
                if self.source_empty:
                    break
                # Paced, or hosts may still arrive from discovery: wait a little, look again.
                stop.wait(0.002)
                continue
            # ---- wait for answers or the oldest probe's deadline
            if room > FILL_STEP and filled == FILL_STEP:
                wait = 0.0  # the window is still filling: only collect what is already in
            else:
                wait = order[0].start + rtt.timeout - monotonic()
                if not self.source_empty and win[wid] > len(active):
                    wait = min(wait, 0.002)  # paced or waiting for hosts: look again soon
            events = poll(max(0.0, min(wait, 0.05)), len(active))
            now = monotonic()
            if events:
                self._on_events(events, now)
            self._expire(now)
            if results:
                self._flush()

    def _flush(self) -> None:
        self.feed.record(self.results)
        self.results.clear()

    def _close_registered(self) -> None:
        for rs in self.reg4:
            rs.close()
        for rs in self.reg6:
            rs.close()
        self.reg4.clear()
        self.reg6.clear()

    # ------------------------------------------------------------------ filling
    def _fill(self, room: int) -> int:
        """Start up to one step of probes, resends first; returns how many were taken."""
        retry = self.retry
        step = min(room, max(FILL_STEP, len(self.reg4) + len(self.reg6)))
        items: list[Item] = []
        while retry and len(items) < step:
            items.append(retry.popleft())
        if len(items) < step and not self.source_empty:
            got = self.feed.take(step - len(items))
            if got:
                items.extend(got)
            elif self.feed.exhausted():
                self.source_empty = True
        if items:
            self._start(items)
        return len(items)

    def _start(self, items: list[Item]) -> None:
        """Connect each probe of `items`; the per-probe hot path, kept flat on purpose."""
        new_socket = self.socket_type
        ports = self.ports
        active = self.active
        order = self.order
        retry = self.retry
        results = self.results
        reg4, reg6 = self.reg4, self.reg6
        spare4, spare6 = self.spare4, self.spare6
        win, cap, wid = self.windows.win, self.windows.cap, self.wid
        sample = self.rtt.sample
        errno_code = ERRNO_CODE
        monotonic = time.monotonic
        now = monotonic()
        for n_item, item in enumerate(items):
            h, p_i, attempt = item
            fam = h.family
            regs = reg4 if fam == _AF_INET else reg6
            if regs:
                # A socket reset by its last answer, still in our epoll set: one
                # connect() is the whole cost of this probe until its answer.
                rs = regs.pop()
                if rs.connect_ex((h.addr, ports[p_i])) == _EINPROGRESS:
                    probe = Probe(rs, h, p_i, now, attempt)
                    active[rs.fileno()] = probe
                    order.append(probe)
                else:  # an odd state: drop the socket, the probe goes the usual way
                    rs.close()
                    retry.append(item)
                continue
            s = spare4 if fam == _AF_INET else spare6
            if s is None and (s := self._new_socket(new_socket, fam, items, n_item)) is None:
                break  # out of descriptors: the rest of the step is queued again
            addr = (h.addr, ports[p_i])
            if not n_item & 7:  # a fresh clock now and then is plenty (RTT samples)
                now = monotonic()
            rc = s.connect_ex(addr)
            if rc == _EINPROGRESS:
                # On a fast path (loopback, a LAN without delay) the answer is usually
                # processed before connect() returns. A second connect() then reports
                # it (ECONNREFUSED, ...) AND resets the socket for the next probe: two
                # syscalls per closed port instead of socket+connect+getsockopt+close.
                rc = s.connect_ex(addr)
                if rc == _EALREADY:
                    self._pending(s, item, now)  # no answer yet: epoll tells when it comes
                    s = None
                else:
                    if not n_item & 7:
                        sample(monotonic() - now)
                        if win[wid] < cap[wid]:
                            win[wid] = min(cap[wid], win[wid] + 8)
                    if rc == _ECONNREFUSED:
                        results.append((h, p_i, CLOSED))
                    else:
                        s = self._second_answer(s, item, rc)
            elif rc in RESOURCE_ERRNOS:
                s.close()
                if fam == _AF_INET:
                    spare4 = None
                else:
                    spare6 = None
                self._short(items, n_item)
                break
            else:
                self._first_answer(s, item, rc, errno_code)
                s = None
            if fam == _AF_INET:
                spare4 = s
            else:
                spare6 = s
        self.spare4, self.spare6 = spare4, spare6

    def _new_socket(
        self, new_socket: type[_socket.socket], fam: int, items: list[Item], n_item: int
    ) -> _socket.socket | None:
        """A fresh non-blocking socket, or None when descriptors ran out (the window shrinks
        and the rest of the step is queued again)."""
        try:
            return new_socket(fam, _SOCK_TYPE)
        except OSError as exc:
            if exc.errno in RESOURCE_ERRNOS:
                self._short(items, n_item)
                return None
            raise

    def _short(self, items: list[Item], n_item: int) -> None:
        """A local shortage at items[n_item]: queue it and the rest again, shrink the window."""
        self.retry.extendleft(reversed(items[n_item:]))
        self.windows.shrink(self.wid, len(self.active))

    def _pending(self, s: _socket.socket, item: Item, now: float) -> None:
        """A connect still in progress: wait for it in epoll. An ICMP error that came back while
        connect() still held the socket is only kept as a "soft" error that no epoll event will
        tell: that is the answer (and a round trip)."""
        h, p_i, attempt = item
        soft = s.getsockopt(_SOL_SOCKET, _SO_ERROR)
        if soft:
            s.close()
            self.results.append((h, p_i, ERRNO_CODE.get(soft, ERROR)))
            self.rtt.sample(time.monotonic() - now)
            return
        fd = s.fileno()
        self.ep.register(fd, _EPOLLOUT)
        probe = Probe(s, h, p_i, now, attempt)
        self.active[fd] = probe
        self.order.append(probe)

    def _second_answer(self, s: _socket.socket, item: Item, rc: int) -> _socket.socket | None:
        """The second connect() answered, not refused: connected (open, or a self-connect to
        try again), a local shortage (try again) or an error. Returns the socket if reusable."""
        h, p_i, _ = item
        if rc == 0 or rc == _EISCONN:
            if close_connected(s, h.addr, self.ports[p_i]):
                self.results.append((h, p_i, OPEN))
            else:
                self.retry.append(item)
            return None
        if rc in RESOURCE_ERRNOS:
            s.close()
            self.retry.append(item)
            return None
        self.results.append((h, p_i, ERRNO_CODE.get(rc, ERROR)))
        return s

    def _first_answer(
        self, s: _socket.socket, item: Item, rc: int, errno_code: dict[int, int]
    ) -> None:
        """The first connect() finished at once: connected, or refused locally (no route, a
        local firewall), where a fresh socket is safest."""
        h, p_i, _ = item
        if rc == 0:
            if close_connected(s, h.addr, self.ports[p_i]):
                self.results.append((h, p_i, OPEN))
            else:
                self.retry.append(item)
            return
        s.close()
        self.results.append((h, p_i, errno_code.get(rc, ERROR)))

    # ---------------------------------------------------------------- answers
    def _on_events(self, events: list[tuple[int, int]], now: float) -> None:
        """Each socket epoll reports: connected, refused, unreachable (or not done after all)."""
        active = self.active
        ports = self.ports
        results = self.results
        retry = self.retry
        reg4, reg6 = self.reg4, self.reg6
        win, cap, wid = self.windows.win, self.windows.cap, self.wid
        rtt = self.rtt
        errno_code = ERRNO_CODE
        resource_errnos = RESOURCE_ERRNOS
        next_cut = self.next_cut
        for fd, ev in events:
            probe = active.pop(fd)
            probe.done = True
            sock = probe.sock
            if ev == _EPOLLOUT:
                err = 0
            else:
                # connect() again on the same address reports the error (ECONNREFUSED,
                # EHOSTUNREACH, ...) and resets the socket: it is reused, still registered.
                err = sock.connect_ex((probe.host.addr, ports[probe.p_i]))
                if err == _EISCONN:
                    err = 0
                elif err == _EALREADY:  # not finished after all: keep waiting
                    probe.done = False
                    active[fd] = probe
                    continue
            # Congestion: an answer to a resend means its first probe was lost on the way.
            # Cut the window (once per timeout period, as TCP does once per RTT) so a
            # queue we overflow can drain; grow it back by one per first-try answer.
            if probe.attempt:
                if now >= next_cut:
                    win[wid] = max(min(cap[wid], MIN_WINDOW), int(win[wid] * 0.7))
                    next_cut = now + rtt.timeout
            elif win[wid] < cap[wid]:
                win[wid] += 1
            if err == 0:
                if close_connected(sock, probe.host.addr, ports[probe.p_i]):
                    results.append((probe.host, probe.p_i, OPEN))
                    rtt.sample(now - probe.start)
                else:
                    retry.append((probe.host, probe.p_i, probe.attempt))
                continue
            if err in resource_errnos or err == _ECONNABORTED:
                sock.close()  # closing removes it from the epoll set: no unregister call
                retry.append((probe.host, probe.p_i, probe.attempt))
                continue
            (reg4 if probe.host.family == _AF_INET else reg6).append(sock)
            results.append((probe.host, probe.p_i, errno_code.get(err, ERROR)))
            rtt.sample(now - probe.start)  # a RST or an ICMP error: both are round trips
        self.next_cut = next_cut

    def _expire(self, now: float) -> None:
        """Probes that got no answer in time: resent while tries remain, else no-response."""
        order = self.order
        active = self.active
        results = self.results
        tries = self.tries
        limit = now - self.rtt.timeout
        while order and (order[0].done or order[0].start <= limit):
            probe = order.popleft()
            if probe.done:
                continue
            probe.done = True
            sock = probe.sock
            active.pop(sock.fileno(), None)
            # A soft error (an ICMP unreachable that came while connect() held the socket)
            # is an answer, not silence.
            soft = sock.getsockopt(_SOL_SOCKET, _SO_ERROR)
            sock.close()
            if soft and soft not in RESOURCE_ERRNOS:
                results.append((probe.host, probe.p_i, ERRNO_CODE.get(soft, ERROR)))
                continue
            attempt = probe.attempt + 1
            if attempt < tries:
                self.retry.append((probe.host, probe.p_i, attempt))
            else:
                results.append((probe.host, probe.p_i, NO_RESPONSE))
