"""POST /file/{id}/links/revoke on a real server, embedded and PostgreSQL + Ceph RGW
(issue 11): every link issued so far answers 403, new links open the exact bytes."""

from __future__ import annotations

import httpx

from tests.support import samples
from tests.support.partner import FILE_PATH, Partner
from tests.support.server import Server


def test_revoked_links_are_refused_and_new_ones_work(server: Server, partner: Partner) -> None:
    content = samples.jpeg(seed=81)
    answer = partner.upload(content).json()
    described = partner.http.request("GET", f"{FILE_PATH}/{answer['id']}", headers=partner.auth())
    old = [answer["link"], described.json()["link"]]
    assert httpx.get(old[0], timeout=30).content == content

    revoked = partner.http.request(
        "POST", f"{FILE_PATH}/{answer['id']}/links/revoke", headers=partner.auth()
    )

    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["id"] == answer["id"]
    for link in old:
        refused = httpx.get(link, timeout=30)
        assert refused.status_code == 403, refused.text
        # Genuine links of an earlier generation: said to be revoked, not altered.
        assert refused.json()["error"]["code"] == "link_revoked"
        assert content not in refused.content
    again = partner.http.request("GET", f"{FILE_PATH}/{answer['id']}", headers=partner.auth())
    for link in (revoked.json()["link"], again.json()["link"]):
        assert httpx.get(link, timeout=30).content == content
    # Another partner cannot revoke it (404, as for an id nobody has); links still work.
    stranger = server.new_partner()
    other = stranger.http.request(
        "POST", f"{FILE_PATH}/{answer['id']}/links/revoke", headers=stranger.auth()
    )
    assert other.status_code == 404
    assert httpx.get(again.json()["link"], timeout=30).content == content
    assert "Traceback" not in server.output()
