"""smtp (and, under TLS, smtps): Postfix's greeting and dialogue."""

from __future__ import annotations

from hilos.lab.services.base import LineConn
from hilos.lab.services.catalog import SMTP_BANNER, SMTP_HOST

_EHLO_LINES = (
    SMTP_HOST,
    "PIPELINING",
    "SIZE 10240000",
    "VRFY",
    "ETRN",
    "ENHANCEDSTATUSCODES",
    "8BITMIME",
    "DSN",
    "SMTPUTF8",
    "CHUNKING",
)


class SmtpConn(LineConn):
    max_line = 2048  # Postfix line_length_limit

    def start(self) -> None:
        self.helo = False
        self.mail = False
        self.say(SMTP_BANNER)

    def line(self, line: str) -> None:
        verb, _, arg = line.strip().partition(" ")
        verb = verb.upper()
        arg = arg.strip()
        if verb in ("EHLO", "HELO"):
            self.hello(verb, arg)
        elif verb in ("MAIL", "RCPT", "DATA"):
            self.envelope(verb, arg)
        elif verb in ("RSET", "NOOP"):
            if verb == "RSET":
                self.mail = False
            self.say("250 2.0.0 Ok")
        elif verb == "VRFY":
            self.say(f"252 2.0.0 {arg}" if arg else "501 5.5.4 Syntax: VRFY address")
        elif verb == "QUIT":
            self.say("221 2.0.0 Bye")
            self.close()
        elif verb in ("CONNECT", "GET", "POST"):  # Postfix smtpd_forbidden_commands
            self.say("221 2.7.0 Error: I can break rules, too. Goodbye.")
            self.close()
        elif not verb:
            self.say("500 5.5.2 Error: bad syntax")
        else:
            self.say("502 5.5.2 Error: command not recognized")

    def hello(self, verb: str, arg: str) -> None:
        if not arg:
            self.say(f"501 Syntax: {verb} hostname")
            return
        self.helo, self.mail = True, False
        if verb == "EHLO":
            self.say(*(f"250-{x}" for x in _EHLO_LINES[:-1]), f"250 {_EHLO_LINES[-1]}")
        else:
            self.say(f"250 {SMTP_HOST}")

    def envelope(self, verb: str, arg: str) -> None:
        """MAIL, RCPT, DATA: the order Postfix insists on; every recipient is relay-denied."""
        if verb == "MAIL":
            if not self.helo:
                self.say("503 5.5.1 Error: send HELO/EHLO first")
            elif self.mail:
                self.say("503 5.5.1 Error: nested MAIL command")
            else:
                self.mail = True
                self.say("250 2.1.0 Ok")
        elif not self.mail:
            need = "MAIL" if verb == "RCPT" else "RCPT"
            self.say(f"503 5.5.1 Error: need {need} command")
        elif verb == "RCPT":
            rcpt = arg[arg.find("<") : arg.find(">") + 1] if "<" in arg else arg
            self.say(f"454 4.7.1 {rcpt}: Relay access denied")
        else:
            self.say("554 5.5.1 Error: no valid recipients")

    def line_too_long(self) -> None:
        self.buf.clear()
        self.say("500 5.5.2 Error: bad syntax")
