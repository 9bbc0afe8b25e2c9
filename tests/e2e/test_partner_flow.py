"""A partner's whole journey against a real server: token, requirements, upload, link."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import stat
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from berkas.core import signing
from tests.support import samples
from tests.support.errors import assert_error
from tests.support.partner import PREFIX, Partner, until_token_refused
from tests.support.server import Server

ID_RE = re.compile(r"^[A-Z]{3}-\d{4}-\d{13}$")

# httpx's ``files``: (field, (None, text)) for a text field, (field, (name, bytes, type)).
Files = list[tuple[str, tuple[None, str] | tuple[str, bytes, str]]]


def test_token_requirements_upload_and_download(server: Server, partner: Partner) -> None:
    token_response = partner.get_token(valid_time="360")
    assert token_response.status_code == 200, token_response.text
    claims = jwt.decode(token_response.json()["token"], options={"verify_signature": False})
    assert claims["sub"] == "payload"
    assert claims["user"] == {"businessServiceClientId": partner.client_id}
    assert claims["exp"] - claims["iat"] == 360 * 60

    query = (
        "businessType=PERSONAL&businessLegalEntity=PERSEORANGAN&brandBusinessLine=RETAIL"
        "&businessContactNationality=ID"
    )
    requirements = partner.signed("GET", f"{PREFIX}/file?{query}", None)
    assert requirements.status_code == 200, requirements.text
    contact = requirements.json()["business"]["contact"]
    assert [d["code"] for d in contact["documents"]] == ["KTP"]

    # DOKU accepts a KTP as PDF, JPG or PNG; each arrives as DOCUMENT/KTP (issue 2).
    category, code = "DOCUMENT", "KTP"
    uploads = [
        (samples.jpeg(320, 200), "ktp.jpg", "image/jpeg"),
        (samples.png(100, 80), "ktp.png", "image/png"),
        (samples.pdf(), "ktp.pdf", "application/pdf"),
    ]
    for content, filename, mime in uploads:
        response = partner.upload(content, category=category, code=code, filename=filename)
        assert response.status_code == 200, response.text
        body = response.json()
        assert list(body)[:3] == ["id", "link", "category"]
        assert ID_RE.match(body["id"])
        assert body["id"].startswith("DCM-0001-")
        assert body["category"] == category
        assert body["sha256"] == samples.sha256(content)

        download = httpx.get(body["link"], timeout=30)
        assert download.status_code == 200
        assert hashlib.sha256(download.content).hexdigest() == samples.sha256(content)
        assert download.headers["content-type"] == mime
        assert download.headers["cache-control"] == "private, no-store"
        assert download.headers["x-content-type-options"] == "nosniff"

        meta = httpx.get(f"{server.url}{PREFIX}/file/{body['id']}", headers=partner.auth())
        assert meta.status_code == 200, meta.text
        assert meta.json()["sha256"] == samples.sha256(content)
        assert meta.json()["category"] == category
        assert meta.json()["code"] == code
        assert httpx.get(meta.json()["link"]).content == content


@pytest.mark.parametrize(
    ("content", "filename", "mime", "extension"),
    [
        (samples.png(64, 48), "photo.jpg", "image/png", "png"),
        (samples.jpeg(64, 48), "IMG_0001.PNG", "image/jpeg", "jpg"),
        (samples.pdf(), "scan.jpeg", "application/pdf", "pdf"),
    ],
)
def test_the_bytes_decide_the_type_whatever_the_file_is_called(
    partner: Partner, content: bytes, filename: str, mime: str, extension: str
) -> None:
    # DESIGN 2.4: phones and scanners name files as they please; the stored type, the
    # key's extension and the served Content-Type all follow the bytes.
    response = partner.upload(content, category="DOCUMENT", code="KTP", filename=filename)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["content_type"] == mime
    download = httpx.get(body["link"], timeout=30)
    assert download.headers["content-type"] == mime
    assert download.content == content
    assert download.headers["content-disposition"] == f'inline; filename="{body["id"]}.{extension}"'


def test_owner_liveness_gets_cnt_prefix(partner: Partner) -> None:
    response = partner.upload(samples.jpeg(), category="OWNER_LIVENESS", code=None)
    assert response.status_code == 200, response.text
    assert response.json()["id"].startswith("CNT-")


def test_tampered_and_malformed_links_are_refused(partner: Partner) -> None:
    response = partner.upload(samples.jpeg(), category="PHOTO_PROOF", code=None)
    link = response.json()["link"]
    url = httpx.URL(link)
    signature = url.params["signature"]
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    expires = int(url.params["expires"])
    cases = {
        "signature": str(url.copy_set_param("signature", flipped)),
        "expiry": str(url.copy_set_param("expires", str(expires + 3600))),
        "key": link.replace(".jpg?", ".png?"),
        "no signature": str(url.copy_remove_param("signature")),
        "expired": str(url.copy_set_param("expires", str(int(time.time()) - 10))),
    }
    for name, tampered in cases.items():
        refused = httpx.get(tampered)
        # Each is a tampered or malformed link; even "expired" is, since the signature
        # covers the expiry and is checked first (berkas.core.links).
        assert assert_error(refused, 403, "link_invalid")["type"] == "permission_error", name
        assert refused.headers["content-type"] == "application/json"


def _public_pem(server: Server) -> bytes:
    jwks = httpx.get(f"{server.url}/.well-known/jwks.json").json()
    key = jwt.PyJWK(jwks["keys"][0]).key
    assert isinstance(key, rsa.RSAPublicKey), key
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(partner: Partner, exp_offset: int) -> dict[str, object]:
    now = int(time.time())
    return {
        "sub": "payload",
        "iat": now - 7200,
        "exp": now + exp_offset,
        "user": {"businessServiceClientId": partner.client_id},
    }


def test_forged_tokens_are_refused(server: Server, partner: Partner) -> None:
    kid = httpx.get(f"{server.url}/.well-known/jwks.json").json()["keys"][0]["kid"]
    claims = _claims(partner, 3600)
    payload = _b64(json.dumps(claims).encode())

    none_header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode())
    alg_none = f"{none_header}.{payload}."

    hs_header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    signing_input = f"{hs_header}.{payload}".encode()
    mac = hmac.new(_public_pem(server), signing_input, hashlib.sha256).digest()
    hs256_with_public_key = f"{hs_header}.{payload}.{_b64(mac)}"

    # The server's own private key (opened with its master key), to forge only the expiry.
    private = server.signing_key()
    expired = jwt.encode(_claims(partner, -3600), private, algorithm="RS256", headers={"kid": kid})
    wrong_kid = jwt.encode(claims, private, algorithm="RS256", headers={"kid": "not-a-key"})

    for token, code in [
        (alg_none, "token_algorithm_not_allowed"),
        (hs256_with_public_key, "token_algorithm_not_allowed"),
        (expired, "token_expired"),
        (wrong_kid, "token_key_unknown"),
        ("not.a.jwt", "token_malformed"),
    ]:
        response = partner.upload(samples.jpeg(), category="LOGO", token=token)
        error = assert_error(response, 401, code)
        assert error["type"] == "authentication_error", code


def test_disabled_client_loses_tokens_it_already_has(server: Server) -> None:
    partner = server.new_partner()
    token = partner.token
    assert (
        partner.upload(samples.png(), category="LOGO", code=None, filename="l.png").status_code
        == 200
    )
    server.cli("clients", "disable", partner.client_id)
    until_token_refused(server.http, token)  # the client cache's bound (docs/design.md 2.1)
    response = partner.upload(
        samples.png(), category="LOGO", code=None, filename="l.png", token=token
    )
    assert_error(response, 401, "client_disabled")
    refused = partner.get_token()
    assert_error(refused, 401, "client_disabled")


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"category": "DOCUMENT", "code": None}, "code_missing"),
        ({"category": "DOCUMENT", "code": "NOT_A_CODE"}, "code_invalid"),
        ({"category": "SELFIE", "code": None}, "category_invalid"),
    ],
)
def test_bad_fields_are_400(partner: Partner, fields: dict[str, str | None], code: str) -> None:
    response = partner.upload(samples.jpeg(), **fields)  # type: ignore[arg-type]
    error = assert_error(response, 400, code)
    assert error["type"] == "invalid_request_error"


def test_file_and_url_both_or_neither_is_400(partner: Partner) -> None:
    both = partner.upload(samples.jpeg(), file_url="https://example.com/a.jpg")
    neither = partner.upload(None)
    for response in (both, neither):
        assert_error(response, 400, "file_or_url_required")


def test_other_partners_file_is_404(server: Server, partner: Partner) -> None:
    mine = partner.upload(samples.jpeg(), category="PHOTO_PROOF", code=None).json()["id"]
    other = server.new_partner()
    response = httpx.get(f"{server.url}{PREFIX}/file/{mine}", headers=other.auth())
    missing = httpx.get(f"{server.url}{PREFIX}/file/DCM-0001-0000000000000", headers=other.auth())
    foreign = assert_error(response, 404, "file_not_found")
    # Someone else's file is indistinguishable from no file at all, message aside.
    assert foreign == {
        **assert_error(missing, 404, "file_not_found"),
        "message": foreign["message"],
    }


def _peak_rss(pid: int) -> int:
    """The process's resident high-water mark (VmHWM), in bytes; Linux only."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024  # reported in kB
    raise AssertionError(f"no VmHWM in /proc/{pid}/status")


