"""hilos.lab.services line protocols: ssh, ftp, smtp, pop3, imap (loopback only)."""

from __future__ import annotations

from lab_services_support import closed, connect, dialogue, recv_exact, recv_to_eof, recv_until


def test_ssh_sends_kexinit_after_client_identification(svc: dict[str, tuple[str, int]]) -> None:
    with connect(svc["ssh"]) as sock:
        assert recv_until(sock, b"\r\n") == b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"
        sock.sendall(b"SSH-2.0-hilos_test\r\n")
        length = int.from_bytes(recv_exact(sock, 4), "big")
        packet = recv_exact(sock, length)
        pad = packet[0]
        assert pad >= 4 and (4 + length) % 8 == 0, "RFC 4253 6: padding and block alignment"
        payload = packet[1 : length - pad]
        assert payload[0] == 20, "SSH_MSG_KEXINIT"
        pos, lists = 17, []
        for _ in range(10):
            n = int.from_bytes(payload[pos : pos + 4], "big")
            lists.append(payload[pos + 4 : pos + 4 + n].decode())
            pos += 4 + n
        assert payload[pos:] == bytes(5)
        assert "curve25519-sha256" in lists[0].split(",")
        assert "ssh-ed25519" in lists[1].split(",")
        assert lists[2] == lists[3] and "aes128-ctr" in lists[2]


def test_ssh_rejects_non_ssh_client(svc: dict[str, tuple[str, int]]) -> None:
    with connect(svc["ssh"]) as sock:
        recv_until(sock, b"\r\n")
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert recv_to_eof(sock) == b"Invalid SSH identification string.\r\n"


def test_ftp_vsftpd(svc: dict[str, tuple[str, int]]) -> None:
    with connect(svc["ftp"]) as sock:
        assert recv_until(sock, b"\r\n") == b"220 (vsFTPd 3.0.3)\r\n"
        dialogue(
            sock,
            [
                (b"SYST\r\n", b"530 Please login with USER and PASS.\r\n"),
                (b"FEAT\r\n", b"211 End\r\n"),
                (b"PASS x\r\n", b"503 Login with USER first.\r\n"),
                (b"USER anonymous\r\n", b"331 Please specify the password.\r\n"),
                (b"PASS guest@\r\n", b"530 Login incorrect.\r\n"),
                (b"QUIT\r\n", b"221 Goodbye.\r\n"),
            ],
        )
        assert closed(sock)


def test_smtp_postfix(svc: dict[str, tuple[str, int]]) -> None:
    with connect(svc["smtp"]) as sock:
        assert recv_until(sock, b"\r\n") == b"220 mail.lab.example ESMTP Postfix (Debian/GNU)\r\n"
        dialogue(
            sock,
            [
                (b"MAIL FROM:<a@b>\r\n", b"503 5.5.1 Error: send HELO/EHLO first\r\n"),
                (b"EHLO scanner.lab\r\n", b"250 CHUNKING\r\n"),
                (b"MAIL FROM:<a@b>\r\n", b"250 2.1.0 Ok\r\n"),
                (b"RCPT TO:<x@far.example>\r\n", b"<x@far.example>: Relay access denied\r\n"),
                (b"NOOP\r\n", b"250 2.0.0 Ok\r\n"),
                (b"FROB\r\n", b"502 5.5.2 Error: command not recognized\r\n"),
                (b"QUIT\r\n", b"221 2.0.0 Bye\r\n"),
            ],
        )
        assert closed(sock)


def test_smtp_hangs_up_on_http(svc: dict[str, tuple[str, int]]) -> None:
    with connect(svc["smtp"]) as sock:
        recv_until(sock, b"\r\n")
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert recv_to_eof(sock) == b"221 2.7.0 Error: I can break rules, too. Goodbye.\r\n"


def test_pop3_dovecot(svc: dict[str, tuple[str, int]]) -> None:
    with connect(svc["pop3"]) as sock:
        assert recv_until(sock, b"\r\n") == b"+OK Dovecot (Debian) ready.\r\n"
        sock.sendall(b"CAPA\r\n")
        capa = recv_until(sock, b"\r\n.\r\n")
        assert capa.startswith(b"+OK\r\n") and b"\r\nUSER\r\n" in capa
        dialogue(
            sock,
            [
                (b"USER bob\r\n", b"+OK\r\n"),
                (b"PASS secret\r\n", b"-ERR [AUTH] Authentication failed.\r\n"),
                (b"QUIT\r\n", b"+OK Logging out\r\n"),
            ],
        )
        assert closed(sock)


def test_imap_dovecot(svc: dict[str, tuple[str, int]]) -> None:
    with connect(svc["imap"]) as sock:
        greeting = recv_until(sock, b"\r\n")
        assert greeting.startswith(b"* OK [CAPABILITY IMAP4rev1 ")
        assert greeting.endswith(b"] Dovecot (Debian) ready.\r\n")
        sock.sendall(b"a1 CAPABILITY\r\n")
        reply = recv_until(sock, b"a1 OK")
        assert reply.startswith(b"* CAPABILITY IMAP4rev1 ")
        dialogue(
            sock,
            [
                (
                    b"a2 LOGIN bob secret\r\n",
                    b"a2 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n",
                ),
                (
                    b"a3 SELECT INBOX\r\n",
                    b"a3 BAD Error in IMAP command SELECT: Unknown command.\r\n",
                ),
                (b"a4 LOGOUT\r\n", b"a4 OK Logout completed.\r\n"),
            ],
        )
        assert closed(sock)


def test_imap_bad_lines_like_dovecot(svc: dict[str, tuple[str, int]]) -> None:
    with connect(svc["imap"]) as sock:
        recv_until(sock, b"\r\n")
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert recv_until(sock, b"* BAD Error in IMAP command received by server.\r\n") == (
            b"GET BAD Error in IMAP command received by server.\r\n"
            b"* BAD Error in IMAP command received by server.\r\n"
        )
