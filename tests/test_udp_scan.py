"""The UDP engine: loopback scans (raw and unprivileged paths), validation of replies and errors."""

from __future__ import annotations

import os
import random
import socket
import threading
from collections.abc import Iterator

import pytest

from hilos.probes.udp_payloads import build_payload
from hilos.probes.udp_reply import build_udp
from hilos.udp import UdpScanner
from hilos.udp.receiver import UdpReceiver, Validator
from hilos.udp.state import UdpState
from hilos.udp.targets import UdpTargets
from hilos.wire.cookie import Cookie

ROOT = os.geteuid() == 0


@pytest.fixture
def dns_server() -> Iterator[int]:
    """A UDP server on 127.0.0.1 that answers with the request's id (a DNS server's manner)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, peer = s.recvfrom(2048)
            except TimeoutError:
                continue
            if data:
                s.sendto(data[:2] + b"\x81\x80" + data[4:], peer)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield s.getsockname()[1]
    stop.set()
    t.join()
    s.close()


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # free again once closed


@pytest.mark.parametrize("privileged", [True, False])
def test_loopback_states(dns_server: int, privileged: bool) -> None:
    if privileged and not ROOT:
        pytest.skip("raw sockets need root")
    closed = _closed_port()
    scanner = UdpScanner(["127.0.0.1"], [dns_server, closed], privileged=privileged, timeout=0.3)
    (host,) = list(scanner.results())
    states = {p.port: (p.state, p.reason, p.proto) for p in host.ports}
    assert states == {
        dns_server: ("open", "udp-response", "udp"),
        closed: ("closed", "port-unreach", "udp"),
    }
    assert scanner.unprivileged is (not privileged)


def _state(ports: list[int]) -> UdpState:
    return UdpState(UdpTargets(["198.18.0.1", "fd18:0:0:100::1"], Cookie(7)), ports, 1.0)


def _ip4(src: bytes, dst: bytes, proto: int, body: bytes) -> bytes:
    n = 20 + len(body)
    return bytes([0x45, 0, n >> 8, n & 255, 0, 0, 0, 0, 64, proto, 0, 0]) + src + dst + body


HOST = bytes([198, 18, 0, 1])
US = bytes([198, 19, 0, 2])


def test_reply_needs_keyed_port_and_echoed_id() -> None:
    st = _state([53, 5300])
    v = Validator(st)
    tg = st.targets
    sport = tg.sport(0, 53)
    good = build_payload("dns", tg.value(0, 53))
    assert not v.datagram(4, 0xC6120001, 53, sport ^ 1, good)  # wrong source port
    assert not v.datagram(4, 0xC6120001, 53, sport, good[:1] + bytes([good[1] ^ 1]) + good[2:])
    assert not v.datagram(4, 0xC6120002, 53, sport, good)  # not a target
    assert v.datagram(4, 0xC6120001, 53, sport, good)
    # A port without a payload of its own: the keyed source port vouches alone.
    assert v.datagram(4, 0xC6120001, 5300, tg.sport(0, 5300), b"anything")
    assert st.final_count == 2


def test_forged_and_misquoted_icmp_errors_are_ignored() -> None:
    st = _state([161])
    rx = UdpReceiver.__new__(UdpReceiver)
    rx.validator = Validator(st)
    sport = st.targets.sport(0, 161)

    def error(qdst: bytes, qsport: int, qdport: int, proto: int = 17) -> bytes:
        quoted = _ip4(US, qdst, proto, build_udp(qsport, qdport, b""))
        return _ip4(HOST, US, 1, bytes([3, 3, 0, 0, 0, 0, 0, 0]) + quoted)

    assert not rx.handle(1, "198.18.0.1", error(HOST, sport ^ 0x10, 161))  # another source port
    assert not rx.handle(1, "198.18.0.1", error(bytes([198, 18, 0, 9]), sport, 161))  # not ours
    assert not rx.handle(1, "198.18.0.1", error(HOST, sport, 162))  # a port not scanned
    assert not rx.handle(1, "198.18.0.1", error(HOST, sport, 161, proto=6))  # quotes TCP
    assert st.final_count == 0
    assert rx.handle(1, "198.18.0.1", error(HOST, sport, 161))
    assert st.codes == {0: 2}  # closed, port-unreach


def test_icmp6_port_unreachable_is_closed_and_admin_prohibited_filtered() -> None:
    st = _state([53, 161])
    rx = UdpReceiver.__new__(UdpReceiver)
    rx.validator = Validator(st)
    me = (0xFD18 << 112 | 0xFF << 96 | 2).to_bytes(16, "big")
    host = (0xFD180000000001000000000000000001).to_bytes(16, "big")
    for port, code in ((53, 4), (161, 1)):
        quoted = bytes([0x60, 0, 0, 0, 0, 8, 17, 64]) + me + host
        quoted += build_udp(st.targets.sport(1, port), port, b"")
        assert rx.handle(58, "fd18::100:1", bytes([1, code, 0, 0, 0, 0, 0, 0]) + quoted)
    host_result = st.build(1, lambda p: None)
    assert [(p.port, p.state, p.reason) for p in host_result.ports] == [
        (53, "closed", "port-unreach"),
        (161, "filtered", "admin-prohibited"),
    ]


def test_ten_thousand_fuzzed_datagrams_and_errors_never_crash_the_receiver() -> None:
    st = _state([53, 123, 161, 5300])
    rx = UdpReceiver.__new__(UdpReceiver)
    rx.validator = Validator(st)
    rng = random.Random(5)
    sport = st.targets.sport(0, 161)
    for i in range(10_000):
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 80)))
        kind = (4, 6, 1, 58)[i % 4]
        if kind == 4:
            pkt = _ip4(HOST, US, 17, build_udp(161, sport, body))[: rng.randrange(0, 140)]
        elif kind == 1:
            quoted = _ip4(US, HOST, 17, build_udp(sport, 161, body))
            pkt = _ip4(HOST, US, 1, bytes([3, rng.randrange(16), 0, 0, 0, 0, 0, 0]) + quoted)
            pkt = pkt[: rng.randrange(0, len(pkt) + 1)]
        else:
            pkt = body
        rx.handle(kind, "fd18::100:1", pkt)
    # Random ids never validate; only a complete quote of the right port could.
    assert all(code != 1 for code in st.codes.values())


@pytest.mark.skipif(not ROOT, reason="raw sockets need root")
def test_rate_caps_the_probes_per_second() -> None:
    import time

    ports = list(range(40000, 40300))
    t = time.monotonic()
    (host,) = list(UdpScanner(["127.0.0.1"], ports, rate=500, retries=0, timeout=0.2).results())
    # 300 probes at 500/s after a 64-probe burst: 0.47 s of sending; every port answers at
    # once, so no wait follows (unpaced, the same scan takes about 0.05 s here).
    assert time.monotonic() - t >= 0.42
    assert {p.state for p in host.ports} == {"closed"}


@pytest.mark.skipif(not ROOT, reason="raw sockets need root")
def test_same_seed_same_walk() -> None:
    a = UdpScanner(["127.0.0.1", "127.0.0.2"], [1, 2, 3], seed=4, shard=(1, 2))
    b = UdpScanner(["127.0.0.1", "127.0.0.2"], [1, 2, 3], seed=4, shard=(1, 2))
    c = UdpScanner(["127.0.0.1", "127.0.0.2"], [1, 2, 3], seed=4, shard=(2, 2))
    assert list(a.walk()) == list(b.walk())
    assert sorted([*a.walk(), *c.walk()]) == list(range(6))


def test_library_udp_scan_checks_arguments_and_names_hosts() -> None:
    from hilos.errors import UsageError
    from hilos.scanners import udp_scan

    with pytest.raises(UsageError):
        udp_scan("127.0.0.1", "0")
    with pytest.raises(UsageError):
        udp_scan("127.0.0.1", [53], retries=-1)
    (host,) = list(udp_scan(["localhost"], "9", timeout=0.3))
    assert host.hostname == "localhost"
    assert [(p.port, p.proto, p.state, p.reason) for p in host.ports] == [
        (9, "udp", "closed", "port-unreach")
    ]


@pytest.mark.parametrize("privileged", [True, False])
def test_results_end_as_soon_as_the_scan_does(privileged: bool) -> None:
    """The last host's result is not followed by a poll interval of idle waiting."""
    if privileged and not ROOT:
        pytest.skip("raw sockets need root")
    import time

    scanner = UdpScanner(["127.0.0.1"], [_closed_port()], privileged=privileged, retries=0)
    it = scanner.results()
    (host,) = [next(it)]
    assert host.ports[0].state == "closed"
    t = time.monotonic()
    assert list(it) == []
    assert time.monotonic() - t < 0.05


