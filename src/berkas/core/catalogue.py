"""The document catalogue (DESIGN 2.3, 2.4): categories, document codes, business types,
and the requirement matrix loaded from ``catalogue.json`` (or an operator's file).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

from berkas.core.errors import InvalidRequest

# DOKU publishes sizes as "max_size": 15 in megabytes without saying which megabyte.
# We read it as MiB (2**20 bytes): the reading common upload stacks use for "MB" (e.g.
# Spring's DataSize, nginx's "15m"), and the lenient one, so a file DOKU's documented
# limit admits under either reading is never refused here.
MIB = 1024 * 1024
DEFAULT_MAX_SIZE_MB = 15
_IMAGE_EXTENSIONS = ("PNG", "JPG", "JPEG")
# DOKU lists PDF first for documents (its KTP example: PDF, JPG, JPEG, PNG).
_IMAGE_OR_PDF_EXTENSIONS = ("PDF", "JPG", "JPEG", "PNG")
_MAX_SIZE_LIMIT_MB = 1024
_NATIONALITY = re.compile(r"[A-Z]{2}")
_VALUE_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
_SECTION_PART = re.compile(r"[a-z][a-z_]*")
_FORM_CODE = re.compile(r"[A-Z][A-Z0-9_]*")


class Category(StrEnum):
    """A file category on the wire (DESIGN 2.4), with what it accepts."""

    id_prefix: str
    label: str
    allows_pdf: bool

    # Defaults keep ``Category("DOCUMENT")`` (a lookup, never a call to this) well typed.
    def __new__(
        cls, value: str, id_prefix: str = "", label: str = "", allows_pdf: bool = False
    ) -> Category:
        member = str.__new__(cls, value)
        member._value_ = value
        member.id_prefix = id_prefix
        member.label = label
        member.allows_pdf = allows_pdf
        return member

    OWNER_LIVENESS = ("OWNER_LIVENESS", "CNT", "Owner liveness photo", False)
    PHOTO_PROOF = ("PHOTO_PROOF", "DCM", "Photo proof", False)
    LOGO = ("LOGO", "DCM", "Logo", False)
    DOCUMENT = ("DOCUMENT", "DCM", "Document", True)
    SERVICE_AGREEMENT = ("SERVICE_AGREEMENT", "DCM", "Service agreement", True)
    BANK_ACCOUNT = ("BANK_ACCOUNT", "DCM", "Bank account proof", True)

    @property
    def extensions(self) -> tuple[str, ...]:
        """The file types this category accepts, as DOKU spells them (upper case)."""
        return _IMAGE_OR_PDF_EXTENSIONS if self.allows_pdf else _IMAGE_EXTENSIONS

    @property
    def key(self) -> str:
        """The requirement's key in a requirements section, e.g. ``photo_proof``."""
        return self.value.lower()


