"""BERKAS_LINK_MODE=presigned on a throwaway Ceph RGW: the store's own SigV4 URLs, which
the store itself refuses once altered or expired (moto would accept them: not testable
there, ../shared/notes/ceph-rgw.md)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from tests.support import samples
from tests.support.rgw import Rgw
from tests.support.server import Server


@pytest.fixture
def presigned(rgw: Rgw, tmp_path: Path) -> Iterator[tuple[Server, str]]:
    # The public endpoint differs from the nodes' one (localhost vs 127.0.0.1), as a
    # store behind its own public name would: links must be signed for it.
    public = rgw.endpoint.replace("127.0.0.1", "localhost")
    with rgw.bucket() as bucket:
        server = Server(
            data_dir=tmp_path / "data",
            env={
                **rgw.env,
                "BERKAS_STORAGE_URL": f"s3://{bucket}/docs",
                "BERKAS_LINK_MODE": "presigned",
                "BERKAS_S3_PUBLIC_ENDPOINT_URL": public,
                "BERKAS_LINK_TTL_SECONDS": "3",
            },
        )
        server.start()
        try:
            yield server, public
        finally:
            server.stop()


def with_query(url: str, name: str, value: str) -> str:
    parts = urlsplit(url)
    query = [(k, value if k == name else v) for k, v in parse_qsl(parts.query)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def test_a_presigned_link_serves_the_exact_bytes_as_the_sniffed_type_and_no_store(
    presigned: tuple[Server, str],
) -> None:
    server, public = presigned
    partner = server.new_partner()
    content = samples.png(64, 48)
    # Sent as .jpg with a lying part type: the link answers with what the bytes are.
    answer = partner.upload(content, category="DOCUMENT", code="KTP", filename="scan.jpg")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    link = body["link"]
    assert link.startswith(public + "/")  # straight to the store, on its public name

    got = httpx.get(link, timeout=30)

    assert got.status_code == 200, got.text
    assert got.content == content
    assert got.headers["content-type"] == "image/png"
    assert got.headers["cache-control"] == "private, no-store"
    assert got.headers["content-disposition"] == f'inline; filename="{body["id"]}.png"'
    # A fresh link for the id works the same way.
    described = partner.http.request(
        "GET", f"/adv-core-api/partner/v1.0/file/{body['id']}", headers=partner.auth()
    )
    assert httpx.get(described.json()["link"], timeout=30).content == content

    # Every signed value altered is refused by the store itself.
    tampered = {
        "response-content-type": "text/html",
        "response-cache-control": "public, max-age=86400",
        "response-content-disposition": 'attachment; filename="x.html"',
        "X-Amz-Expires": "604800",
        "X-Amz-Date": "20300101T000000Z",
        "X-Amz-Signature": "0" * 64,
    }
    query = dict(parse_qsl(urlsplit(link).query))
    assert set(tampered) <= set(query), query
    for name, value in tampered.items():
        refused = httpx.get(with_query(link, name, value), timeout=30)
        assert refused.status_code == 403, (name, refused.status_code)
    other_key = link.replace(".png?", ".jpg?")
    assert httpx.get(other_key, timeout=30).status_code == 403

    # BERKAS_LINK_TTL_SECONDS=3: after that the store refuses the link.
    time.sleep(4)
    assert httpx.get(link, timeout=30).status_code == 403