def test_round_trips_end_at_the_kernels_arrival_time_not_when_handled() -> None:
    """An answer read late (the receiver behind after a burst) still measures the path: the
    final wait and the retry timeout come from these samples."""
    if not ROOT:
        pytest.skip("raw sockets need root")
    import time

    port = _closed_port()
    state = UdpState(UdpTargets(["127.0.0.1"], Cookie()), [port], None)
    rx = UdpReceiver(state, frozenset({4}))
    try:
        assert rx.tx4 is not None
        state.mark_sent(0)
        rx.tx4.sendto(build_udp(state.targets.sport(0, port), port, b""), ("127.0.0.1", 0))
        time.sleep(0.1)  # the answer waits in the socket, as behind a backlog
        icmp = next(s for s, kind in rx._recv if kind == 1)
        icmp.setblocking(False)
        assert rx.drain(icmp, 1, bytearray(4096))
        assert state.is_final(0) and state.codes[0] != 0
        assert state.rtt[0] < 30, state.rtt
    finally:
        rx.close()


def test_an_answer_timed_before_its_send_is_a_zero_round_trip_not_a_wrap() -> None:
    """The kernel's arrival time may fall a tick before the send time (clocks; a probe sent
    again with another payload): no 68 s sample that would stretch every wait to the maximum."""
    import time

    state = UdpState(UdpTargets(["198.18.0.1"], Cookie()), [53, 54], None)
    state.mark_sent(0)
    state.answer(0, 0, 1, b"x", at=time.monotonic_ns() - 5_000_000)
    assert state.rtt[0] == 0
    assert state.wait < 0.1