class DocumentCode(StrEnum):
    """A ``code`` for category DOCUMENT (DESIGN 2.4), with its human label."""

    label: str

    def __new__(cls, value: str, label: str = "") -> DocumentCode:
        member = str.__new__(cls, value)
        member._value_ = value
        member.label = label
        return member

    AKTA_PENDIRIAN_PERUSAHAAN = ("AKTA_PENDIRIAN_PERUSAHAAN", "Akta Pendirian Perusahaan")
    BPOM = ("BPOM", "Izin BPOM")
    COMPANY_REGISTRATION = ("COMPANY_REGISTRATION", "Company Registration")
    IZIN_BLU = ("IZIN_BLU", "Izin BLU")
    IZIN_BOPI = ("IZIN_BOPI", "Izin BOPI")
    IZIN_DISPENDIK_KEMENDIKBUD = ("IZIN_DISPENDIK_KEMENDIKBUD", "Izin Dispendik Kemendikbud")
    IZIN_DISTRIBUTOR_RESMI = ("IZIN_DISTRIBUTOR_RESMI", "Izin Distributor Resmi")
    IZIN_EDAR_ALAT_KESEHATAN = ("IZIN_EDAR_ALAT_KESEHATAN", "Izin Edar Alat Kesehatan")
    IZIN_KERAMAIAN = ("IZIN_KERAMAIAN", "Izin Keramaian")
    IZIN_KOPERASI_SIMPAN_PINJAM = ("IZIN_KOPERASI_SIMPAN_PINJAM", "Izin Koperasi Simpan Pinjam")
    IZIN_PENYELENGGARAAN_IBADAH_HAJI_DAN_UMRAH = (
        "IZIN_PENYELENGGARAAN_IBADAH_HAJI_DAN_UMRAH",
        "Izin Penyelenggaraan Ibadah Haji dan Umrah",
    )
    IZIN_PMB = ("IZIN_PMB", "Izin PMB")
    IZIN_PUB = ("IZIN_PUB", "Izin PUB")
    IZIN_USAHA = ("IZIN_USAHA", "Izin Usaha")
    IZIN_USAHA_PERSEORANGAN = ("IZIN_USAHA_PERSEORANGAN", "Izin Usaha Perseorangan")
    KITAS_OR_KITAP = ("KITAS_OR_KITAP", "KITAS or KITAP")
    KTP = ("KTP", "KTP")
    LICENSE_ASIC = ("LICENSE_ASIC", "License ASIC")
    LICENSE_CFTC = ("LICENSE_CFTC", "License CFTC")
    LICENSE_CYSEC = ("LICENSE_CYSEC", "License CySEC")
    LICENSE_FCA = ("LICENSE_FCA", "License FCA")
    LICENSE_IFSC = ("LICENSE_IFSC", "License IFSC")
    LISENSI_BAPPEBTI = ("LISENSI_BAPPEBTI", "Lisensi Bappebti")
    LISENSI_OJK = ("LISENSI_OJK", "Lisensi OJK")
    NIB = ("NIB", "NIB")
    NIB_PERSEORANGAN = ("NIB_PERSEORANGAN", "NIB Perseorangan")
    NPWP_BADAN = ("NPWP_BADAN", "NPWP Badan")
    NPWP_ORANG_PRIBADI = ("NPWP_ORANG_PRIBADI", "NPWP Orang Pribadi")
    PASPOR = ("PASPOR", "Paspor")
    SERTIFIKAT_HALAL_MUI = ("SERTIFIKAT_HALAL_MUI", "Sertifikat Halal MUI")
    SERTIFIKAT_KEANGGOTAAN_ASITA = ("SERTIFIKAT_KEANGGOTAAN_ASITA", "Sertifikat Keanggotaan ASITA")
    SK_KEMENDIKBUDRISTEK = ("SK_KEMENDIKBUDRISTEK", "SK Kemendikbudristek")
    SK_KEMENKUMHAM = ("SK_KEMENKUMHAM", "SK Kemenkumham")
    SK_PENDIRIAN_YAYASAN = ("SK_PENDIRIAN_YAYASAN", "SK Pendirian Yayasan")
    TANDA_DAFTAR_PSE = ("TANDA_DAFTAR_PSE", "Tanda Daftar PSE")
    TANDA_DAFTAR_YAYASAN = ("TANDA_DAFTAR_YAYASAN", "Tanda Daftar Yayasan")


class BusinessType(StrEnum):
    """``businessType`` with the values DOKU publishes for it (Check Requirements API).

    ``legal_entities`` is closed; ``business_lines`` is DOKU's list, which a catalogue
    file must include and may extend.
    """

    label: str
    legal_entities: tuple[str, ...]
    business_lines: tuple[str, ...]

    def __new__(
        cls,
        value: str,
        label: str = "",
        legal_entities: tuple[str, ...] = (),
        business_lines: tuple[str, ...] = (),
    ) -> BusinessType:
        member = str.__new__(cls, value)
        member._value_ = value
        member.label = label
        member.legal_entities = legal_entities
        member.business_lines = business_lines
        return member

    PERSONAL = ("PERSONAL", "Personal", ("PERSEORANGAN",), ("RETAIL",))
    CORPORATE = (
        "CORPORATE",
        "Corporate",
        (
            "PT",
            "CV",
            "UD",
            "KOPERASI",
            "FIRMA",
            "PP",
            "BUMN",
            "PTN_BH",
            "YAYASAN",
            "PERKUMPULAN_BERBADAN_HUKUM",
            "BLU",
        ),
        (
            "AGRICULTURE",
            "CAPITAL_MARKET",
            "CHARITY",
            "COMMUNICATION",
            "DIGITAL_AND_GAME",
            "EDUCATION",
            "EVENT_ORGANIZER",
            "FINANCIAL_SERVICE",
            "FOOD_AND_BEVERAGE",
            "GAS_STATION",
            "HOSPITALITY",
            "INSURANCE",
            "LOGISTICS",
            "MANUFACTURE",
            "MARKETPLACE",
            "MINING",
            "ONLINE_STORE",
        ),
    )


def _shown(value: str) -> str:
    """Quote caller text for a message, cut short so a message never echoes a page."""
    return repr(value if len(value) <= 40 else value[:40] + "...")


