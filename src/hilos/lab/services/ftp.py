"""ftp: vsftpd's greeting and its answers to a login attempt."""

from __future__ import annotations

from hilos.lab.services.base import LineConn
from hilos.lab.services.catalog import FTP_BANNER

# --- ftp, smtp, pop3, imap -----------------------------------------------------------------------


class FtpConn(LineConn):
    max_line = 4096

    def start(self) -> None:
        self.user: str | None = None
        self.say(FTP_BANNER)

    def line(self, line: str) -> None:
        verb, _, arg = line.strip().partition(" ")
        verb = verb.upper()
        if verb == "USER":
            self.user = arg
            self.say("331 Please specify the password.")
        elif verb == "PASS":
            if self.user is None:
                self.say("503 Login with USER first.")
            else:
                self.user = None
                self.say("530 Login incorrect.")
        elif verb == "QUIT":
            self.say("221 Goodbye.")
            self.close()
        elif verb == "FEAT":
            self.say(
                "211-Features:",
                " EPRT",
                " EPSV",
                " MDTM",
                " PASV",
                " REST STREAM",
                " SIZE",
                " TVFS",
                "211 End",
            )
        elif verb == "OPTS" and arg.upper().startswith("UTF8 ON"):
            self.say("200 Always in UTF8 mode.")
        else:
            self.say("530 Please login with USER and PASS.")

    def line_too_long(self) -> None:
        self.buf.clear()
        self.say("500 Input line too long.")
