"""ssh: OpenSSH's identification line, then a real KEXINIT (RFC 4253 section 7.1)."""

from __future__ import annotations

import os

from hilos.lab.services.base import LineConn
from hilos.lab.services.catalog import SSH_BANNER

# --- ssh ---------------------------------------------------------------------------------------

_SSH_KEX_LISTS = (
    "sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org,"
    "ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,diffie-hellman-group-exchange-sha256,"
    "diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,diffie-hellman-group14-sha256,"
    "kex-strict-s-v00@openssh.com",
    "rsa-sha2-512,rsa-sha2-256,ecdsa-sha2-nistp256,ssh-ed25519",
    *(
        [
            "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,"
            "aes128-gcm@openssh.com,aes256-gcm@openssh.com"
        ]
        * 2
    ),
    *(
        [
            "umac-64-etm@openssh.com,umac-128-etm@openssh.com,hmac-sha2-256-etm@openssh.com,"
            "hmac-sha2-512-etm@openssh.com,hmac-sha1-etm@openssh.com,umac-64@openssh.com,"
            "umac-128@openssh.com,hmac-sha2-256,hmac-sha2-512,hmac-sha1"
        ]
        * 2
    ),
    "none,zlib@openssh.com",
    "none,zlib@openssh.com",
    "",
    "",
)
_SSH_KEX_BODY = b"".join(
    len(item).to_bytes(4, "big") + item.encode("ascii") for item in _SSH_KEX_LISTS
) + bytes(5)  # first_kex_packet_follows = FALSE, reserved uint32 0


def _ssh_kexinit() -> bytes:
    """An unencrypted SSH_MSG_KEXINIT binary packet (RFC 4253 sections 6 and 7.1)."""
    payload = b"\x14" + os.urandom(16) + _SSH_KEX_BODY
    pad = 8 - (5 + len(payload)) % 8
    if pad < 4:
        pad += 8
    return (1 + len(payload) + pad).to_bytes(4, "big") + bytes([pad]) + payload + os.urandom(pad)


class SshConn(LineConn):
    max_line = 255  # RFC 4253 section 4.2: the identification line is at most 255 bytes

    def start(self) -> None:
        self.identified = False
        self.say(SSH_BANNER)

    def feed(self) -> None:
        if self.identified:
            self.buf.clear()  # binary packets we cannot continue with; wait for close or idle
            return
        super().feed()

    def line(self, line: str) -> None:
        if self.identified:
            return
        if line.startswith(("SSH-2.0-", "SSH-1.99-")):
            self.identified = True
            self.buf.clear()
            self.send(_ssh_kexinit())
        elif line.startswith("SSH-"):
            self.say("Protocol major versions differ: 2 vs. 1")
            self.close()
        else:
            self.say("Invalid SSH identification string.")
            self.close()

    def line_too_long(self) -> None:
        self.say("Invalid SSH identification string.")
        self.close()
