"""The batched engine's vectorised pieces equal their scalar definitions bit for bit."""

from __future__ import annotations

import random
import socket

import numpy as np
import pytest

from hilos.targets.walk import Permutation
from hilos.wire.checksum import checksum
from hilos.wire.cookie import Cookie
from hilos.wire.vector import FrameBatch, echo_cookies, fold, tcp_cookies, walk_batches


def test_echo_cookies_equal_the_scalar_cookie() -> None:
    rng = random.Random(11)
    for secret in (None, 0, 2**128 - 1, *(rng.getrandbits(128) for _ in range(10))):
        c = Cookie(secret)
        addrs = np.array([rng.getrandbits(32) for _ in range(500)] + [0, 2**32 - 1], np.uint64)
        got = echo_cookies(c, addrs)
        assert got.dtype == np.uint32
        assert got.tolist() == [c.echo(int(a)) for a in addrs]
        assert echo_cookies(c, addrs.astype(np.uint32)).tolist() == got.tolist()


def test_tcp_cookies_equal_the_scalar_cookie() -> None:
    rng = random.Random(12)
    for secret in (None, 0, 2**128 - 1, rng.getrandbits(128)):
        c = Cookie(secret)
        a = np.array([rng.getrandbits(32) for _ in range(1000)], np.uint32)
        d = np.array([rng.randrange(65536) for _ in range(1000)], np.uint16)
        s = np.array([rng.randrange(65536) for _ in range(1000)], np.uint16)
        trip = zip(a.tolist(), d.tolist(), s.tolist(), strict=True)
        want = [c.value(c.host_seed(x), y, z) for x, y, z in trip]
        assert tcp_cookies(c, a, d, s).tolist() == want


@pytest.mark.parametrize("n", [0, 1, 2, 7, 256, 1000, 65536, 100_003])
@pytest.mark.parametrize("size", [1, 3, 256, 1024])
def test_walk_batches_is_the_scalar_walk(n: int, size: int) -> None:
    perm = Permutation(n, seed=n * 7 + size)
    got = np.concatenate([*walk_batches(perm, size), np.empty(0, np.int64)]).tolist()
    assert got == list(perm)
    assert all(len(b) <= size for b in walk_batches(perm, size))


def test_walk_batches_of_shards() -> None:
    perm = Permutation(5000, seed=3)
    for i in range(1, 4):
        got = np.concatenate(list(walk_batches(perm, 64, (i, 3)))).tolist()
        assert got == list(perm.shard(i, 3))


def test_walk_batches_large_space_falls_back_to_the_scalar_walk() -> None:
    perm = Permutation(2**45, seed=1)
    first = next(walk_batches(perm, 100))
    it = iter(perm)
    assert first.tolist() == [next(it) for _ in range(100)]


def test_fold_is_the_internet_checksum() -> None:
    rng = random.Random(13)
    datas = [bytes(rng.getrandbits(8) for _ in range(20)) for _ in range(3000)]
    datas += [b"\xff\xff" + b"\x00" * 18, b"\x12\x34\xed\xcb"]  # sums that are 0 mod 0xFFFF
    totals = np.array([int.from_bytes(d, "big") % 0xFFFF for d in datas], np.uint64)
    assert fold(totals).tolist() == [checksum(d) for d in datas]


class _Probe:
    def __init__(self) -> None:
        spec = {"names": ["dst"], "formats": [">u4"], "offsets": [2], "itemsize": 8}
        self.layout = np.dtype(spec)
        self.template = b"\xaa\xbb\0\0\0\0\xcc\xdd"

    def patch(self, rows: np.ndarray, dst: np.ndarray, port: np.ndarray) -> None:
        rows["dst"] = dst

    def validate(self, pkts: np.ndarray, lens: np.ndarray) -> object:
        raise NotImplementedError


def test_frame_batch_patches_slots_and_sends_them() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        batch = FrameBatch(_Probe(), a, 4)  # type: ignore[arg-type]
        dst = np.array([1, 0x01020304, 0xFFFFFFFF], np.uint32)
        assert batch.send(dst, np.zeros(3, np.uint16)) == 3
        got = [b.recv(64) for _ in range(3)]
    assert got == [
        b"\xaa\xbb\0\0\0\x01\xcc\xdd",
        b"\xaa\xbb\x01\x02\x03\x04\xcc\xdd",
        b"\xaa\xbb\xff\xff\xff\xff\xcc\xdd",
    ]
    with pytest.raises(ValueError):
        bad = _Probe()
        bad.template = b"short"
        FrameBatch(bad, a, 1)  # type: ignore[arg-type]


def test_median_of_the_finite_values_without_numpy_ma() -> None:
    import random
    import subprocess
    import sys

    from hilos.wire.vector import median

    rng = random.Random(4)
    for n in range(1, 30):
        vals = [rng.random() for _ in range(n)]
        srt = sorted(vals)
        want = srt[n // 2] if n % 2 else (srt[n // 2 - 1] + srt[n // 2]) / 2
        got = median(np.array(vals + [float("nan")] * rng.randrange(3)))
        assert abs(got - want) < 1e-12
    assert median(np.array([float("nan")])) != median(np.array([float("nan")]))  # nan
    code = "import sys, numpy as np; from hilos.wire.vector import median; "
    code += "median(np.array([1.0, 2.0])); print('numpy.ma' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
