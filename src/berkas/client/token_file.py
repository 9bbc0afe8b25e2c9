"""A bearer token kept on disk between processes: the ``berkas partner`` CLI's cache, so
consecutive commands share one token instead of signing one each.

One file per server and Client-Id, written 0600 and renamed into place as the profile
file is (``profiles``). A file that cannot be read, is for another server, client or
secret, was asked for another ``valid_time``, is past its refresh time, or is readable by
anyone but its owner is ignored, and replaced by the next token fetched.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from berkas.client import models
from berkas.client.errors import BerkasClientError
from berkas.client.models import Token

_VERSION = 1


@dataclass(frozen=True, slots=True)
class TokenFile:
    """The cache file at ``path`` for ``client_id`` on ``base_url`` under one secret.

    ``secret_mark`` ties the file to the secret the token was signed for: a changed or
    wrong secret must be tried on the server (and refused there), not hidden by a token
    an earlier secret obtained. It is an HMAC keyed by the secret, so the file holds
    nothing from which the secret could be checked offline.
    """

    path: Path
    base_url: str
    client_id: str
    secret_mark: str

    @classmethod
    def of(cls, path: Path, base_url: str, client_id: str, secret_key: str) -> TokenFile:
        """The cache file for these credentials."""
        mark = hmac.new(
            secret_key.encode(),
            f"berkas token cache\n{base_url}\n{client_id}".encode(),
            hashlib.sha256,
        ).hexdigest()
        return cls(path, base_url, client_id, mark)

    def load(self, minutes: int | None, now: float) -> tuple[Token, float] | None:
        """The cached token and the time to refresh it, or None when there is none usable."""
        try:
            with self.path.open("rb") as handle:
                info = os.fstat(handle.fileno())
                # The token is a credential for its life, as the profile's secret is: a
                # file others could read (copied, or made by a looser umask) is not
                # trusted to have stayed private, nor one another user owns.
                if (
                    not stat.S_ISREG(info.st_mode)
                    or info.st_mode & 0o077
                    or info.st_uid != os.geteuid()
                ):
                    return None
                document = json.loads(handle.read(64 * 1024))
        except (OSError, UnicodeDecodeError, ValueError):
            return None
        if not isinstance(document, dict):
            return None
        expected = {
            "version": _VERSION,
            "base_url": self.base_url,
            "client_id": self.client_id,
            "secret_mark": self.secret_mark,
            "valid_time": minutes,
        }
        if any(document.get(key) != value for key, value in expected.items()):
            return None
        refresh_at = document.get("refresh_at")
        if isinstance(refresh_at, bool) or not isinstance(refresh_at, int | float):
            return None
        if now >= refresh_at:
            return None
        try:
            token = models.parse_token({"token": document.get("token")})
        except BerkasClientError:
            return None
        return token, float(refresh_at)

    def save(self, token: Token, minutes: int | None, refresh_at: float) -> None:
        """Keep ``token`` until ``refresh_at``; a failure to write is not the caller's
        problem (the next command signs a new token), so it is swallowed."""
        document = {
            "version": _VERSION,
            "base_url": self.base_url,
            "client_id": self.client_id,
            "secret_mark": self.secret_mark,
            "valid_time": minutes,
            "refresh_at": refresh_at,
            "token": token.token,
        }
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # mkstemp: a fresh name, created 0600 (O_EXCL), before the token is written.
            fd, name = tempfile.mkstemp(
                prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
            )
        except OSError:
            return
        temporary = Path(name)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(document, handle)
            os.replace(temporary, self.path)
        except OSError:
            return
        finally:
            temporary.unlink(missing_ok=True)
