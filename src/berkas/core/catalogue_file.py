"""The catalogue file (docs/design.md 2.3): reading ``catalogue.json`` or an operator's file and
validating it into requirement records, every error naming the file and the entry.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from berkas.core.catalogue_types import (
    DEFAULT_MAX_SIZE_MB,
    NATIONALITY,
    BusinessType,
    Category,
    DocumentCode,
    FormField,
    Profile,
    Ref,
    Requirement,
    Sections,
)

_MAX_SIZE_LIMIT_MB = 1024
_VALUE_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
_SECTION_PART = re.compile(r"[a-z][a-z_]*")
_FORM_CODE = re.compile(r"[A-Z][A-Z0-9_]*")


@dataclass(frozen=True, slots=True)
class CatalogueFile:
    """A validated catalogue file: the parts a ``Catalogue`` is built from."""

    default_max_size: int
    home_nationality: str
    requirements: Mapping[Ref, Requirement]
    profiles: Mapping[BusinessType, Profile]
    foreign_contact: Mapping[Ref, tuple[Ref, ...]]


def read_catalogue_file(path: Path | None = None) -> CatalogueFile:
    """Read and validate a catalogue file; ``None`` reads the packaged default.

    A malformed file raises ``ValueError`` naming the file and the bad entry.
    """
    if path is None:
        resource = resources.files("berkas.core").joinpath("catalogue.json")
        source = "berkas/core/catalogue.json"
        text = resource.read_text(encoding="utf-8")
    else:
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{source}: cannot read the catalogue file: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{source}: not valid JSON: {exc}") from exc
    return _Parser(source).catalogue(data)


class _Parser:
    """Validates catalogue JSON; every error names the file and the entry's path."""

    def __init__(self, source: str) -> None:
        self._source = source

    def _fail(self, where: str, problem: str) -> ValueError:
        return ValueError(f"{self._source}: {where}: {problem}")

    def _object(self, value: object, where: str, keys: Sequence[str] = ()) -> dict[str, object]:
        if not isinstance(value, dict):
            raise self._fail(where, f"expected a JSON object, got {type(value).__name__}")
        if keys:
            # Keys starting with "_" are comments; any other unknown key is a typo.
            unknown = [k for k in value if k not in keys and not k.startswith("_")]
            if unknown:
                raise self._fail(
                    where, f"unknown key {unknown[0]!r}; expected keys: {', '.join(keys)}"
                )
        return {k: v for k, v in value.items() if not k.startswith("_")}

    def _list(self, value: object, where: str) -> list[object]:
        if not isinstance(value, list):
            raise self._fail(where, f"expected a JSON array, got {type(value).__name__}")
        return value

    def _int(self, value: object, where: str, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self._fail(where, f"expected an integer from {low} to {high}, got {value!r}")
        return value

    def _str(self, value: object, where: str, pattern: re.Pattern[str] | None = None) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self._fail(where, f"expected a non-empty string, got {value!r}")
        if pattern is not None and pattern.fullmatch(value) is None:
            raise self._fail(where, f"{value!r} does not match {pattern.pattern}")
        return value

    def _bool(self, value: object, where: str) -> bool:
        if not isinstance(value, bool):
            raise self._fail(where, f"expected true or false, got {value!r}")
        return value

    def _ref(self, value: object, where: str) -> Ref:
        text = self._str(value, where)
        head, _, tail = text.partition("/")
        try:
            category = Category(head)
        except ValueError:
            allowed = ", ".join(c.value for c in Category)
            raise self._fail(
                where, f"unknown category {head!r}; expected one of: {allowed}"
            ) from None
        if category is not Category.DOCUMENT:
            if tail:
                raise self._fail(where, f"{text!r}: only DOCUMENT takes a code")
            return (category, None)
        try:
            return (category, DocumentCode(tail))
        except ValueError:
            allowed = ", ".join(c.value for c in DocumentCode)
            raise self._fail(
                where, f"unknown document code {tail!r} in {text!r}; expected one of: {allowed}"
            ) from None

    def catalogue(self, data: object) -> CatalogueFile:
        top = self._object(
            data,
            "top level",
            (
                "version",
                "default_max_size",
                "home_nationality",
                "requirements",
                "business_types",
                "foreign_contact",
            ),
        )
        if top.get("version") != 1:
            raise self._fail("version", f"expected 1, got {top.get('version')!r}")
        default_max = self._int(
            top.get("default_max_size", DEFAULT_MAX_SIZE_MB),
            "default_max_size",
            1,
            _MAX_SIZE_LIMIT_MB,
        )
        home = self._str(top.get("home_nationality", "ID"), "home_nationality", NATIONALITY)
        requirements = self._requirements(top.get("requirements", {}), default_max)
        types = self._object(top.get("business_types"), "business_types")
        profiles: dict[BusinessType, Profile] = {}
        for name, raw in types.items():
            try:
                kind = BusinessType(name)
            except ValueError:
                allowed = ", ".join(b.value for b in BusinessType)
                raise self._fail(
                    f"business_types.{name}", f"unknown business type; expected one of: {allowed}"
                ) from None
            profiles[kind] = self._profile(kind, raw)
        missing = [b.value for b in BusinessType if b not in profiles]
        if missing:
            raise self._fail("business_types", f"missing business type {missing[0]}")
        foreign: dict[Ref, tuple[Ref, ...]] = {}
        raw_foreign = self._object(top.get("foreign_contact", {}), "foreign_contact")
        for name, raw_list in raw_foreign.items():
            where = f"foreign_contact.{name}"
            replaced = self._ref(name, where)
            foreign[replaced] = tuple(
                self._ref(item, f"{where}[{i}]")
                for i, item in enumerate(self._list(raw_list, where))
            )
        return CatalogueFile(
            default_max_size=default_max,
            home_nationality=home,
            requirements=requirements,
            profiles=profiles,
            foreign_contact=foreign,
        )

    def _requirements(self, value: object, default_max: int) -> dict[Ref, Requirement]:
        entries = self._object(value, "requirements")
        found: dict[Ref, Requirement] = {}
        for name, raw in entries.items():
            where = f"requirements.{name}"
            category, code = self._ref(name, where)
            if category is Category.DOCUMENT and code is None:
                raise self._fail(where, "DOCUMENT requirements are keyed DOCUMENT/<code>")
            entry = self._object(raw, where, ("name", "extensions", "max_size", "form"))
            extensions = category.extensions
            if "extensions" in entry:
                listed = self._list(entry["extensions"], f"{where}.extensions")
                if not listed:
                    raise self._fail(f"{where}.extensions", "must list at least one type")
                for i, ext in enumerate(listed):
                    if ext not in category.extensions:
                        raise self._fail(
                            f"{where}.extensions[{i}]",
                            f"{ext!r} is not accepted for {category.value}; expected some of: "
                            f"{', '.join(category.extensions)}",
                        )
                extensions = tuple(str(ext) for ext in dict.fromkeys(listed))
            found[(category, code)] = Requirement(
                category=category,
                code=code,
                name=self._str(
                    entry.get("name", category.label if code is None else code.label),
                    f"{where}.name",
                ),
                extensions=extensions,
                max_size=self._int(
                    entry.get("max_size", default_max), f"{where}.max_size", 1, _MAX_SIZE_LIMIT_MB
                ),
                form=tuple(
                    self._form_field(item, f"{where}.form[{i}]")
                    for i, item in enumerate(self._list(entry.get("form", []), f"{where}.form"))
                ),
            )
        return found

    def _form_field(self, value: object, where: str) -> FormField:
        keys = (
            "code",
            "name",
            "min_size",
            "max_size",
            "alpha",
            "numeric",
            "alpha_numeric",
            "caption",
        )
        entry = self._object(value, where, keys)
        for key in keys:
            if key not in entry:
                raise self._fail(where, f"missing key {key!r}")
        min_size = self._int(entry["min_size"], f"{where}.min_size", 0, 1000)
        max_size = self._int(entry["max_size"], f"{where}.max_size", 1, 1000)
        if min_size > max_size:
            raise self._fail(where, f"min_size {min_size} is larger than max_size {max_size}")
        flags = [
            self._bool(entry[k], f"{where}.{k}") for k in ("alpha", "numeric", "alpha_numeric")
        ]
        if sum(flags) != 1:
            raise self._fail(where, "exactly one of alpha, numeric, alpha_numeric must be true")
        return FormField(
            code=self._str(entry["code"], f"{where}.code", _FORM_CODE),
            name=self._str(entry["name"], f"{where}.name"),
            min_size=min_size,
            max_size=max_size,
            alpha=flags[0],
            numeric=flags[1],
            alpha_numeric=flags[2],
            caption=self._str(entry["caption"], f"{where}.caption"),
        )

    def _sections(self, value: object, where: str) -> Sections:
        entries = self._object(value, where)
        reserved = {"documents", *(c.key for c in Category)}
        sections: list[tuple[str, tuple[Ref, ...]]] = []
        for path, raw in entries.items():
            here = f"{where}.{path}"
            for part in path.split("."):
                if _SECTION_PART.fullmatch(part) is None or part in reserved:
                    raise self._fail(
                        here,
                        "a section path is dot-separated lower-case names (e.g. business.brand)"
                        " that are not 'documents' or a category",
                    )
            refs = tuple(
                self._ref(item, f"{here}[{i}]") for i, item in enumerate(self._list(raw, here))
            )
            singles = [ref[0] for ref in refs if ref[1] is None]
            for category in singles:
                if singles.count(category) > 1:
                    raise self._fail(here, f"{category.value} is listed twice")
            sections.append((path, refs))
        return tuple(sections)

    def _profile(self, kind: BusinessType, value: object) -> Profile:
        where = f"business_types.{kind.value}"
        entry = self._object(
            value, where, ("nationalities", "sections", "legal_entities", "business_lines")
        )
        nationalities: tuple[str, ...] | None = None
        if entry.get("nationalities") is not None:
            raw = self._list(entry["nationalities"], f"{where}.nationalities")
            nationalities = tuple(
                self._str(item, f"{where}.nationalities[{i}]", NATIONALITY)
                for i, item in enumerate(raw)
            )
        entities = self._object(entry.get("legal_entities"), f"{where}.legal_entities")
        for name in entities:
            if name not in kind.legal_entities:
                raise self._fail(
                    f"{where}.legal_entities.{name}",
                    f"not a legal entity for {kind.value}; expected one of: "
                    f"{', '.join(kind.legal_entities)}",
                )
        absent = [name for name in kind.legal_entities if name not in entities]
        if absent:
            raise self._fail(f"{where}.legal_entities", f"missing {absent[0]} (use {{}} for none)")
        lines = self._object(entry.get("business_lines"), f"{where}.business_lines")
        for name in lines:
            self._str(name, f"{where}.business_lines.{name}", _VALUE_NAME)
        absent = [name for name in kind.business_lines if name not in lines]
        if absent:
            raise self._fail(
                f"{where}.business_lines",
                f"missing {absent[0]}, which DOKU publishes for {kind.value} (use {{}} for none)",
            )
        return Profile(
            nationalities=nationalities,
            sections=self._sections(entry.get("sections"), f"{where}.sections"),
            legal_entities={
                name: self._sections(raw, f"{where}.legal_entities.{name}")
                for name, raw in entities.items()
            },
            business_lines={
                name: self._sections(raw, f"{where}.business_lines.{name}")
                for name, raw in lines.items()
            },
        )
