"""The catalogue's vocabulary (docs/design.md 2.4): categories, document codes, business types,
and the requirement records a catalogue file is parsed into.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

# DOKU publishes sizes as "max_size": 15 in megabytes without saying which megabyte.
# We read it as MiB (2**20 bytes): the reading common upload stacks use for "MB" (e.g.
# Spring's DataSize, nginx's "15m"), and the lenient one, so a file DOKU's documented
# limit admits under either reading is never refused here.
MIB = 1024 * 1024
DEFAULT_MAX_SIZE_MB = 15
_IMAGE_EXTENSIONS = ("PNG", "JPG", "JPEG")
# DOKU lists PDF first for documents (its KTP example: PDF, JPG, JPEG, PNG).
_IMAGE_OR_PDF_EXTENSIONS = ("PDF", "JPG", "JPEG", "PNG")
NATIONALITY = re.compile(r"[A-Z]{2}")
"""An ISO 3166-1 alpha-2 country code, as ``businessContactNationality`` carries it."""


class Category(StrEnum):
    """A file category on the wire (docs/design.md 2.4), with what it accepts."""

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
    """A ``code`` for category DOCUMENT (docs/design.md 2.4), with its human label."""

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


Ref = tuple[Category, DocumentCode | None]
"""A requirement reference: a single-file category, or DOCUMENT with its code."""

Sections = tuple[tuple[str, tuple[Ref, ...]], ...]
"""Requirement sections in order: a dotted path in the body (e.g. ``business.brand``)
and the requirements placed there."""


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
class Profile:
    """The matrix for one business type: base sections plus additions per value."""

    nationalities: tuple[str, ...] | None
    sections: Sections
    legal_entities: Mapping[str, Sections]
    business_lines: Mapping[str, Sections]
