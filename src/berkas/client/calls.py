"""The base both clients share: one ``Session`` and the calls of each resource over it
(requirements, uploads, files), written once as flows (see ``flow``).

The resources own request building (DOKU signing, bearer tokens, multipart uploads) and
response parsing; the session owns the token cache. ``BerkasClient`` and
``AsyncBerkasClient`` only perform the I/O.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Generic, Self, TypeVar

import httpx

from berkas.client import profiles
from berkas.client.errors import ConfigurationError
from berkas.client.files import FileCalls
from berkas.client.flow import RetryPolicy
from berkas.client.requirements import RequirementCalls
from berkas.client.session import USER_AGENT, Session
from berkas.client.token_file import TokenFile
from berkas.client.uploads import UploadCalls

HttpT = TypeVar("HttpT", httpx.Client, httpx.AsyncClient)
TransportT = TypeVar("TransportT", httpx.BaseTransport, httpx.AsyncBaseTransport)


class Calls(Generic[HttpT, TransportT]):
    """State and flows shared by the sync and async clients."""

    _http_class: type[HttpT]
    # The lock ``flow.Lock`` takes: threading's for the blocking client, anyio's for the
    # async one (see ``_new_lock``).
    _token_lock: Any

    def __init__(
        self,
        base_url: str,
        client_id: str,
        secret_key: str,
        *,
        transport: TransportT | None = None,
        timeout: float = 30.0,
        token_minutes: int | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        token_cache: str | os.PathLike[str] | None = None,
    ) -> None:
        """See ``BerkasClient``: the arguments are the same for both clients."""
        # The subclass pairs its transport type with its httpx client class; mypy
        # cannot follow that pairing through two type variables, hence Any here.
        http_class: Any = self._http_class
        self._http: HttpT = http_class(
            base_url=base_url,
            transport=transport,
            timeout=timeout,
            headers={"User-Agent": USER_AGENT},
        )
        # One session (credentials, token cache), shared by the calls of every resource.
        self._session = Session(
            self._http,
            client_id,
            secret_key,
            token_minutes=token_minutes,
            retry=retry if retry is not None else RetryPolicy(),
            clock=clock,
            token_file=None
            if token_cache is None
            else TokenFile.of(Path(token_cache), base_url, client_id, secret_key),
        )
        self._token_lock = self._new_lock()
        self._requirements = RequirementCalls(self._session)
        self._uploads = UploadCalls(self._session)
        self._files = FileCalls(self._session)

    def _new_lock(self) -> Any:
        raise NotImplementedError

    @classmethod
    def from_env(
        cls,
        *,
        profile: str | None = None,
        env: Mapping[str, str] | None = None,
        config_path: str | os.PathLike[str] | None = None,
        **options: Any,
    ) -> Self:
        """A client configured as the ``berkas partner`` CLI is, without flags.

        Reads ``BERKAS_CLIENT_BASE_URL`` (default ``http://127.0.0.1:8000``),
        ``BERKAS_CLIENT_ID`` and ``BERKAS_CLIENT_SECRET``; what they leave unset comes
        from ``profile`` (or the ``default`` profile, if any) in
        ``$XDG_CONFIG_HOME/berkas/config.toml``. ``options`` are the constructor's
        keyword arguments. Raises ``ConfigurationError`` naming what is missing.
        """
        found = profiles.resolve(
            env=env,
            profile=profile,
            path=None if config_path is None else Path(config_path),
        )
        if found.client_id is None or found.secret_key is None:
            missing = profiles.ENV_CLIENT_ID if found.client_id is None else profiles.ENV_SECRET_KEY
            raise ConfigurationError(
                f"{missing} is not set and no profile gives it "
                "(save one with: berkas partner configure)"
            )
        return cls(found.base_url, found.client_id, found.secret_key, **options)
