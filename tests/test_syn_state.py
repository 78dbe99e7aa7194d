"""Tests for hilos.syn.state: answers to final bits and codes, completed hosts, results."""

from __future__ import annotations

from hilos.probes.base import KIND_RST, KIND_SYN_ACK, KIND_UNREACH, Reply
from hilos.syn.control import Control
from hilos.syn.hosts import HostTable
from hilos.syn.state import ScanState
from hilos.wire.cookie import Cookie

LO1, LO2 = 0x7F000001, 0x7F000002


def _state() -> ScanState:
    hosts = HostTable(["127.0.0.1", "127.0.0.2"], Cookie(1))
    return ScanState(hosts, [22, 80], Control(None), 4)


def test_answers_complete_hosts_and_build_results() -> None:
    st = _state()
    st.on_reply(Reply(4, LO1, 22, 16400, KIND_SYN_ACK, "syn-ack", 0.5))
    st.on_reply(Reply(4, LO1, 22, 16400, KIND_RST, "reset", 0.4))  # a duplicate: ignored
    st.on_reply(Reply(4, LO1, 80, 16400, KIND_RST, "reset", 0.25))
    st.on_reply(Reply(4, LO1, 443, 16400, KIND_RST, "reset", 0.1))  # not a scanned port
    st.on_reply(Reply(4, 0x7F000009, 22, 16400, KIND_RST, "reset", 0.1))  # not a scanned host
    assert st.final_count == 2 and st.answered == 2 and st.completed.get_nowait() == 0
    r = st.build(0)
    assert (r.host, r.status, r.reason, r.rtt_ms) == ("127.0.0.1", "up", "syn-ack", 0.25)
    assert [(p.port, p.state, p.reason, p.service) for p in r.ports] == [
        (22, "open", "syn-ack", "ssh"),
        (80, "closed", "reset", "http"),
    ]
    assert st.control.rtt_min == 0.00025 and st.control.est.measured


def test_unreachable_then_given_up_and_partial() -> None:
    st = _state()
    st.on_reply(Reply(4, LO2, 80, 16400, KIND_UNREACH, "admin-prohibited", 1.0))
    assert [(r.host, [p.reason for p in r.ports]) for r in st.partial()] == [
        ("127.0.0.2", ["admin-prohibited"])
    ]
    st.finalize([2, 2, 0])  # index 2 = (host 1, port 22); index 0 = (host 0, port 22)
    assert st.completed.get_nowait() == 1 and st.completed.empty()
    r = st.build(1)
    assert (r.status, r.reason, r.rtt_ms) == ("down", "admin-prohibited", None)
    assert [p.reason for p in r.ports] == ["no-response", "admin-prohibited"]
    assert st.partial() == []  # host 1 is reported; host 0 has no answer
    st.finalize([1])
    silent = st.build(0)
    assert (silent.status, silent.reason) == ("down", "no-response")
    assert st.control.rtt_min is None  # an ICMP error is not an RTT sample


def test_finalize_of_a_big_list_counts_like_one_by_one() -> None:
    """A /16 -Pn gives up on a million probes at once (the numpy path above 8,192)."""
    import random

    hosts = [f"127.0.{i >> 8}.{i & 255}" for i in range(3000)]
    ports = [22, 80, 443, 8080]
    total = len(hosts) * len(ports)
    rng = random.Random(1)
    picks = [rng.randrange(total) for _ in range(20_000)]  # duplicates included
    states = []
    for many in (False, True):
        table = HostTable(hosts, Cookie(7))
        st = ScanState(table, ports, Control(0.1), total)
        st.finalize(picks[:5])
        if many:
            st.finalize(picks)
        else:
            for i in range(0, len(picks), 1000):
                st.finalize(picks[i : i + 1000])
        done = []
        while not st.completed.empty():
            done.append(st.completed.get())
        states.append((bytes(st.final), st.final_count, st.hosts_done, st.done, sorted(done)))
    assert states[0] == states[1]
    assert states[1][1] == len(set(picks))


def test_a_batch_of_answers_counts_like_one_by_one() -> None:
    """on_replies (the batched receiver's) against on_reply: the same final bits, codes,
    completed hosts, per-host RTTs, with duplicates, strangers and unscanned ports mixed in."""
    import random

    import numpy as np

    hosts = [f"127.0.{i >> 8}.{i & 255}" for i in range(1, 400)]
    ports = [22, 80, 443, 8080, 3306]
    rng = random.Random(3)
    replies = []
    for _ in range(3000):
        a = 0x7F000000 + rng.randrange(1, 420)  # some are not scanned
        p = rng.choice([*ports, 9999])
        k = rng.choice((KIND_SYN_ACK, KIND_RST))
        replies.append(Reply(4, a, p, 16400, k, "syn-ack" if k == KIND_SYN_ACK else "reset",
                             round(rng.uniform(0.1, 9.0), 3)))  # fmt: skip
    seen = []
    for batched in (False, True):
        st = ScanState(HostTable(hosts, Cookie(1)), ports, Control(None), len(hosts) * len(ports))
        if batched:
            for i in range(0, len(replies), 700):
                part = replies[i : i + 700]
                st.on_replies(
                    np.array([r.addr for r in part], dtype=np.uint32),
                    np.array([r.port for r in part], dtype=np.uint16),
                    np.array([r.kind for r in part], dtype=np.uint8),
                    np.array([r.rtt_ms for r in part], dtype=np.float64),
                )
        else:
            for r in replies:
                st.on_reply(r)
        done = sorted(st.completed.get_nowait() for _ in range(st.completed.qsize()))
        seen.append((bytes(st.final), st.codes, st.final_count, st.answered, done, st.rtt,
                     bytes(st.has_code), st.control.rtt_min))  # fmt: skip
    assert seen[0] == seen[1]
    assert seen[1][2] > 1000 and seen[1][4]


def test_an_answer_after_the_give_up_counts_until_the_host_is_reported() -> None:
    """A queue held the RST past the timeout: the port is closed, not filtered, as long as
    its host has not been written yet; after that, nothing changes."""
    import numpy as np

    st = _state()
    st.finalize([0, 1, 2, 3])  # every probe given up
    st.on_reply(Reply(4, LO1, 80, 16400, KIND_RST, "reset", 50.0))
    st.on_replies(
        np.array([LO1], dtype=np.uint32), np.array([22], dtype=np.uint16),
        np.array([KIND_SYN_ACK], dtype=np.uint8), np.array([60.0]),
    )  # fmt: skip
    r = st.build(0)
    assert [(p.port, p.state) for p in r.ports] == [(22, "open"), (80, "closed")]
    assert r.status == "up" and st.final_count == 4
    st.build(1)
    st.on_reply(Reply(4, LO2, 80, 16400, KIND_RST, "reset", 50.0))  # host 1 already written
    assert st.codes == {} and not st.has_code[1]
