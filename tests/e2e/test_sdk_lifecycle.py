"""A file's lifecycle through the SDK (both clients) and ``berkas partner`` against a real
``berkas serve``, embedded and PostgreSQL + Ceph RGW: events, revoke_links, delete; one
token for concurrent calls and for consecutive CLI commands; "did you mean KTP?".
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from berkas.cli.main import main
from berkas.client import (
    AsyncBerkasClient,
    BerkasClient,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
)
from berkas.core.wire import API_PREFIX
from tests.support import samples
from tests.support.partner import Partner
from tests.support.server import Server


def answered(server: Server, method: str, route: str) -> float:
    """Requests to ``method route`` the server has answered, by its own /metrics."""
    text = httpx.get(f"{server.metrics_url}/metrics", timeout=10).text
    labels = (f'method="{method}"', f'route="{API_PREFIX}{route}"')
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("berkas_http_requests_total{") and all(x in line for x in labels)
    )


def token_requests(server: Server) -> float:
    return answered(server, "POST", "/token")


def sdk(server: Server, partner: Partner) -> BerkasClient:
    return BerkasClient(server.url, partner.client_id, partner.secret_key)


def kinds(trail: Any) -> list[str]:
    return [event.kind for event in trail.events]


# -- the SDK ---------------------------------------------------------------------------


def test_the_blocking_client_revokes_links_reads_the_trail_and_deletes(
    server: Server, partner: Partner
) -> None:
    content = samples.jpeg(seed=301)
    with sdk(server, partner) as client:
        uploaded = client.upload("photo_proof", content)
        described = client.file(uploaded.id)

        revoked = client.revoke_links(uploaded.id)

        assert revoked.id == uploaded.id
        assert revoked.sha256 == uploaded.sha256
        for old in (uploaded.link, described.link):
            with pytest.raises(PermissionDeniedError) as caught:
                client.download(old)
            assert caught.value.code == "link_revoked"
        assert client.download(revoked.link, sha256=revoked.sha256) == content

        client.delete(uploaded.id)
        client.delete(uploaded.id)  # a repeat by the owner is not an error

        with pytest.raises(NotFoundError):
            client.file(uploaded.id)
        with pytest.raises(NotFoundError):
            client.download(revoked.link)
        trail = client.events(uploaded.id)
    assert trail.id == uploaded.id
    assert kinds(trail)[0] == "uploaded"
    assert "links_revoked" in kinds(trail)
    assert kinds(trail)[-1] == "deleted"
    assert all(event.at.tzinfo is not None for event in trail.events)
    assert any(event.request_id for event in trail.events)


def test_the_async_client_does_the_same(server: Server, partner: Partner) -> None:
    content = samples.png(seed=302)

    async def lifecycle() -> tuple[Any, bytes, list[str]]:
        async with AsyncBerkasClient(server.url, partner.client_id, partner.secret_key) as client:
            uploaded = await client.upload("LOGO", content)
            revoked = await client.revoke_links(uploaded.id)
            body = await client.download(revoked.link, sha256=revoked.sha256)
            await client.delete(uploaded.id)
            return revoked, body, kinds(await client.events(uploaded.id))

    revoked, body, trail = asyncio.run(lifecycle())
    assert body == content
    assert revoked.link_expires_at is not None
    assert trail[0] == "uploaded"
    assert trail[-1] == "deleted"


def test_another_partners_file_cannot_be_deleted_revoked_or_traced(
    server: Server, partner: Partner
) -> None:
    stranger = server.new_partner()
    with sdk(server, partner) as mine, sdk(server, stranger) as theirs:
        uploaded = mine.upload("LOGO", samples.png(seed=303))
        for call in (theirs.delete, theirs.revoke_links, theirs.events):
            with pytest.raises(NotFoundError) as caught:
                call(uploaded.id)
            assert caught.value.code == "file_not_found"
        assert mine.download(uploaded.link) == samples.png(seed=303)


def test_a_file_on_legal_hold_is_not_deleted(server: Server, partner: Partner) -> None:
    with sdk(server, partner) as client:
        uploaded = client.upload("LOGO", samples.png(seed=304))
        server.cli("files", "hold", uploaded.id)
        with pytest.raises(ConflictError) as caught:
            client.delete(uploaded.id)
        assert caught.value.code == "file_on_hold"
        assert client.file(uploaded.id).legal_hold is True


def test_three_concurrent_async_uploads_on_a_fresh_client_fetch_one_token(
    server: Server, partner: Partner
) -> None:
    before = token_requests(server)

    async def three() -> list[str]:
        async with AsyncBerkasClient(server.url, partner.client_id, partner.secret_key) as client:
            done = await asyncio.gather(
                *(client.upload("LOGO", samples.png(seed=310 + n)) for n in range(3))
            )
        return [uploaded.id for uploaded in done]

    assert len(set(asyncio.run(three()))) == 3
    assert token_requests(server) - before == 1


def test_three_threads_on_a_fresh_blocking_client_fetch_one_token(
    server: Server, partner: Partner
) -> None:
    before = token_requests(server)
    start = threading.Barrier(3)
    ids: list[str] = []
    with sdk(server, partner) as client:

        def upload(seed: int) -> None:
            start.wait()
            ids.append(client.upload("LOGO", samples.png(seed=seed)).id)

        threads = [threading.Thread(target=upload, args=(320 + n,)) for n in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(set(ids)) == 3
    assert token_requests(server) - before == 1


def test_upload_takes_any_case_and_suggests_the_code_meant(
    server: Server, partner: Partner
) -> None:
    with sdk(server, partner) as client:
        uploaded = client.upload("document", samples.pdf(), code="ktp")
        assert (uploaded.category, uploaded.code) == ("DOCUMENT", "KTP")

        before = answered(server, "POST", "/file")
        with pytest.raises(InvalidRequestError) as caught:
            client.upload("DOCUMENT", samples.pdf(), code="KTPP")
        assert caught.value.code == "code_invalid"
        assert caught.value.message == "code 'KTPP' is not a document code; did you mean KTP?"
        with pytest.raises(InvalidRequestError) as caught:
            client.upload("documents", samples.pdf(), code="KTP")
        assert caught.value.message.endswith("did you mean DOCUMENT?")
        # Refused before sending: the server never saw either.
        assert answered(server, "POST", "/file") == before

    # A raw wire call is case-sensitive, as DOKU's is; the answer says what was meant.
    answer = partner.upload(samples.pdf(), category="DOCUMENT", code="ktp")
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "code_invalid"
    assert (
        'code "ktp" is not a document code; did you mean KTP?'
        in (answer.json()["error"]["message"])
    )


# -- berkas partner --------------------------------------------------------------------


@pytest.fixture
def env(server: Server, partner: Partner, tmp_path: Path) -> dict[str, str]:
    return {
        "BERKAS_CLIENT_BASE_URL": server.url,
        "BERKAS_CLIENT_ID": partner.client_id,
        "BERKAS_CLIENT_SECRET": partner.secret_key,
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
    }


def run(env: Mapping[str, str | None], *args: str) -> Result:
    return CliRunner().invoke(main, ["partner", *args], env=env)


def ok(env: Mapping[str, str | None], *args: str) -> Any:
    result = run(env, *args)
    assert result.exit_code == 0, result.output + result.stderr
    return json.loads(result.stdout)


def upload(env: Mapping[str, str | None], tmp_path: Path, content: bytes) -> Any:
    source = tmp_path / "logo.png"
    source.write_bytes(content)
    return ok(env, "upload", "--category", "logo", str(source))


def test_partner_events_revoke_links_and_delete(env: dict[str, str], tmp_path: Path) -> None:
    content = samples.png(seed=330)
    uploaded = upload(env, tmp_path, content)

    revoked = ok(env, "revoke-links", uploaded["id"])
    assert revoked["id"] == uploaded["id"]
    assert httpx.get(uploaded["link"], timeout=30).status_code == 403
    assert httpx.get(revoked["link"], timeout=30).content == content

    assert ok(env, "delete", uploaded["id"]) == {"id": uploaded["id"], "deleted": True}
    gone = run(env, "file", uploaded["id"])
    assert gone.exit_code == 1
    assert gone.stderr.startswith("file_not_found: ")

    trail = ok(env, "events", uploaded["id"])
    assert trail["id"] == uploaded["id"]
    trail_kinds = [e["kind"] for e in trail["events"]]
    assert (trail_kinds[0], trail_kinds[-1]) == ("uploaded", "deleted")
    assert set(trail["events"][0]) == {
        "kind",
        "at",
        "ip",
        "user_agent",
        "detail",
        "request_id",
        "actor",
    }
    assert trail["events"][0]["at"].endswith("Z")

    missing = run(env, "events", "DCM-0001-0000000000000", "--json")
    assert missing.exit_code == 1
    assert json.loads(missing.stdout)["error"]["code"] == "file_not_found"


def test_two_cli_calls_share_one_token_kept_0600(
    server: Server, env: dict[str, str], tmp_path: Path
) -> None:
    uploaded = upload(env, tmp_path, samples.png(seed=331))  # the first signs a token
    before = token_requests(server)

    ok(env, "file", uploaded["id"])
    ok(env, "events", uploaded["id"])

    assert token_requests(server) == before
    (kept,) = (tmp_path / "xdg" / "berkas" / "tokens").iterdir()
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert stat.S_IMODE(kept.parent.stat().st_mode) == 0o700
    assert env["BERKAS_CLIENT_SECRET"] not in kept.read_text()

    # Opting out signs a token per command, by flag or by environment.
    ok(env, "file", uploaded["id"], "--no-token-cache")
    ok({**env, "BERKAS_CLIENT_TOKEN_CACHE": "off"}, "file", uploaded["id"])
    assert token_requests(server) == before + 2


def test_a_corrupt_or_exposed_token_file_is_replaced(
    server: Server, env: dict[str, str], tmp_path: Path
) -> None:
    uploaded = upload(env, tmp_path, samples.png(seed=332))
    (kept,) = (tmp_path / "xdg" / "berkas" / "tokens").iterdir()

    kept.write_text("{not json")
    before = token_requests(server)
    ok(env, "file", uploaded["id"])
    assert token_requests(server) == before + 1
    assert json.loads(kept.read_text())["token"].count(".") == 2
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600

    # Readable by others: not trusted to have stayed private, so not used.
    os.chmod(kept, 0o644)
    ok(env, "file", uploaded["id"])
    assert token_requests(server) == before + 2
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    ok(env, "file", uploaded["id"])
    assert token_requests(server) == before + 2


def test_a_cached_token_is_not_used_with_another_secret_or_client(
    server: Server, env: dict[str, str], tmp_path: Path
) -> None:
    uploaded = upload(env, tmp_path, samples.png(seed=333))
    wrong = run({**env, "BERKAS_CLIENT_SECRET": "SK-wrong"}, "file", uploaded["id"])
    assert wrong.exit_code == 1
    assert wrong.stderr.startswith("signature_invalid: ")

    other = server.new_partner()
    theirs = run(
        {**env, "BERKAS_CLIENT_ID": other.client_id, "BERKAS_CLIENT_SECRET": other.secret_key},
        "file",
        uploaded["id"],
    )
    assert theirs.exit_code == 1
    assert theirs.stderr.startswith("file_not_found: ")


def test_an_expired_token_file_is_replaced(
    server: Server, env: dict[str, str], tmp_path: Path
) -> None:
    uploaded = upload(env, tmp_path, samples.png(seed=334))
    (kept,) = (tmp_path / "xdg" / "berkas" / "tokens").iterdir()
    document = json.loads(kept.read_text())
    kept.write_text(json.dumps({**document, "refresh_at": 1.0}))
    before = token_requests(server)

    ok(env, "file", uploaded["id"])

    assert token_requests(server) == before + 1
    assert json.loads(kept.read_text())["refresh_at"] > 1.0


def test_the_cli_suggests_the_code_meant(env: dict[str, str], tmp_path: Path) -> None:
    source = tmp_path / "ktp.pdf"
    source.write_bytes(samples.pdf())
    ok(env, "upload", "--category", "document", "--code", "ktp", str(source))

    result = run(env, "upload", "--category", "DOCUMENT", "--code", "KTPP", str(source))
    assert result.exit_code == 2
    assert "'KTPP' is not one of the 36 codes. Did you mean KTP?" in result.stderr
    assert "NPWP_BADAN" not in result.stderr


def test_a_kept_token_the_server_refuses_is_renewed_and_replaced(
    server: Server, env: dict[str, str], tmp_path: Path
) -> None:
    # A token file from before the server's signing keys changed (a restore, a rebuilt
    # data dir): the next command is refused once, signs a new token, and keeps that one.
    uploaded = upload(env, tmp_path, samples.png(seed=335))
    (kept,) = (tmp_path / "xdg" / "berkas" / "tokens").iterdir()
    document = json.loads(kept.read_text())
    head, claims, _signature = document["token"].split(".")
    refused = f"{head}.{claims}.{'A' * 342}"
    kept.write_text(json.dumps({**document, "token": refused}))
    before = token_requests(server)

    assert ok(env, "file", uploaded["id"])["id"] == uploaded["id"]

    assert token_requests(server) == before + 1
    renewed = json.loads(kept.read_text())["token"]
    assert renewed not in (refused, document["token"])
    ok(env, "events", uploaded["id"])  # the renewed token is the one kept
    assert token_requests(server) == before + 1
