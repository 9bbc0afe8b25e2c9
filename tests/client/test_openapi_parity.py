"""The SDK and ``berkas partner`` keep up with the API: walks the app's OpenAPI document
and fails when a partner operation has no SDK method (blocking and async) and no CLI
verb, or when a response field has no field in the SDK model that carries it.

A new route must be added to ``PARTNER_OPERATIONS`` (with its method and verb) or to
``NOT_PARTNER`` (with why a partner never calls it); an unlisted one fails here.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterator
from typing import Any

import pytest

from berkas.api.app import create_app
from berkas.cli.partner import partner
from berkas.client import AsyncBerkasClient, BerkasClient, models
from berkas.client.models import (
    DryRunResult,
    FileEvent,
    FileEvents,
    FileInfo,
    Token,
    UploadedFile,
)
from berkas.config import load_settings
from berkas.core.wire import API_PREFIX
from berkas.wiring import prepare

Operation = tuple[str, str]  # (method, path) as the document spells them

# Every operation a partner calls: its SDK method (on both clients) and its CLI verb.
PARTNER_OPERATIONS: dict[Operation, tuple[str, str]] = {
    ("post", f"{API_PREFIX}/token"): ("token", "token"),
    ("get", f"{API_PREFIX}/file"): ("requirements", "requirements"),
    ("post", f"{API_PREFIX}/file"): ("upload", "upload"),
    ("get", f"{API_PREFIX}/file/{{file_id}}"): ("file", "file"),
    ("get", f"{API_PREFIX}/file/{{file_id}}/events"): ("events", "events"),
    ("delete", f"{API_PREFIX}/file/{{file_id}}"): ("delete", "delete"),
    ("post", f"{API_PREFIX}/file/{{file_id}}/links/revoke"): ("revoke_links", "revoke-links"),
    ("get", "/links/{key}"): ("download", "download"),
    ("get", f"{API_PREFIX}/files"): ("list_files", "files"),
}
# Rows whose route may not be in this tree yet, and why: skipped, not failed, without it.
# (None today: GET /files, the last one, is merged.)
PENDING: dict[Operation, str] = {}
# Operations no partner integration calls, and who does.
NOT_PARTNER: dict[Operation, str] = {
    ("get", "/.well-known/jwks.json"): "public keys, for whoever verifies tokens",
    ("get", "/healthz"): "liveness, for the load balancer and the service manager",
    ("get", "/readyz"): "readiness, for the load balancer",
    ("get", "/metrics"): "Prometheus, for the operator's scraper",
}

# The SDK model carrying each named response schema.
MODELS: dict[str, type[Any]] = {
    "TokenResponse": Token,
    "UploadResponse": UploadedFile,
    "DryRunResponse": DryRunResult,
    "FileMetadata": FileInfo,
    "FileEvents": FileEvents,
    "Event": FileEvent,
}
# Wire fields an SDK model states another way, and how.
STATED_OTHERWISE: dict[tuple[str, str], str] = {
    ("DryRunResponse", "dry_run"): "the type: check() returns a DryRunResult, and "
    "parse_dry_run refuses an answer without dry_run: true",
}
# A page of a list ({"data": [...], "has_more": ...}) is the SDK iterator's business: its
# items are checked against the model the iterator yields.
PAGE = {"data", "has_more"}


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    services = prepare(load_settings(data_dir=tmp_path_factory.mktemp("parity")), serving=False)
    try:
        return create_app(services).openapi()
    finally:
        services.close()


def operations(spec: dict[str, Any]) -> set[Operation]:
    return {(method, path) for path, item in spec["paths"].items() for method in item}


def test_every_operation_is_a_partner_one_or_said_not_to_be(spec: dict[str, Any]) -> None:
    unlisted = operations(spec) - set(PARTNER_OPERATIONS) - set(NOT_PARTNER)
    assert not unlisted, (
        f"{sorted(unlisted)}: add each to PARTNER_OPERATIONS with its SDK method and "
        "`berkas partner` verb, or to NOT_PARTNER with why no partner calls it"
    )
    # A table that names what is not there is a table nobody reads.
    stale = (set(PARTNER_OPERATIONS) | set(NOT_PARTNER)) - operations(spec) - set(PENDING)
    stale.discard(("get", "/metrics"))  # served by the metrics listener when it has one
    assert not stale, f"{sorted(stale)} are listed here but not in the document"


@pytest.mark.parametrize("operation", list(PARTNER_OPERATIONS), ids=" ".join)
def test_each_partner_operation_has_sdk_methods_and_a_cli_verb(
    spec: dict[str, Any], operation: Operation
) -> None:
    if operation in PENDING and operation not in operations(spec):
        pytest.skip(PENDING[operation])
    method, verb = PARTNER_OPERATIONS[operation]
    assert callable(getattr(BerkasClient, method, None)), f"BerkasClient.{method}"
    assert callable(getattr(AsyncBerkasClient, method, None)), f"AsyncBerkasClient.{method}"
    assert verb in partner.commands, f"berkas partner {verb}"


@pytest.mark.parametrize("operation", list(PARTNER_OPERATIONS), ids=" ".join)
def test_each_response_field_has_a_field_in_the_sdk_model(
    spec: dict[str, Any], operation: Operation
) -> None:
    if operation not in operations(spec):
        assert operation in PENDING, f"{operation} is not in the document"
        pytest.skip(PENDING[operation])
    method, path = operation
    responses = spec["paths"][path][method]["responses"]
    returned = returned_models(getattr(BerkasClient, PARTNER_OPERATIONS[operation][0], None))
    missing: list[str] = []
    for status, response in responses.items():
        if not status.startswith("2"):
            continue
        schema = response.get("content", {}).get("application/json", {}).get("schema")
        for name, properties in named_objects(spec, schema or {}):
            model = (
                MODELS.get(name)
                or carrier(properties, returned)
                or carrier(properties, every_model())
            )
            assert model is not None, (
                f"{name} ({', '.join(sorted(properties))}) has no SDK model: add it to "
                f"MODELS, or have {PARTNER_OPERATIONS[operation][0]}() return one"
            )
            fields = {field.name for field in dataclasses.fields(model)}
            missing += [
                f"{name}.{field} -> {model.__name__}"
                for field in properties
                if field not in fields and (name, field) not in STATED_OTHERWISE
            ]
    assert not missing, f"response fields without an SDK model field: {missing}"


def named_objects(spec: dict[str, Any], schema: dict[str, Any]) -> Iterator[tuple[str, set[str]]]:
    """(schema name, property names) of every object schema an answer can carry, nested
    ones included; a page's own fields are left to the iterator."""
    seen: set[str] = set()

    def walk(node: Any, name: str) -> Iterator[tuple[str, set[str]]]:
        if not isinstance(node, dict):
            return
        if "$ref" in node:
            ref = node["$ref"].rsplit("/", 1)[-1]
            if ref not in seen:
                seen.add(ref)
                yield from walk(spec["components"]["schemas"][ref], ref)
            return
        for key in ("anyOf", "oneOf", "allOf"):
            for option in node.get(key, []):
                yield from walk(option, name)
        if "items" in node:
            yield from walk(node["items"], name)
        properties = node.get("properties", {})
        if properties and set(properties) != PAGE:
            yield name, set(properties)
        for child in properties.values():
            yield from walk(child, name)

    yield from walk(schema, "(inline)")