def _invalid(
    parameter: str, value: str, allowed: Iterable[str], context: str = ""
) -> InvalidRequest:
    return InvalidRequest(
        f"{parameter} {_shown(value)} is not supported{context}; "
        f"expected one of: {', '.join(allowed)}.",
        code="invalid_parameter",
    )


def parse_category(value: str, *, field: str = "category") -> Category:
    """Return the Category named ``value`` or raise ``InvalidRequest`` naming ``field``."""
    try:
        return Category(value)
    except ValueError:
        raise _invalid(field, value, [c.value for c in Category]) from None


def parse_document_code(value: str, *, field: str = "code") -> DocumentCode:
    """Return the DocumentCode ``value`` or raise ``InvalidRequest`` naming ``field``."""
    try:
        return DocumentCode(value)
    except ValueError:
        raise _invalid(field, value, [c.value for c in DocumentCode]) from None


Ref = tuple[Category, DocumentCode | None]
"""A requirement reference: a single-file category, or DOCUMENT with its code."""

_Sections = tuple[tuple[str, tuple[Ref, ...]], ...]


@dataclass(frozen=True, slots=True)
class FormField:
    """A text field a numbered document carries (e.g. the 16-digit NIK of a KTP)."""

    code: str
    name: str
    min_size: int
    max_size: int
    alpha: bool
    numeric: bool
    alpha_numeric: bool
    caption: str

    def to_wire(self) -> dict[str, Any]:
        """The field as DOKU shows it (key order as in DOKU's example)."""
        return {
            "code": self.code,
            "name": self.name,
            "min_size": self.min_size,
            "max_size": self.max_size,
            "alpha": self.alpha,
            "numeric": self.numeric,
            "alpha_numeric": self.alpha_numeric,
            "caption": self.caption,
        }


@dataclass(frozen=True, slots=True)
class Requirement:
    """One file a merchant must provide: category (and code), name, types, size cap."""

    category: Category
    code: DocumentCode | None
    name: str
    extensions: tuple[str, ...]
    max_size: int
    form: tuple[FormField, ...] = ()

    def to_wire(self) -> dict[str, Any]:
        """The requirement as DOKU shows it; ``form`` only for numbered documents."""
        wire: dict[str, Any] = {
            "code": self.category.value if self.code is None else self.code.value,
            "name": self.name,
            "extensions": list(self.extensions),
            "max_size": self.max_size,
        }
        if self.form:
            wire["form"] = [field.to_wire() for field in self.form]
        return wire


@dataclass(frozen=True, slots=True)
class _Profile:
    """The matrix for one business type: base sections plus additions per value."""

    nationalities: tuple[str, ...] | None
    sections: _Sections
    legal_entities: Mapping[str, _Sections]
    business_lines: Mapping[str, _Sections]