def test_numpy_loads_in_the_background_while_discovery_runs() -> None:
    """Importing the UDP scan does not import numpy (~0.1 s); preload_batched starts it in a
    thread, which the pipeline does before host discovery."""
    import subprocess
    import sys

    code = (
        "import sys, time\n"
        "import hilos.udp\n"
        "assert 'numpy' not in sys.modules, 'numpy imported with hilos.udp'\n"
        "hilos.udp.preload_batched()\n"
        "t = time.monotonic()\n"
        "while 'numpy' not in sys.modules and time.monotonic() - t < 10: time.sleep(0.01)\n"
        "assert 'numpy' in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_a_drain_round_sends_one_datagram_per_silent_port() -> None:
    """Behind an ICMP rate limit a second datagram to the same port would spend the host's
    next token on an answer already had: the slow rounds send one payload per port."""

    class Tx:
        def __init__(self) -> None:
            self.sent: list[tuple[bytes, tuple[str, int]]] = []

        def sendto(self, pkt: bytes, addr: tuple[str, int]) -> None:
            self.sent.append((pkt, addr))

    class Rx:
        tx4 = Tx()
        tx6 = None

    scanner = UdpScanner(["198.18.0.1", "198.18.0.2"], [40001, 40002, 40003], batched=False)
    scanner.state.answered[0] = scanner.state.answered[1] = 1  # both hosts answered before
    rx = Rx()
    scanner.send_pass(rx, 3)  # type: ignore[arg-type]
    assert len(rx.tx4.sent) > 6  # a regular pass: every payload to a host that answered
    rx.tx4.sent.clear()
    scanner.send_pass(rx, 9, [0, 1, 4, 5])  # type: ignore[arg-type]
    assert len(rx.tx4.sent) == 4


def test_retries_stop_after_a_pass_without_loss_when_the_host_answers() -> None:
    """A silent port on a host that answers (its closed port does): nothing is lost, so after
    attempts 0 and 1 (a retry pass without a sign of loss, and one full wait) it is
    open|filtered, not after all six (nmap: one try past the last that answered); a silent
    host still gets every retry."""
    if not ROOT:
        pytest.skip("raw sockets need root")
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))  # bound, never read: no reply, no port unreachable
    try:
        port = silent.getsockname()[1]
        scanner = UdpScanner(["127.0.0.1"], [port, _closed_port()], privileged=True)
        attempts: list[int] = []
        real = scanner.send_pass

        def counted(
            rx: UdpReceiver,
            attempt: int,
            indices: object = None,
            all_payloads: bool = False,
            skip: int = 0,
        ) -> float:
            if indices is None or all_payloads:  # a regular pass, not a drain round
                attempts.append(attempt)
            return real(rx, attempt, indices, all_payloads, skip)  # type: ignore[arg-type]

        scanner.send_pass = counted  # type: ignore[method-assign]
        (host,) = list(scanner.results())
        assert [p.state for p in host.ports] == ["open|filtered", "closed"]
        assert attempts == [0, 1]
        # Alone, the silent port's host answers nothing: every payload of the rotation.
        scanner = UdpScanner(["127.0.0.1"], [port], privileged=True, timeout=0.05)
        attempts.clear()
        real = scanner.send_pass
        scanner.send_pass = counted  # type: ignore[method-assign]
        (host,) = list(scanner.results())
        assert host.ports[0].state == "open|filtered"
        assert attempts == [0, 1, 2, 3, 4, 5]
    finally:
        silent.close()