# How far the server's peak RSS may rise while it takes a 14 MB or a 40 MB body: streamed
# to the spool, it stays near a few read buffers plus a small image's decode; a body held
# whole in memory would add its own size.
PEAK_GROWTH_LIMIT = 8 * 1024 * 1024


def test_big_uploads_leave_server_peak_memory_flat(server: Server, partner: Partner) -> None:
    # VmHWM only ever rises, so the baseline comes after a warm-up upload (pools, caches
    # and the first decode are then already in it), and the warm-up must be small: a big
    # one would lift the mark past the very growth this test looks for.
    warm = partner.upload(samples.jpeg(), category="LOGO", code=None)
    assert warm.status_code == 200, warm.text
    baseline = _peak_rss(server.pid)

    accepted = samples.big_jpeg(14 * 1024 * 1024)
    stored = partner.upload(accepted, category="LOGO", code=None, filename="big.jpg")
    assert stored.status_code == 200, stored.text
    assert stored.json()["sha256"] == samples.sha256(accepted)
    growth = _peak_rss(server.pid) - baseline
    assert growth < PEAK_GROWTH_LIMIT, f"peak RSS rose {growth / 1e6:.1f} MB for a 14 MB body"

    oversize = samples.jpeg() + b"\0" * (40 * 1024 * 1024)
    refused = partner.upload(oversize, category="LOGO", code=None, filename="huge.jpg")
    assert "15 MB" in assert_error(refused, 413, "file_too_large")["message"]
    growth = _peak_rss(server.pid) - baseline
    assert growth < PEAK_GROWTH_LIMIT, f"peak RSS rose {growth / 1e6:.1f} MB for a 40 MB body"
    assert not list((server.data_dir / "spool").glob("*"))