class Catalogue:
    """The requirement matrix and size caps, validated when loaded.

    Build it with ``Catalogue.load``; it is immutable afterwards and safe to share.
    """

    def __init__(
        self,
        *,
        default_max_size: int,
        home_nationality: str,
        requirements: Mapping[Ref, Requirement],
        profiles: Mapping[BusinessType, _Profile],
        foreign_contact: Mapping[Ref, tuple[Ref, ...]],
    ) -> None:
        self._default_max_size = default_max_size
        self._home_nationality = home_nationality
        self._requirements = dict(requirements)
        self._profiles = dict(profiles)
        self._foreign_contact = dict(foreign_contact)

    @classmethod
    def load(cls, path: Path | None = None) -> Catalogue:
        """Load and validate a catalogue file; ``None`` loads the packaged default.

        A malformed file raises ``ValueError`` naming the file and the bad entry, so a
        broken operator catalogue stops the service at start-up, not at request time.
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

    def requirements(
        self,
        business_type: str,
        legal_entity: str,
        brand_business_line: str,
        nationality: str,
    ) -> dict[str, Any]:
        """Return the File Requirements body (DESIGN 2.3) for a kind of merchant.

        Raises ``InvalidRequest`` (code ``invalid_parameter``) naming the query
        parameter and listing the values accepted for it.
        """
        profile = self._checked_profile(
            business_type, legal_entity, brand_business_line, nationality
        )
        merged: dict[str, list[Ref]] = {}
        for sections in (
            profile.sections,
            profile.legal_entities[legal_entity],
            profile.business_lines[brand_business_line],
        ):
            for path, refs in sections:
                merged.setdefault(path, []).extend(refs)
        # A contact who is not a citizen has no KTP; the catalogue names what replaces it
        # (by default PASPOR and KITAS_OR_KITAP, the documents a foreign resident holds).
        foreign = nationality != self._home_nationality
        body: dict[str, Any] = {}
        for path, listed in merged.items():
            expanded: list[Ref] = []
            for ref in listed:
                expanded.extend(self._foreign_contact.get(ref, (ref,)) if foreign else (ref,))
            if expanded:
                self._render(body, path, dict.fromkeys(expanded))
        return body

    def _checked_profile(
        self, business_type: str, legal_entity: str, brand_business_line: str, nationality: str
    ) -> _Profile:
        try:
            kind = BusinessType(business_type)
        except ValueError:
            allowed = [b.value for b in BusinessType]
            raise _invalid("businessType", business_type, allowed) from None
        profile = self._profiles[kind]
        context = f" for businessType {kind.value}"
        if legal_entity not in profile.legal_entities:
            raise _invalid("businessLegalEntity", legal_entity, profile.legal_entities, context)
        if brand_business_line not in profile.business_lines:
            raise _invalid(
                "brandBusinessLine", brand_business_line, profile.business_lines, context
            )
        if _NATIONALITY.fullmatch(nationality) is None:
            raise InvalidRequest(
                f"businessContactNationality {_shown(nationality)} is not an ISO 3166-1 "
                "alpha-2 country code; expected two upper-case letters such as ID.",
                code="invalid_parameter",
            )
        if profile.nationalities is not None and nationality not in profile.nationalities:
            raise _invalid(
                "businessContactNationality", nationality, profile.nationalities, context
            )
        return profile

    def _render(self, body: dict[str, Any], path: str, refs: Iterable[Ref]) -> None:
        """Place a section's requirements at ``path``: a single-file category under its
        own key, documents in order under ``documents`` (DOKU's shape)."""
        node = body
        for part in path.split("."):
            node = node.setdefault(part, {})
        for ref in refs:
            requirement = self.requirement(*ref)
            if requirement.code is None:
                node[requirement.category.key] = requirement.to_wire()
            else:
                node.setdefault("documents", []).append(requirement.to_wire())

    def requirement(self, category: Category, code: DocumentCode | None = None) -> Requirement:
        """The requirement for a category (and code, for DOCUMENT), or its defaults."""
        ref: Ref = (category, code if category is Category.DOCUMENT else None)
        found = self._requirements.get(ref)
        if found is not None:
            return found
        return Requirement(
            category=category,
            code=ref[1],
            name=category.label if ref[1] is None else ref[1].label,
            extensions=category.extensions,
            max_size=self._default_max_size,
        )

    def max_size_bytes(self, category: Category, code: DocumentCode | None = None) -> int:
        """The size cap in bytes for one upload (``max_size`` MiB, see ``MIB``)."""
        return self.requirement(category, code).max_size * MIB

    def max_upload_bytes(self) -> int:
        """The largest cap of any requirement: the bound while streaming an upload
        whose category is not known yet."""
        sizes = [self._default_max_size, *(r.max_size for r in self._requirements.values())]
        return max(sizes) * MIB

    def legal_entities(self, business_type: BusinessType) -> tuple[str, ...]:
        """The ``businessLegalEntity`` values accepted for a business type."""
        return tuple(self._profiles[business_type].legal_entities)

    def business_lines(self, business_type: BusinessType) -> tuple[str, ...]:
        """The ``brandBusinessLine`` values accepted for a business type."""
        return tuple(self._profiles[business_type].business_lines)

    @staticmethod
    def label(category: Category, code: DocumentCode | None = None) -> str:
        """Name a requirement in messages: ``DOCUMENT/KTP`` or ``PHOTO_PROOF``."""
        if category is Category.DOCUMENT and code is not None:
            return f"{category.value}/{code.value}"
        return category.value


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

    def catalogue(self, data: object) -> Catalogue:
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
        home = self._str(top.get("home_nationality", "ID"), "home_nationality", _NATIONALITY)
        requirements = self._requirements(top.get("requirements", {}), default_max)
        types = self._object(top.get("business_types"), "business_types")
        profiles: dict[BusinessType, _Profile] = {}
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
        return Catalogue(
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

    def _sections(self, value: object, where: str) -> _Sections:
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

    def _profile(self, kind: BusinessType, value: object) -> _Profile:
        where = f"business_types.{kind.value}"
        entry = self._object(
            value, where, ("nationalities", "sections", "legal_entities", "business_lines")
        )
        nationalities: tuple[str, ...] | None = None
        if entry.get("nationalities") is not None:
            raw = self._list(entry["nationalities"], f"{where}.nationalities")
            nationalities = tuple(
                self._str(item, f"{where}.nationalities[{i}]", _NATIONALITY)
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
        return _Profile(
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