def returned_models(method: Any) -> list[type[Any]]:
    """The dataclasses ``method``'s return annotation reaches ([] if it cannot be read)."""
    try:
        return sdk_models(typing.get_type_hints(method)["return"])
    except (NameError, KeyError, TypeError):  # a name imported for type checking only
        return []


def every_model() -> list[type[Any]]:
    """Every dataclass the SDK's models module defines."""
    return [
        kind
        for kind in vars(models).values()
        if isinstance(kind, type) and dataclasses.is_dataclass(kind)
    ]


def sdk_models(annotation: Any) -> list[type[Any]]:
    """The dataclasses a method's return annotation reaches (through generics, e.g. an
    iterator of pages' items, and through the dataclasses' own fields)."""
    found: list[type[Any]] = []

    def visit(kind: Any) -> None:
        if dataclasses.is_dataclass(kind) and isinstance(kind, type):
            if kind not in found:
                found.append(kind)
                for hint in typing.get_type_hints(kind).values():
                    visit(hint)
            return
        for argument in typing.get_args(kind):
            visit(argument)

    visit(annotation)
    return found


def carrier(properties: set[str], models: list[type[Any]]) -> type[Any] | None:
    """The model among ``models`` sharing most fields with ``properties`` (None: none)."""
    scored = [
        (len(properties & {f.name for f in dataclasses.fields(m)}), m.__name__, m) for m in models
    ]
    best = max(scored, default=None)
    return best[2] if best is not None and best[0] else None
