"""File Requirements answered from bytes built at start (docs/design.md 2.3)."""

from __future__ import annotations

import json

import pytest

from berkas.core.catalogue import Catalogue
from berkas.core.errors import InvalidRequest
from berkas.services.requirements import RequirementsService


def query(kind: str, entity: str, line: str, nationality: str) -> dict[str, str]:
    return {
        "businessType": kind,
        "businessLegalEntity": entity,
        "brandBusinessLine": line,
        "businessContactNationality": nationality,
    }


def test_every_prebuilt_answer_is_the_catalogue_s_body() -> None:
    catalogue = Catalogue.load()
    service = RequirementsService(catalogue)
    checked = 0
    for kind, entity, line, foreign in catalogue.answers():
        for nationality in ("SG", "JP") if foreign else ("ID",):
            try:
                body = catalogue.requirements(kind.value, entity, line, nationality)
            except InvalidRequest:
                continue  # a profile that names its nationalities
            answer = service.answer(query(kind.value, entity, line, nationality))
            assert json.loads(answer) == body
            checked += 1
    assert checked > 100


def test_a_bad_query_is_refused_as_the_catalogue_refuses_it() -> None:
    catalogue = Catalogue.load()
    service = RequirementsService(catalogue)
    for bad in (
        query("NOPE", "PERSEORANGAN", "RETAIL", "ID"),
        query("PERSONAL", "NOPE", "RETAIL", "ID"),
        query("PERSONAL", "PERSEORANGAN", "RETAIL", "id"),
    ):
        with pytest.raises(InvalidRequest) as expected:
            catalogue.requirements(*bad.values())
        with pytest.raises(InvalidRequest) as got:
            service.answer(bad)
        assert (got.value.code, str(got.value)) == (expected.value.code, str(expected.value))