def test_request_id_replay(partner: Partner) -> None:
    body = json.dumps({"grant_type": "client_credentials", "valid_time": "10"}).encode()
    first = partner.signed("POST", f"{PREFIX}/token", body, request_id="replay-1")
    again = partner.signed("POST", f"{PREFIX}/token", body, request_id="replay-1")
    assert first.status_code == 200
    assert again.status_code == 409
    assert again.content == first.content
    other_body = json.dumps({"grant_type": "client_credentials", "valid_time": "11"}).encode()
    different = partner.signed("POST", f"{PREFIX}/token", other_body, request_id="replay-1")
    assert_error(different, 409, "request_id_reused")


def test_bad_signature_and_stale_timestamp_are_401(server: Server, partner: Partner) -> None:
    impostor = Partner(server.http, partner.client_id, "SK-wrong-secret")
    forged = assert_error(impostor.get_token(), 401, "signature_invalid")
    # An unknown Client-Id is indistinguishable from a forged signature.
    unknown = Partner(server.http, "BRN-9999-00000000000000", "SK-x")
    assert assert_error(unknown.get_token(), 401, "signature_invalid") == forged

    # Correctly signed by the real client, but ten minutes old: a captured request replayed.
    body = json.dumps({"grant_type": "client_credentials", "valid_time": "10"}).encode()
    path = f"{PREFIX}/token"
    headers = signing.signed_headers(
        client_id=partner.client_id,
        secret_key=partner.secret_key,
        target=path,
        body=body,
        timestamp=datetime.now(UTC) - timedelta(minutes=10),
    )
    stale = httpx.post(
        server.url + path,
        content=body,
        headers={**headers, "Content-Type": "application/json"},
    )
    assert_error(stale, 401, "timestamp_out_of_window")


