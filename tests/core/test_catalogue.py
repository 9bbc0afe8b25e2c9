"""The catalogue: every enum member, DOKU's published example, the matrix, load errors."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from berkas.core.catalogue import (
    MIB,
    BusinessType,
    Catalogue,
    Category,
    DocumentCode,
    did_you_mean,
    parse_category,
    parse_document_code,
)
from berkas.core.errors import InvalidRequest

# DESIGN 2.4, copied literally.
DESIGN_CODES = """
AKTA_PENDIRIAN_PERUSAHAAN, BPOM, COMPANY_REGISTRATION, IZIN_BLU,
IZIN_BOPI, IZIN_DISPENDIK_KEMENDIKBUD, IZIN_DISTRIBUTOR_RESMI,
IZIN_EDAR_ALAT_KESEHATAN, IZIN_KERAMAIAN, IZIN_KOPERASI_SIMPAN_PINJAM,
IZIN_PENYELENGGARAAN_IBADAH_HAJI_DAN_UMRAH, IZIN_PMB, IZIN_PUB, IZIN_USAHA,
IZIN_USAHA_PERSEORANGAN, KITAS_OR_KITAP, KTP, LICENSE_ASIC, LICENSE_CFTC,
LICENSE_CYSEC, LICENSE_FCA, LICENSE_IFSC, LISENSI_BAPPEBTI, LISENSI_OJK, NIB,
NIB_PERSEORANGAN, NPWP_BADAN, NPWP_ORANG_PRIBADI, PASPOR, SERTIFIKAT_HALAL_MUI,
SERTIFIKAT_KEANGGOTAAN_ASITA, SK_KEMENDIKBUDRISTEK, SK_KEMENKUMHAM,
SK_PENDIRIAN_YAYASAN, TANDA_DAFTAR_PSE, TANDA_DAFTAR_YAYASAN
"""
DESIGN_CATEGORIES = [
    "OWNER_LIVENESS",
    "PHOTO_PROOF",
    "LOGO",
    "DOCUMENT",
    "SERVICE_AGREEMENT",
    "BANK_ACCOUNT",
]
DESIGN_CORPORATE_ENTITIES = [
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
]
DESIGN_CORPORATE_LINES = [
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
]

# DOKU's published response for PERSONAL / PERSEORANGAN / RETAIL / ID
# (developers.doku.com, Partner API, Check Requirements API), key order included.
DOKU_PERSONAL_EXAMPLE = """
{
    "business": {
        "brand": {
            "photo_proof": {
                "code": "PHOTO_PROOF",
                "name": "Brand Photo Proof",
                "extensions": [
                    "PNG",
                    "JPG",
                    "JPEG"
                ],
                "max_size": 15
            }
        },
        "contact": {
            "documents": [
                {
                    "code": "KTP",
                    "name": "Kartu Tanda Penduduk",
                    "extensions": [
                        "PDF",
                        "JPG",
                        "JPEG",
                        "PNG"
                    ],
                    "max_size": 15,
                    "form": [
                        {
                            "code": "NO_KTP",
                            "name": "No. KTP (NIK)",
                            "min_size": 16,
                            "max_size": 16,
                            "alpha": false,
                            "numeric": true,
                            "alpha_numeric": false,
                            "caption": "Masukkan 16 digit nomor KTP Anda (NIK)"
                        }
                    ]
                }
            ],
            "owner_liveness": {
                "code": "OWNER_LIVENESS",
                "name": "Owner Liveness",
                "extensions": [
                    "PNG",
                    "JPG",
                    "JPEG"
                ],
                "max_size": 15
            }
        }
    }
}
"""


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue.load()


def _packaged() -> dict[str, Any]:
    text = resources.files("berkas.core").joinpath("catalogue.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def _codes(section: dict[str, Any]) -> list[str]:
    return [doc["code"] for doc in section.get("documents", [])]


# --- enums -------------------------------------------------------------------------


def test_categories_are_exactly_designs() -> None:
    assert [c.value for c in Category] == DESIGN_CATEGORIES


@pytest.mark.parametrize("category", list(Category))
def test_every_category_knows_prefix_label_and_types(category: Category) -> None:
    assert category.id_prefix == ("CNT" if category is Category.OWNER_LIVENESS else "DCM")
    assert category.label
    assert category.key == category.value.lower()
    images = ("PNG", "JPG", "JPEG")
    if category in {Category.DOCUMENT, Category.SERVICE_AGREEMENT, Category.BANK_ACCOUNT}:
        assert category.allows_pdf
        assert category.extensions == ("PDF", "JPG", "JPEG", "PNG")
    else:
        assert not category.allows_pdf
        assert category.extensions == images


def test_document_codes_are_exactly_designs() -> None:
    design = [code.strip() for code in DESIGN_CODES.replace("\n", " ").split(",")]
    assert len(design) == 36
    assert sorted(c.value for c in DocumentCode) == sorted(design)


@pytest.mark.parametrize("code", list(DocumentCode))
def test_every_document_code_has_a_label(code: DocumentCode) -> None:
    assert code.label.strip()
    assert code.label != code.value or "_" not in code.value


@pytest.mark.parametrize(
    ("code", "label"),
    [
        (DocumentCode.KTP, "KTP"),
        (DocumentCode.NPWP_BADAN, "NPWP Badan"),
        (DocumentCode.AKTA_PENDIRIAN_PERUSAHAAN, "Akta Pendirian Perusahaan"),
    ],
)
def test_document_labels(code: DocumentCode, label: str) -> None:
    assert code.label == label


def test_business_types_carry_dokus_values() -> None:
    assert [b.value for b in BusinessType] == ["PERSONAL", "CORPORATE"]
    assert BusinessType.PERSONAL.legal_entities == ("PERSEORANGAN",)
    assert BusinessType.PERSONAL.business_lines == ("RETAIL",)
    assert list(BusinessType.CORPORATE.legal_entities) == DESIGN_CORPORATE_ENTITIES
    assert list(BusinessType.CORPORATE.business_lines) == DESIGN_CORPORATE_LINES


def test_enum_values_are_their_wire_strings() -> None:
    assert Category("DOCUMENT") is Category.DOCUMENT
    assert DocumentCode("KTP") is DocumentCode.KTP
    assert json.dumps({"category": Category.PHOTO_PROOF}) == '{"category": "PHOTO_PROOF"}'


# --- requirements ------------------------------------------------------------------


def test_dokus_personal_example_exactly(catalogue: Catalogue) -> None:
    body = catalogue.requirements("PERSONAL", "PERSEORANGAN", "RETAIL", "ID")
    expected = json.loads(DOKU_PERSONAL_EXAMPLE)
    assert body == expected
    # Same keys in the same order, all the way down.
    assert json.dumps(body, indent=4) == json.dumps(expected, indent=4)


def test_requirements_are_a_fresh_copy(catalogue: Catalogue) -> None:
    first = catalogue.requirements("PERSONAL", "PERSEORANGAN", "RETAIL", "ID")
    first["business"]["brand"].clear()
    again = catalogue.requirements("PERSONAL", "PERSEORANGAN", "RETAIL", "ID")
    assert again == json.loads(DOKU_PERSONAL_EXAMPLE)


def test_corporate_pt_lists_company_documents(catalogue: Catalogue) -> None:
    body = catalogue.requirements("CORPORATE", "PT", "RETAIL", "ID")
    business = body["business"]
    assert set(_codes(business)) >= {
        "AKTA_PENDIRIAN_PERUSAHAAN",
        "NIB",
        "NPWP_BADAN",
        "SK_KEMENKUMHAM",
    }
    assert business["bank_account"]["code"] == "BANK_ACCOUNT"
    assert business["bank_account"]["extensions"] == ["PDF", "JPG", "JPEG", "PNG"]
    assert business["service_agreement"]["code"] == "SERVICE_AGREEMENT"
    assert set(business["brand"]) == {"photo_proof", "logo"}
    assert _codes(business["contact"]) == ["KTP"]
    assert "owner_liveness" in business["contact"]


@pytest.mark.parametrize(
    ("line", "licence"),
    [
        ("FINANCIAL_SERVICE", "LISENSI_OJK"),
        ("INSURANCE", "LISENSI_OJK"),
        ("MARKETPLACE", "TANDA_DAFTAR_PSE"),
        ("CHARITY", "IZIN_PUB"),
    ],
)
def test_business_line_adds_its_licence(catalogue: Catalogue, line: str, licence: str) -> None:
    body = catalogue.requirements("CORPORATE", "PT", line, "ID")
    assert licence in _codes(body["business"])
    plain = catalogue.requirements("CORPORATE", "PT", "AGRICULTURE", "ID")
    assert licence not in _codes(plain["business"])


def test_foreign_contact_provides_passport_and_stay_permit(catalogue: Catalogue) -> None:
    body = catalogue.requirements("CORPORATE", "CV", "LOGISTICS", "SG")
    contact = body["business"]["contact"]
    assert _codes(contact) == ["PASPOR", "KITAS_OR_KITAP"]
    assert contact["documents"][0]["form"][0]["code"] == "NO_PASPOR"


def test_every_combination_renders_with_well_formed_requirements(catalogue: Catalogue) -> None:
    for kind in BusinessType:
        for entity in catalogue.legal_entities(kind):
            for line in catalogue.business_lines(kind):
                body = catalogue.requirements(kind.value, entity, line, "ID")
                assert set(body) == {"business"}
                contact = body["business"]["contact"]
                assert "KTP" in _codes(contact)
                stack: list[dict[str, Any]] = [body["business"]]
                while stack:
                    node = stack.pop()
                    for key, value in node.items():
                        items = value if key == "documents" else [value]
                        if key not in {"documents", *(c.key for c in Category)}:
                            stack.append(value)
                            continue
                        for item in items:
                            assert list(item)[:4] == ["code", "name", "extensions", "max_size"]
                            assert item["max_size"] == 15


@pytest.mark.parametrize(
    ("args", "parameter", "allowed"),
    [
        (("BUSINESS", "PT", "RETAIL", "ID"), "businessType", "PERSONAL, CORPORATE"),
        (("PERSONAL", "PT", "RETAIL", "ID"), "businessLegalEntity", "PERSEORANGAN"),
        (("CORPORATE", "PERSEORANGAN", "MINING", "ID"), "businessLegalEntity", "PT, CV, UD"),
        (("PERSONAL", "PERSEORANGAN", "MINING", "ID"), "brandBusinessLine", "RETAIL"),
        (("CORPORATE", "PT", "retail", "ID"), "brandBusinessLine", "AGRICULTURE, CAPITAL_MARKET"),
        (("PERSONAL", "PERSEORANGAN", "RETAIL", "SG"), "businessContactNationality", "ID"),
    ],
)
def test_unknown_values_name_the_parameter_and_allowed_values(
    catalogue: Catalogue, args: tuple[str, str, str, str], parameter: str, allowed: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        catalogue.requirements(*args)
    assert caught.value.code == "invalid_parameter"
    assert caught.value.message.startswith(parameter + " ")
    assert allowed in caught.value.message


@pytest.mark.parametrize("nationality", ["", "id", "IDN", "I", "1D", "ÌD"])
def test_nationality_must_be_alpha_2(catalogue: Catalogue, nationality: str) -> None:
    with pytest.raises(InvalidRequest, match=r"businessContactNationality .* ISO 3166-1"):
        catalogue.requirements("CORPORATE", "PT", "RETAIL", nationality)


def test_long_unknown_value_is_not_echoed_whole(catalogue: Catalogue) -> None:
    with pytest.raises(InvalidRequest) as caught:
        catalogue.requirements("X" * 10_000, "PT", "RETAIL", "ID")
    assert len(caught.value.message) < 200


# --- sizes and labels --------------------------------------------------------------


def test_default_cap_is_15_mib(catalogue: Catalogue) -> None:
    assert MIB == 1024 * 1024
    assert catalogue.max_size_bytes(Category.DOCUMENT, DocumentCode.KTP) == 15 * MIB
    assert catalogue.max_size_bytes(Category.DOCUMENT, DocumentCode.BPOM) == 15 * MIB
    assert catalogue.max_size_bytes(Category.PHOTO_PROOF) == 15 * MIB
    assert catalogue.max_upload_bytes() == 15 * MIB


def test_label_names_category_and_code() -> None:
    assert Catalogue.label(Category.DOCUMENT, DocumentCode.KTP) == "DOCUMENT/KTP"
    assert Catalogue.label(Category.PHOTO_PROOF) == "PHOTO_PROOF"
    assert Catalogue.label(Category.LOGO, DocumentCode.KTP) == "LOGO"


def test_operator_sizes_drive_caps(tmp_path: Path) -> None:
    data = _packaged()
    data["requirements"]["DOCUMENT/KTP"]["max_size"] = 5
    data["requirements"]["SERVICE_AGREEMENT"]["max_size"] = 40
    data["default_max_size"] = 10
    path = tmp_path / "catalogue.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    catalogue = Catalogue.load(path)
    assert catalogue.max_size_bytes(Category.DOCUMENT, DocumentCode.KTP) == 5 * MIB
    assert catalogue.max_size_bytes(Category.DOCUMENT, DocumentCode.BPOM) == 10 * MIB
    assert catalogue.max_upload_bytes() == 40 * MIB
    body = catalogue.requirements("PERSONAL", "PERSEORANGAN", "RETAIL", "ID")
    assert body["business"]["contact"]["documents"][0]["max_size"] == 5


def test_operator_can_add_a_business_line(tmp_path: Path) -> None:
    data = _packaged()
    data["business_types"]["CORPORATE"]["business_lines"]["PAWNSHOP"] = {
        "business": ["DOCUMENT/LISENSI_OJK"]
    }
    path = tmp_path / "catalogue.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    body = Catalogue.load(path).requirements("CORPORATE", "PT", "PAWNSHOP", "ID")
    assert "LISENSI_OJK" in _codes(body["business"])


# --- parsing wire values -----------------------------------------------------------


def test_parse_category_and_code() -> None:
    assert parse_category(" LOGO ") is Category.LOGO
    assert parse_document_code(Category.DOCUMENT, "NIB") is DocumentCode.NIB
    # DOKU ignores code outside DOCUMENT (DESIGN 2.4), whatever it says.
    assert parse_document_code(Category.LOGO, "ktp") is None
    with pytest.raises(InvalidRequest, match=r'^category "KTP" .*OWNER_LIVENESS, PHOTO_PROOF'):
        parse_category("KTP")
    with pytest.raises(InvalidRequest, match=r'^code "ktp" .*AKTA_PENDIRIAN_PERUSAHAAN'):
        parse_document_code(Category.DOCUMENT, "ktp")
    for missing in (None, "", "  "):
        with pytest.raises(InvalidRequest, match="required") as caught:
            parse_document_code(Category.DOCUMENT, missing)
        assert caught.value.code == "code_missing"


# --- bad catalogue files -----------------------------------------------------------


def _edit(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split("|")
    node: Any = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


@pytest.mark.parametrize(
    ("edit", "value", "message"),
    [
        ("requirements|PHOTO_PROOFS", {}, r"requirements\.PHOTO_PROOFS: unknown category"),
        ("requirements|DOCUMENT/KTPX", {}, r"requirements\.DOCUMENT/KTPX: unknown document code"),
        (
            "requirements|PHOTO_PROOF|extensions",
            ["PNG", "PDF"],
            r"requirements\.PHOTO_PROOF\.extensions\[1\]: 'PDF' is not accepted for PHOTO_PROOF",
        ),
        (
            "requirements|DOCUMENT/KTP|extensions",
            ["png"],
            r"DOCUMENT/KTP\.extensions\[0\]: 'png' is not accepted",
        ),
        ("requirements|LOGO|max_size", 0, r"requirements\.LOGO\.max_size: expected an integer"),
        ("requirements|LOGO|max_size", "15", r"requirements\.LOGO\.max_size"),
        ("requirements|LOGO|maxsize", 15, r"requirements\.LOGO: unknown key 'maxsize'"),
        (
            "requirements|DOCUMENT/KTP|form|0|numeric",
            False,
            r"DOCUMENT/KTP\.form\[0\]: exactly one of alpha, numeric",
        ),
        (
            "business_types|PERSONAL|sections|business.contact|0",
            "DOCUMENT/SIM",
            r"business_types\.PERSONAL\.sections\.business\.contact\[0\]: unknown document code",
        ),
        (
            "business_types|CORPORATE|legal_entities|LLC",
            {},
            r"business_types\.CORPORATE\.legal_entities\.LLC: not a legal entity",
        ),
        (
            "business_types|CORPORATE|sections|business.documents",
            ["LOGO"],
            r"business_types\.CORPORATE\.sections\.business\.documents: a section path",
        ),
        ("business_types|RETAILER", {}, r"business_types\.RETAILER: unknown business type"),
        ("version", 2, r"version: expected 1"),
        ("foreign_contact|DOCUMENT/KTP", ["PASSPORT"], r"foreign_contact\.DOCUMENT/KTP\[0\]"),
    ],
)
def test_bad_catalogue_fails_to_load_naming_file_and_entry(
    tmp_path: Path, edit: str, value: Any, message: str
) -> None:
    data = _packaged()
    _edit(data, edit, value)
    path = tmp_path / "operator.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match=message) as caught:
        Catalogue.load(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_catalogue_missing_a_doku_line_fails(tmp_path: Path) -> None:
    data = _packaged()
    del data["business_types"]["CORPORATE"]["business_lines"]["MINING"]
    path = tmp_path / "operator.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match="missing MINING, which DOKU publishes"):
        Catalogue.load(path)


def test_unreadable_or_invalid_json_fails(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read the catalogue file"):
        Catalogue.load(tmp_path / "absent.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"version": 1,', encoding="utf-8")
    with pytest.raises(ValueError, match=r"broken\.json: not valid JSON"):
        Catalogue.load(broken)


CODES = [code.value for code in DocumentCode]


@pytest.mark.parametrize(
    ("typed", "said"),
    [
        ("ktp", "did you mean KTP?"),
        (" KTPP ", "did you mean KTP?"),
        ("npwp", "did you mean NPWP_BADAN or NPWP_ORANG_PRIBADI?"),
        ("pasport", "did you mean PASPOR?"),
        ("xyz", None),
        ("", None),
    ],
)
def test_did_you_mean_names_the_nearest_codes_case_ignored(typed: str, said: str | None) -> None:
    assert did_you_mean(typed, CODES) == said


def test_an_unknown_code_on_the_wire_is_answered_with_the_code_meant() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_document_code(Category.DOCUMENT, "ktp")
    assert caught.value.message.startswith(
        'code "ktp" is not a document code; did you mean KTP? One of AKTA_PENDIRIAN_PERUSAHAAN,'
    )
