"""pop3: Dovecot's greeting, CAPA and a failing login."""

from __future__ import annotations

from hilos.lab.services.base import LineConn
from hilos.lab.services.catalog import POP3_BANNER


class Pop3Conn(LineConn):
    max_line = 4096

    def start(self) -> None:
        self.user = False
        self.say(POP3_BANNER)

    def line(self, line: str) -> None:
        verb, _, _arg = line.strip().partition(" ")
        verb = verb.upper()
        if verb == "CAPA":
            self.say(
                "+OK",
                "CAPA",
                "TOP",
                "UIDL",
                "RESP-CODES",
                "PIPELINING",
                "AUTH-RESP-CODE",
                "USER",
                "SASL PLAIN",
                ".",
            )
        elif verb == "USER":
            self.user = True
            self.say("+OK")
        elif verb == "PASS":
            if self.user:
                self.user = False
                self.say("-ERR [AUTH] Authentication failed.")
            else:
                self.say("-ERR No username given.")
        elif verb == "NOOP":
            self.say("+OK")
        elif verb == "QUIT":
            self.say("+OK Logging out")
            self.close()
        else:
            self.say("-ERR Unknown command.")
