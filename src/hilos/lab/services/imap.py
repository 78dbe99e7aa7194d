"""imap: Dovecot's greeting, CAPABILITY, ID and a failing login."""

from __future__ import annotations

from hilos.lab.services.base import LineConn
from hilos.lab.services.catalog import IMAP_BANNER, IMAP_CAPS


class ImapConn(LineConn):
    max_line = 8192

    def start(self) -> None:
        self.say(IMAP_BANNER)

    def line(self, line: str) -> None:
        tag, _, rest = line.strip().partition(" ")
        verb = rest.strip().partition(" ")[0].upper()
        # Dovecot: an empty line or a bad tag is an untagged BAD; a tag followed by something
        # that is not a command name a tagged one (nmap's Dovecot match after "GET / HTTP/1.0").
        if not tag or not tag.isprintable() or any(c in tag for c in '(){%*"\\+'):
            self.say("* BAD Error in IMAP command received by server.")
        elif not verb.isalpha():
            self.say(f"{tag} BAD Error in IMAP command received by server.")
        elif verb == "CAPABILITY":
            self.say(
                f"* CAPABILITY {IMAP_CAPS}",
                f"{tag} OK Pre-login capabilities listed, post-login capabilities have more.",
            )
        elif verb == "NOOP":
            self.say(f"{tag} OK NOOP completed.")
        elif verb == "ID":
            self.say('* ID ("name" "Dovecot")', f"{tag} OK ID completed.")
        elif verb in ("LOGIN", "AUTHENTICATE"):
            self.say(f"{tag} NO [AUTHENTICATIONFAILED] Authentication failed.")
        elif verb == "LOGOUT":
            self.say("* BYE Logging out", f"{tag} OK Logout completed.")
            self.close()
        else:
            self.say(f"{tag} BAD Error in IMAP command {verb}: Unknown command.")
