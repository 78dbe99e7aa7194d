"""The delayer's loop (hilos.lab.delayer), on socket pairs: no TUN, no root."""

from __future__ import annotations

import socket
import threading
import time

from hilos.lab.delayer import delay_loop

# --- The delayer's loop, on socket pairs (no TUN, no root) --------------------------------------


def test_delay_loop_holds_packets_and_keeps_order() -> None:
    a_out, a_in = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    b_out, b_in = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    for s in (a_in, b_in):
        s.setblocking(False)
    stop = [False]
    t = threading.Thread(target=delay_loop, args=(a_in.fileno(), b_in.fileno(), 0.05, stop))
    t.start()
    try:
        start = time.monotonic()
        for i in range(200):
            a_out.send(b"p%d" % i)
        b_out.send(b"back")
        b_out.settimeout(2)
        a_out.settimeout(2)
        got = [b_out.recv(64) for _ in range(200)]
        first = time.monotonic() - start
        assert got == [b"p%d" % i for i in range(200)]
        assert a_out.recv(64) == b"back"
        assert 0.045 <= first < 1.0
    finally:
        stop[0] = True
        t.join(2)
        for s in (a_out, a_in, b_out, b_in):
            s.close()
    assert not t.is_alive()
