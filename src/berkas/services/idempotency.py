"""Safe retries (docs/design.md 2.1 and 3): reserving a key before the work, remembering the answer.

Owns the reservation rule both signed requests (DOKU's Request-Id) and uploads
(``Idempotency-Key``) follow, and the upload side of it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

from berkas.core.codes import Code
from berkas.core.errors import Conflict, InvalidRequest
from berkas.core.models import UPLOAD_REPLAY_PREFIX, Client, ReplayRecord
from berkas.core.ports import Clock, ReplayRepository

# docs/design.md 2.1 bounds Request-Id at 128 characters; an upload key follows the same bound.
MAX_KEY = 128


def reserve(
    replays: ReplayRepository, record: ReplayRecord, stale_after: timedelta
) -> ReplayRecord | None:
    """Reserve ``record``; None when newly reserved, else the record already there.

    A same-request reservation left unanswered for longer than ``stale_after`` belonged
    to a request that died with its node, and is taken over so the retry runs instead of
    hearing "in progress" until the record expires.
    """
    existing = replays.begin(record)
    if (
        existing is not None
        and existing.body is None
        and existing.fingerprint == record.fingerprint
        and replays.release_stale(
            record.client_id, record.request_id, record.created_at - stale_after
        )
    ):
        existing = replays.begin(record)
    return existing


class IdempotentUploads:
    """docs/design.md 3.2: an optional ``Idempotency-Key`` (or ``Request-Id``) on POST /file makes a
    retry safe: same key and same content → the first upload's file, not a second one.

    Records share the replay table under an ``upload:`` namespace, so they survive
    restarts and are seen by every node. Only successes are remembered: a refused upload
    stores nothing, and retrying it simply runs again.
    """

    def __init__(
        self,
        replays: ReplayRepository,
        clock: Clock,
        *,
        stale_after: timedelta = timedelta(minutes=2),
    ) -> None:
        self._replays = replays
        self._clock = clock
        self._stale_after = stale_after

    @staticmethod
    def parse_key(raw: str | None) -> str | None:
        """The header value, or ``InvalidRequest`` naming the header; None when absent."""
        if raw is None:
            return None
        key = raw.strip()
        if not key or len(key) > MAX_KEY or not key.isprintable():
            raise InvalidRequest(
                f"Idempotency-Key (or Request-Id) must be 1 to {MAX_KEY} printable characters.",
                code=Code.INVALID_IDEMPOTENCY_KEY,
            )
        return key

    @staticmethod
    def fingerprint(category: str, code: str | None, content: str) -> str:
        """``content`` is the sha256 of the file, or ``url:<file_url>``."""
        text = f"{category}\n{code or ''}\n{content}"
        return hashlib.sha256(text.encode()).hexdigest()

    def begin(self, client: Client, key: str, fingerprint: str) -> str | None:
        """None when this key is new (now reserved); the first upload's file id when it
        is a retry. ``Conflict`` when the key named other content or is still running."""
        record = ReplayRecord(
            client_id=client.client_id,
            request_id=_record_id(key),
            fingerprint=fingerprint,
            status=None,
            body=None,
            created_at=self._clock.now(),
        )
        existing = reserve(self._replays, record, self._stale_after)
        if existing is None:
            return None
        if existing.fingerprint != fingerprint:
            raise Conflict(
                f"Idempotency-Key {key!r} was already used for a different upload; use a "
                "new key for each new document.",
                code=Code.IDEMPOTENCY_KEY_REUSED,
            )
        if existing.body is None:
            raise Conflict(
                f"An upload with Idempotency-Key {key!r} is still being processed; retry shortly.",
                code=Code.REQUEST_IN_PROGRESS,
            )
        # Records written before this format held the whole answer; both carry "id".
        return str(json.loads(existing.body)["id"])

    def finish(self, client: Client, key: str, file_id: str) -> None:
        """Remember that ``key`` stored ``file_id``."""
        body = json.dumps({"id": file_id}).encode()
        self._replays.finish(client.client_id, _record_id(key), 200, body)

    def release(self, client: Client, key: str) -> None:
        """Forget the reservation of an upload that failed, so its retry runs."""
        self._replays.release(client.client_id, _record_id(key))


def _record_id(key: str) -> str:
    # Hashed so any key a signed call accepts (up to 128 characters) fits beside the
    # namespace, which keeps upload keys apart from the Request-Ids of signed calls.
    return UPLOAD_REPLAY_PREFIX + hashlib.sha256(key.encode()).hexdigest()