def test_health_docs_and_jwks(server: Server) -> None:
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{server.url}/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    spec = httpx.get(f"{server.url}/openapi.json").json()
    upload = spec["paths"][f"{PREFIX}/file"]["post"]
    fields = upload["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    assert {"category", "code", "file", "file_url"} <= set(fields)
    token_headers = {p["name"] for p in spec["paths"][f"{PREFIX}/token"]["post"]["parameters"]}
    assert token_headers == {"Client-Id", "Request-Id", "Request-Timestamp", "Signature"}
    assert httpx.get(f"{server.url}/docs").status_code == 200
    keys = httpx.get(f"{server.url}/.well-known/jwks.json").json()["keys"]
    assert keys
    assert all(k["alg"] == "RS256" and k["kty"] == "RSA" for k in keys)


def test_unknown_route_uses_the_envelope(server: Server) -> None:
    assert_error(httpx.get(f"{server.url}/nope"), 404, "not_found")


def test_no_secret_is_kept_in_a_file_of_its_own_and_the_master_key_is_private(
    server: Server, partner: Partner
) -> None:
    # Signing keys and the link secret live in the database, sealed (DESIGN 5); only the
    # master key that opens them is a file, when no BERKAS_MASTER_KEY is given.
    assert not (server.data_dir / "keys").exists()
    assert not (server.data_dir / "link-secret").exists()
    master_key = server.data_dir / "master-key"
    assert stat.S_IMODE(master_key.stat().st_mode) == 0o600
    assert partner.get_token().status_code == 200


def test_metrics_count_requests_by_route_template(server: Server, partner: Partner) -> None:
    httpx.get(f"{server.url}/healthz")
    httpx.get(f"{server.url}{PREFIX}/file/DCM-0001-0000000000000", headers=partner.auth())
    text = httpx.get(f"{server.metrics_url}/metrics").text
    assert 'berkas_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert f'route="{PREFIX}/file/{{file_id}}",status="404"' in text
    assert "DCM-0001-0000000000000" not in text


def test_metrics_are_served_on_their_own_listener_only(server: Server, partner: Partner) -> None:
    # The partner-facing port has no /metrics (counts and client ids are for the
    # monitoring network); the metrics port serves the metrics and the probes only.
    assert_error(httpx.get(f"{server.url}/metrics"), 404, "not_found")
    assert httpx.get(f"{server.metrics_url}/healthz").status_code == 200
    assert httpx.get(f"{server.metrics_url}/readyz").status_code == 200
    refused = httpx.get(f"{server.metrics_url}{PREFIX}/file/x", headers=partner.auth())
    assert_error(refused, 404, "not_found")
    assert_error(httpx.get(f"{server.metrics_url}/docs"), 404, "not_found")


def test_upload_with_idempotency_key_is_stored_once(server: Server, partner: Partner) -> None:
    content = samples.jpeg(70, 50, seed=99)
    headers = {**partner.auth(), "Idempotency-Key": "ktp-upload-0001"}
    parts: Files = [("category", (None, "PHOTO_PROOF")), ("file", ("p.jpg", content, "image/jpeg"))]
    url = f"{server.url}{PREFIX}/file"
    first = httpx.post(url, files=parts, headers=headers)
    again = httpx.post(url, files=parts, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert httpx.get(again.json()["link"]).content == content

    other: Files = [
        ("category", (None, "PHOTO_PROOF")),
        ("file", ("q.jpg", samples.jpeg(), "image/jpeg")),
    ]
    reused = httpx.post(url, files=other, headers=headers)
    assert_error(reused, 409, "idempotency_key_reused")

    # A refused upload is not remembered: fixing the request and retrying with the key works.
    bad: Files = [("category", (None, "LOGO")), ("file", ("x.jpg", b"<html></html>", "image/jpeg"))]
    key = {**partner.auth(), "Idempotency-Key": "logo-0001"}
    assert httpx.post(url, files=bad, headers=key).status_code == 415
    good: Files = [("category", (None, "LOGO")), ("file", ("x.jpg", content, "image/jpeg"))]
    assert httpx.post(url, files=good, headers=key).status_code == 200


def test_upload_request_id_works_as_an_idempotency_key(server: Server, partner: Partner) -> None:
    # DOKU partners send a Request-Id on every call; on POST /file it makes retries safe
    # just as Idempotency-Key does (DESIGN 3).
    content = samples.jpeg(60, 40, seed=123)
    parts: Files = [("category", (None, "PHOTO_PROOF")), ("file", ("r.jpg", content, "image/jpeg"))]
    headers = {**partner.auth(), "Request-Id": "upload-by-request-id-0001"}
    url = f"{server.url}{PREFIX}/file"
    first = httpx.post(url, files=parts, headers=headers)
    again = httpx.post(url, files=parts, headers=headers)
    assert first.status_code == again.status_code == 200, (first.text, again.text)
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers

    other: Files = [
        ("category", (None, "PHOTO_PROOF")),
        ("file", ("s.jpg", samples.jpeg(), "image/jpeg")),
    ]
    reused = httpx.post(url, files=other, headers=headers)
    assert_error(reused, 409, "idempotency_key_reused")

    longest = {**partner.auth(), "Idempotency-Key": "k" * 128}
    assert httpx.post(url, files=parts, headers=longest).status_code == 200
    for name in ("Idempotency-Key", "Request-Id"):
        too_long = httpx.post(url, files=parts, headers={**partner.auth(), name: "k" * 129})
        assert name in assert_error(too_long, 400, "invalid_idempotency_key")["message"]


def test_head_works_on_links_and_health(server: Server, partner: Partner) -> None:
    content = samples.png(30, 20)
    link = partner.upload(content, category="LOGO", code=None, filename="h.png").json()["link"]
    head = httpx.head(link)
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(content))
    assert head.content == b""
    assert httpx.head(f"{server.url}/healthz").status_code == 200
    assert httpx.head(f"{server.url}/readyz").status_code == 200