def test_ports_nothing_was_learned_from_are_built_once_for_all_hosts() -> None:
    """6,000 closed ports of a /24 are a few distinct frozen results, not 6,000 objects; a
    port that answered is still described from its own reply."""
    from hilos.udp.state import CLOSED, OPEN

    state = UdpState(UdpTargets(["198.18.0.1", "198.18.0.2"], Cookie()), [53, 9], None,
                     namer=lambda port, data: {"product": data.decode()})  # fmt: skip
    for h in (0, 1):
        state.answer(h, 1, CLOSED, None)
    state.answer(0, 0, OPEN, b"bind")
    state.answer(1, 0, OPEN, b"unbound")
    names = {53: "domain", 9: "discard"}.get
    a, b = (state.build(h, names) for h in (0, 1))
    assert a.ports[1] is b.ports[1]
    assert (a.ports[1].state, a.ports[1].reason, a.ports[1].service) == (
        "closed", "port-unreach", "discard")  # fmt: skip
    assert (a.ports[0].product, b.ports[0].product) == ("bind", "unbound")


def test_the_last_wait_follows_the_small_passes_not_the_first_passes_queue() -> None:
    """A big first pass queues on a slow path (its answers 40-300 ms late); the retries'
    answers come in 40 ms: the final wait is sized for those, not for the queue."""
    import time

    from hilos.udp.state import CLOSED

    state = UdpState(UdpTargets(["198.18.0.1"], Cookie()), list(range(1, 101)), None)
    now = time.monotonic_ns()
    for pi in range(90):  # the first pass: the queue grows as it drains
        state.mark_sent(pi)
        state.answer(0, pi, CLOSED, None, at=now + (40 + 3 * pi) * 1_000_000)
    assert state.wait > 0.3
    state.small_pass = True
    for pi in range(90, 95):
        state.mark_sent(pi)
        state.answer(0, pi, CLOSED, None, at=now + 41_000_000)
    assert 0.04 < state.wait < 0.1


def test_unprivileged_retries_send_every_payload_but_drain_rounds_one() -> None:
    """As on the raw path: a retry to a silent port of a host that answered carries every
    protocol's payload; a drain round carries one (a rate limiter's next token)."""
    import threading
    import time

    from hilos.probes.udp_payloads import ROTATION
    from hilos.udp.unpriv import probe_round
    from hilos.wire.ratelimit import TokenBucket

    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))  # silent: takes the datagrams, answers nothing
    sink.settimeout(0.2)
    try:
        scanner = UdpScanner(["127.0.0.1"], [sink.getsockname()[1]], privileged=False,
                             timeout=0.05)  # fmt: skip
        scanner.state.answered[0] = 1
        bucket, cancel = TokenBucket(None, burst=64), threading.Event()

        def datagrams() -> int:
            n, end = 0, time.monotonic() + 0.3
            while time.monotonic() < end:
                try:
                    sink.recv(2048)
                    n += 1
                except TimeoutError:
                    break
            return n

        probe_round(scanner, [0], 0, 1, bucket, cancel)
        assert datagrams() == 1 + len(ROTATION) - 1
        probe_round(scanner, [0], 7, 0, bucket, cancel, every=False)
        assert datagrams() == 1
    finally:
        sink.close()


def test_loss_signs_are_icmp_errors_and_replies_to_a_ports_own_payload() -> None:
    """What keeps the retries going: an answer a resent probe could only get if the first was
    lost. A reply on a port without a payload of its own came from another payload."""
    from hilos.udp.state import CLOSED, OPEN

    state = UdpState(UdpTargets(["198.18.0.1"], Cookie()), [53, 40000, 40001], None)
    state.answer(0, 1, OPEN, b"hello")  # 40000: a rotation payload found a service
    assert state.loss_signs == 0
    state.answer(0, 0, OPEN, b"dns")  # 53: its own DNS query, answered
    state.answer(0, 2, CLOSED, None)
    assert state.loss_signs == 2


