"""redis: RESP and inline commands like Redis 7."""

from __future__ import annotations

import os
import time

from hilos.lab.services.base import Conn, Context
from hilos.lab.services.catalog import REDIS_VERSION
from hilos.lab.services.spec import Service

# --- redis ---------------------------------------------------------------------------------------


class _RedisError(Exception):
    """A RESP protocol error: Redis answers -ERR Protocol error and hangs up."""


# Accepted argument counts (min, max) of the commands we implement.
_REDIS_ARITY = {
    "ping": (0, 1),
    "echo": (1, 1),
    "quit": (0, 99),
    "select": (1, 1),
    "get": (1, 1),
    "set": (2, 99),
    "del": (1, 1 << 20),
    "exists": (1, 1 << 20),
    "dbsize": (0, 0),
    "info": (0, 99),
}


class RedisConn(Conn):
    max_buffer = 1 << 20
    max_keys = 10000

    def __init__(self, ctx: Context, service: Service, store: dict[bytes, bytes]) -> None:
        super().__init__(ctx, service)
        self.store = store

    def feed(self) -> None:
        buf = self.buf
        try:
            while not self.closing and buf:
                if buf[0] == 0x2A:  # '*': a multibulk request
                    args = self._multibulk()
                    if args is None:
                        return
                else:
                    end = buf.find(b"\n")
                    if end < 0:
                        if len(buf) > 65536:
                            raise _RedisError("too big inline request")
                        return
                    args = bytes(buf[:end]).split()
                    del buf[: end + 1]
                if args:
                    self.command(args)
        except _RedisError as exc:
            self.send(b"-ERR Protocol error: " + str(exc).encode() + b"\r\n")
            self.close()

    def _multibulk(self) -> list[bytes] | None:
        buf = self.buf
        end = buf.find(b"\r\n")
        if end < 0:
            if len(buf) > 65536:
                raise _RedisError("too big mbulk count string")
            return None
        try:
            count = int(buf[1:end])
        except ValueError:
            raise _RedisError("invalid multibulk length") from None
        if count > 1024 * 1024:
            raise _RedisError("invalid multibulk length")
        pos = end + 2
        args: list[bytes] = []
        for _ in range(count):
            if pos >= len(buf):
                return None
            if buf[pos] != 0x24:  # '$'
                raise _RedisError(f"expected '$', got '{chr(buf[pos])}'")
            end = buf.find(b"\r\n", pos)
            if end < 0:
                return None
            try:
                size = int(buf[pos + 1 : end])
            except ValueError:
                raise _RedisError("invalid bulk length") from None
            if not 0 <= size <= self.max_buffer:
                raise _RedisError("invalid bulk length")
            if end + 2 + size + 2 > len(buf):
                return None
            args.append(bytes(buf[end + 2 : end + 2 + size]))
            pos = end + 2 + size + 2
        del buf[:pos]
        return args

    def overflow(self) -> None:
        self.send(b"-ERR Protocol error: request too big\r\n")
        self.close()

    def command(self, args: list[bytes]) -> None:
        name = args[0].decode("latin-1")
        cmd = name.lower()
        n = len(args) - 1
        arity = _REDIS_ARITY
        if cmd in ("post", "host:"):
            self.abort()  # Redis: "Possible SECURITY ATTACK detected" (HTTP sent to Redis)
            return
        if cmd not in arity:
            shown = "".join(f"'{a[:128].decode('latin-1')}' " for a in args[1:])
            reply = f"-ERR unknown command '{name[:128]}', with args beginning with: {shown}\r\n"
            self.send(reply.encode("latin-1"))
            return
        low, high = arity[cmd]
        if not low <= n <= high:
            self.send(f"-ERR wrong number of arguments for '{cmd}' command\r\n".encode())
            return
        self.execute(cmd, args)

    def execute(self, cmd: str, args: list[bytes]) -> None:
        """Run a known command whose argument count is right."""
        n = len(args) - 1
        if cmd == "ping":
            self.send(b"+PONG\r\n" if n == 0 else _bulk(args[1]))
        elif cmd == "echo":
            self.send(_bulk(args[1]))
        elif cmd == "quit":
            self.send(b"+OK\r\n")
            self.close()
        elif cmd == "select":
            ok = args[1].isdigit() and int(args[1]) < 16
            self.send(b"+OK\r\n" if ok else b"-ERR DB index is out of range\r\n")
        elif cmd == "get":
            value = self.store.get(args[1])
            self.send(b"$-1\r\n" if value is None else _bulk(value))
        elif cmd == "set":
            if args[1] not in self.store and len(self.store) >= self.max_keys:
                self.send(b"-OOM command not allowed when used memory > 'maxmemory'.\r\n")
            else:
                self.store[args[1]] = args[2]
                self.send(b"+OK\r\n")
        elif cmd == "del":
            self.send(b":%d\r\n" % sum(self.store.pop(k, None) is not None for k in args[1:]))
        elif cmd == "exists":
            self.send(b":%d\r\n" % sum(k in self.store for k in args[1:]))
        elif cmd == "dbsize":
            self.send(b":%d\r\n" % len(self.store))
        else:
            self.send(_bulk(self.info([a.decode("latin-1").lower() for a in args[1:]])))

    def info(self, sections: list[str]) -> bytes:
        uptime = int(time.time() - self.ctx.started)
        clients = sum(isinstance(c, RedisConn) for c in self.ctx.conns)
        text = {
            "server": [
                f"redis_version:{REDIS_VERSION}",
                "redis_git_sha1:00000000",
                "redis_git_dirty:0",
                "redis_build_id:5e5aa8a9f8b2e0c3",
                "redis_mode:standalone",
                "os:Linux 6.1.0-18-amd64 x86_64",
                "arch_bits:64",
                "monotonic_clock:POSIX clock_gettime",
                "multiplexing_api:epoll",
                "atomicvar_api:c11-builtin",
                "gcc_version:12.2.0",
                f"process_id:{os.getpid()}",
                "process_supervised:systemd",
                "run_id:1f0b6c3a9e3c4d2b8a7f6e5d4c3b2a1908f7e6d5",
                f"tcp_port:{self.service.port}",
                f"server_time_usec:{int(time.time() * 1e6)}",
                f"uptime_in_seconds:{uptime}",
                f"uptime_in_days:{uptime // 86400}",
                "hz:10",
                "configured_hz:10",
                "executable:/usr/bin/redis-server",
                "config_file:/etc/redis/redis.conf",
                "io_threads_active:0",
            ],
            "clients": [
                f"connected_clients:{clients}",
                "cluster_connections:0",
                "maxclients:10000",
                "blocked_clients:0",
            ],
            "memory": ["used_memory:1046440", "used_memory_human:1021.91K", "maxmemory:0"],
            "persistence": ["loading:0", "rdb_changes_since_last_save:0"],
            "replication": ["role:master", "connected_slaves:0"],
            "keyspace": [f"db0:keys={len(self.store)},expires=0,avg_ttl=0"] if self.store else [],
        }
        wanted = [s for s in sections if s not in ("all", "default", "everything")]
        chosen = [s for s in text if s in wanted] if wanted else list(text)
        return "\r\n".join(
            f"# {s.capitalize()}\r\n" + "".join(line + "\r\n" for line in text[s]) for s in chosen
        ).encode("latin-1")


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)
