"""hilos.udp.resume: how far a UDP scan's passes got, and its state saved and taken back."""

from __future__ import annotations

from hilos.udp.resume import Marks, restore, snapshot
from hilos.udp.state import CLOSED, OPEN, UdpState
from hilos.udp.targets import UdpTargets
from hilos.wire.cookie import Cookie

HOSTS = ["198.18.0.1", "198.18.0.2", "198.18.0.3"]
PORTS = [53, 123]


def _state() -> UdpState:
    st = UdpState(UdpTargets(HOSTS, Cookie()), PORTS, None)
    st.archive = {}  # as a scan keeping a checkpoint has it
    return st


def test_marks_settle_in_order_of_progress() -> None:
    m = Marks()
    assert m.settled(100.0) == (0, 0, 0)  # nothing marked: the start
    m.mark((0, 1, 0), 10.0)
    m.mark((0, 2, 0), 20.0)
    assert m.settled(15.0) == (0, 1, 0)
    assert m.settled(5.0) == (0, 0, 0)
    m.mark((1, 0, 0), -1.0)  # a pass whose answers were awaited: settled at once
    assert m.settled(15.0) == (1, 0, 0)
    m.mark((1, 3, 0), 30.0)
    assert m.settled(25.0) == (1, 0, 0) and m.settled(30.0) == (1, 3, 0)
    assert Marks((2, 5, 7)).settled(0.0) == (2, 5, 7)


def test_snapshot_and_restore_keep_answers_and_skip_written_hosts() -> None:
    st = _state()
    st.answer(0, 0, OPEN, b"\x00\x01version")
    st.answer(0, 1, CLOSED, None)
    st.answer(1, 0, CLOSED, None)
    st.answer(2, 0, OPEN, b"reply")
    st.give_up([5])  # host 2, port 123: open|filtered
    assert st.completed.get_nowait() == 0 and st.completed.get_nowait() == 2
    st.build(0, str)  # host 0 reported...
    st.build(2, str)  # ...and host 2, but only host 0 reached the outputs
    saved = snapshot(st, (1, 4, 0), True, lambda hs: [h == HOSTS[0] for h in hs])
    assert saved["at"] == [1, 4, 0] and saved["lossy"] is True

    assert list(st.archive or {}) == [2]  # host 0 was found written: it left the archive
    back = _state()
    restore(back, saved, lambda hs: [h == HOSTS[0] for h in hs])
    assert back.reported[0] == 1 and back.done[0] == 2  # written: over
    # Host 1 answered on one port: that answer is back. Host 2 was reported but not written:
    # its answers came back from the archive, and it is reported again at once.
    assert back.codes == {2: CLOSED, 4: OPEN} and back.replies[4] == b"reply"
    assert back.answered[1] == 1 and back.closed[1] == 1
    assert back.done == [2, 1, 2] and back.final_count == 5 and back.hosts_done == 2
    assert back.completed.get_nowait() == 2
    host2 = back.build(2, str)
    assert [(p.port, p.state) for p in host2.ports] == [(53, "open"), (123, "open|filtered")]
    back.answer(1, 1, OPEN, b"late")
    assert back.completed.get_nowait() == 1
    host = back.build(1, str)
    assert [(p.port, p.state) for p in host.ports] == [(53, "closed"), (123, "open")]


def test_a_complete_host_not_yet_written_is_reported_after_restore() -> None:
    st = _state()
    for h in range(3):
        st.answer(h, 0, CLOSED, None)
        st.answer(h, 1, OPEN, b"x")
    saved = snapshot(st, (0, 0, 0), False, lambda hs: [False] * len(hs))
    back = _state()
    restore(back, saved, lambda hs: [False] * len(hs))
    got = sorted(back.completed.get_nowait() for _ in range(3))
    assert got == [0, 1, 2] and back.replies[1] == b"x"