@pytest.mark.parametrize("lossy", [False, True], ids=["clean", "lossy"])
def test_a_sign_of_loss_in_a_retry_pass_keeps_every_retry(lossy: bool) -> None:
    """A clean path stops one pass after the first (attempts 0 and 1); once a resent probe
    was answered (an ICMP error in pass 1: its first answer was lost), every retry is made."""
    from hilos.udp.state import CLOSED

    class Rx:
        idle_at = float("inf")

        def check(self) -> None:
            pass

    scanner = UdpScanner(["198.18.0.1"], [40001, 40002, 40003], timeout=0.01, batched=False)
    attempts: list[int] = []

    def send_pass(rx: object, attempt: int, indices: object = None, **kw: object) -> float:
        attempts.append(attempt)
        if attempt == 0:
            scanner.state.answer(0, 0, CLOSED, None)  # the host answers: 40003's silence is its
        if attempt == 1 and lossy:
            scanner.state.answer(0, 1, CLOSED, None)  # 40002 answers its resend
        return 0.0

    scanner.send_pass = send_pass  # type: ignore[method-assign,assignment]
    scanner._rx = Rx()  # type: ignore[assignment]
    scanner._send_all()
    assert attempts == ([0, 1, 2, 3, 4, 5] if lossy else [0, 1])
    assert scanner.state.final_count == 3


def test_tries_for() -> None:
    from hilos.udp.state import tries_for

    # 10% lost each way: a try fails 19% of the time; 6,000 probes want 9 tries.
    assert tries_for(6000, 0.19) == 9
    assert tries_for(100, 0.21) == 6
    assert tries_for(6000, 0.99) == tries_for(6000, 0.95) > 100  # capped by the callers
    assert tries_for(6000, 0.0) == 1 and tries_for(0, 0.5) == 1


def test_loss_tries_follow_how_many_answers_needed_more_than_one_try() -> None:
    """A first try is one datagram for every port, so the share of answered probes that needed
    more than theirs is the path's loss, whatever the resends carried (every payload of the
    rotation, to a port of an answering host); one try more for the rotation's empty first."""
    from hilos.udp.state import CLOSED, tries_for

    hosts = [f"198.18.1.{i}" for i in range(1, 101)]
    state = UdpState(UdpTargets(hosts, Cookie()), [53, 40000], None)
    assert state.loss_tries() == 1  # nothing answered yet
    for h in range(100):
        state.answer(h, 1, CLOSED, None, attempt=0 if h % 5 else 1)  # a fifth after a resend
    state.attempt = 2
    for h in range(20):
        state.answer(h, 0, CLOSED, None)  # the pass in flight: late
    assert state.late == [40, 120]
    assert state.loss_tries() == tries_for(200, 1 / 3) + 1 == 11


@pytest.mark.parametrize("cap", [None, 9, 7])
def test_measured_loss_asks_for_more_retries_up_to_the_cap(cap: int | None) -> None:
    """With `loss_retries` (the CLI's default when --retries is not given), the loss measured
    sets how many passes follow (state.loss_tries), up to the cap; without it, `retries` is
    the cap as before."""
    from hilos.udp.state import CLOSED

    class Rx:
        idle_at = float("inf")

        def check(self) -> None:
            pass

    hosts = [f"198.18.1.{i}" for i in range(1, 41)]
    scanner = UdpScanner(hosts, [53], timeout=0.01, batched=False, loss_retries=cap)
    attempts: list[int] = []

    def send_pass(rx: object, attempt: int, indices: object = None, **kw: object) -> float:
        attempts.append(attempt)  # host 0 never answers; of the others, 60% at each try
        for h in range(1, 40):
            if not scanner.state.is_final(h) and (h * 7 + attempt) % 5 < 3:
                scanner.state.answer(h, 0, CLOSED, None)
        return 0.0

    scanner.send_pass = send_pass  # type: ignore[method-assign,assignment]
    scanner._rx = Rx()  # type: ignore[assignment]
    scanner._send_all()
    need = scanner.state.loss_tries()
    assert need >= 8  # 40% of the answers late, 40 probes
    last = 5 if cap is None else min(cap, need - 1)
    assert attempts == list(range(last + 1)) and (cap is None or last > 5)
