"""The OpenAPI document at /docs describes the DOKU endpoints as they really behave."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from berkas.api import openapi
from berkas.api.app import create_app
from berkas.config import load_settings
from berkas.core.catalogue import Catalogue
from berkas.core.wire import API_PREFIX
from berkas.wiring import prepare

PREFIX = API_PREFIX


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    services = prepare(load_settings(data_dir=tmp_path_factory.mktemp("openapi")), serving=False)
    try:
        # Built with warnings as errors (pytest config): duplicate operation ids would fail.
        return create_app(services).openapi()
    finally:
        services.close()


def test_requirements_document_doku_example_and_signed_headers(spec: dict[str, Any]) -> None:
    operation = spec["paths"][f"{PREFIX}/file"]["get"]
    example = operation["responses"]["200"]["content"]["application/json"]["example"]
    contact = example["business"]["contact"]
    assert contact["documents"][0]["code"] == "KTP"
    assert contact["documents"][0]["form"][0]["code"] == "NO_KTP"
    names = {p["name"] for p in operation["parameters"]}
    assert {"Client-Id", "Request-Id", "Request-Timestamp", "Signature"} <= names
    assert {"businessType", "businessLegalEntity", "brandBusinessLine"} <= names


def test_upload_documents_every_category_and_the_error_envelope(spec: dict[str, Any]) -> None:
    operation = spec["paths"][f"{PREFIX}/file"]["post"]
    schema = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert schema["properties"]["file"]["format"] == "binary"
    assert "DOCUMENT" in schema["properties"]["category"]["enum"]
    for status in ("400", "401", "413", "415", "422", "429"):
        assert status in operation["responses"]


def test_head_routes_stay_out_of_the_schema(tmp_path: Path) -> None:
    services = prepare(load_settings(data_dir=tmp_path), serving=False)
    try:
        paths = create_app(services).openapi()["paths"]
    finally:
        services.close()
    assert "head" not in paths["/healthz"]
    assert set(paths["/links/{key}"]) == {"get"}


def test_the_documented_example_is_what_the_packaged_catalogue_answers() -> None:
    # The example is DOKU's published answer (DESIGN 2.3), kept as data in the schema;
    # if the packaged catalogue drifts from it, one of the two is wrong.
    answer = Catalogue.load().requirements("PERSONAL", "PERSEORANGAN", "RETAIL", "ID")
    assert answer == openapi.REQUIREMENTS_EXAMPLE


def test_every_named_security_scheme_is_declared(spec: dict[str, Any]) -> None:
    # A client generator (or a fuzzer) resolves `security` by name; an undeclared one
    # leaves the partner routes looking unauthenticated.
    declared = spec["components"]["securitySchemes"]
    assert declared["bearer"] == {**declared["bearer"], "type": "http", "scheme": "bearer"}
    for path, operations in spec["paths"].items():
        for operation in operations.values():
            for requirement in operation.get("security", []):
                assert set(requirement) <= set(declared), path


def test_links_document_their_query_and_the_bytes_they_answer(spec: dict[str, Any]) -> None:
    operation = spec["paths"]["/links/{key}"]["get"]
    query = {p["name"] for p in operation["parameters"] if p["in"] == "query"}
    assert query == {"expires", "signature"}
    assert set(operation["responses"]["200"]["content"]) == {
        "image/jpeg",
        "image/png",
        "application/pdf",
    }
    assert {"403", "404"} <= set(operation["responses"])


def test_the_token_body_names_its_one_grant_type(spec: dict[str, Any]) -> None:
    operation = spec["paths"][f"{PREFIX}/token"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["grant_type"]["const"] == "client_credentials"


def test_upload_documents_its_optional_retry_keys_and_dry_run(spec: dict[str, Any]) -> None:
    operation = spec["paths"][f"{PREFIX}/file"]["post"]
    headers = {p["name"]: p for p in operation["parameters"] if p["in"] == "header"}
    assert set(headers) == {"Idempotency-Key", "Request-Id", "Berkas-Dry-Run"}
    assert not any(p["required"] for p in headers.values())
    assert headers["Berkas-Dry-Run"]["schema"]["enum"] == ["true", "false"]


def test_the_file_list_documents_its_query_its_page_and_an_example(spec: dict[str, Any]) -> None:
    operation = spec["paths"][f"{PREFIX}/files"]["get"]
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert set(parameters) == {
        "limit",
        "starting_after",
        "ending_before",
        "category",
        "code",
        "created_gte",
        "created_lt",
    }
    assert parameters["limit"]["schema"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 100,
        "default": 10,
    }
    assert "KTP" in parameters["code"]["schema"]["enum"]
    assert operation["security"] == [{"bearer": []}]
    page = operation["responses"]["200"]["content"]["application/json"]
    assert page["schema"] == {"$ref": "#/components/schemas/FileList"}
    item = spec["components"]["schemas"]["FileSummary"]["properties"]
    example = page["example"]
    assert set(example) == {"data", "has_more"}
    # The example has every field an item has, and an item is GET /file/{id} less its link.
    assert set(example["data"][0]) == set(item)
    described = spec["components"]["schemas"]["FileMetadata"]["properties"]
    assert set(item) == set(described) - {"link", "link_expires_at"}
    codes = {
        code
        for status in ("400", "401")
        for code in operation["responses"][status]["content"]["application/json"]["examples"]
    }
    assert {"limit_invalid", "cursor_conflict", "cursor_invalid", "created_invalid"} <= codes
    assert "token_missing" in codes
