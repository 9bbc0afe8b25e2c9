"""The document catalogue (docs/design.md 2.3): the requirement matrix and size caps, and the
checks of request parameters against them. Its vocabulary lives in ``catalogue_types``
(re-exported here) and its file format in ``catalogue_file``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from berkas.core.catalogue_file import read_catalogue_file
from berkas.core.catalogue_types import (
    DEFAULT_MAX_SIZE_MB,
    MIB,
    NATIONALITY,
    BusinessType,
    Category,
    DocumentCode,
    FormField,
    Profile,
    Ref,
    Requirement,
)
from berkas.core.codes import Code
from berkas.core.errors import InvalidRequest
from berkas.core.wire import quoted

__all__ = [
    "DEFAULT_MAX_SIZE_MB",
    "MIB",
    "BusinessType",
    "Catalogue",
    "Category",
    "DocumentCode",
    "FormField",
    "Ref",
    "Requirement",
    "did_you_mean",
    "parse_category",
    "parse_document_code",
]


def _invalid(
    parameter: str, value: str, allowed: Iterable[str], context: str = ""
) -> InvalidRequest:
    return InvalidRequest(
        f"{parameter} {quoted(value)} is not supported{context}; "
        f"expected one of: {', '.join(allowed)}.",
        code=Code.INVALID_PARAMETER,
    )


def _names(enum_type: type[Category] | type[DocumentCode]) -> str:
    return ", ".join(member.value for member in enum_type)


def did_you_mean(value: str, choices: Iterable[str]) -> str | None:
    """``did you mean KTP?`` for the choices nearest ``value``, case ignored (at most
    three: exact, then those it begins, then difflib's close matches), or None.

    One wording for the server's, the SDK's and the CLI's refusals of a category or code,
    so a typo (``ktp``, ``NPWP``, ``DOCUMENTS``) is answered with the likely intent rather
    than the 36 codes to read through.
    """
    folded = {choice.upper(): choice for choice in choices}
    wanted = value.strip().upper()
    if not wanted:
        return None
    if wanted in folded:
        found = [folded[wanted]]
    else:
        found = [folded[c] for c in folded if len(wanted) >= 3 and c.startswith(wanted)][:3]
        found = found or [
            folded[c] for c in difflib.get_close_matches(wanted, list(folded), n=3, cutoff=0.6)
        ]
    return f"did you mean {' or '.join(found)}?" if found else None


def _accepted(value: str, enum_type: type[Category] | type[DocumentCode]) -> str:
    hint = did_you_mean(value, (member.value for member in enum_type))
    return f"{hint + ' One' if hint else 'one'} of {_names(enum_type)}"


def parse_category(value: str | None) -> Category:
    """The upload's ``category`` field (docs/design.md 2.4), or ``InvalidRequest`` listing the
    accepted ones (``category_missing``, ``category_invalid``)."""
    if value is None or not value.strip():
        raise InvalidRequest(
            f"category is required; one of {_names(Category)}.", code=Code.CATEGORY_MISSING
        )
    try:
        return Category(value.strip())
    except ValueError:
        raise InvalidRequest(
            f"category {quoted(value)} is not accepted; {_accepted(value, Category)}.",
            code=Code.CATEGORY_INVALID,
        ) from None


def parse_document_code(category: Category, value: str | None) -> DocumentCode | None:
    """The upload's ``code`` field: required for DOCUMENT, ignored otherwise as DOKU does
    (docs/design.md 2.4); ``InvalidRequest`` (``code_missing``, ``code_invalid``)."""
    if category is not Category.DOCUMENT:
        return None
    if value is None or not value.strip():
        raise InvalidRequest(
            f"code is required when category is DOCUMENT; one of {_names(DocumentCode)}.",
            code=Code.CODE_MISSING,
        )
    try:
        return DocumentCode(value.strip())
    except ValueError:
        raise InvalidRequest(
            f"code {quoted(value)} is not a document code; {_accepted(value, DocumentCode)}.",
            code=Code.CODE_INVALID,
        ) from None


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
        profiles: Mapping[BusinessType, Profile],
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
        parsed = read_catalogue_file(path)
        return cls(
            default_max_size=parsed.default_max_size,
            home_nationality=parsed.home_nationality,
            requirements=parsed.requirements,
            profiles=parsed.profiles,
            foreign_contact=parsed.foreign_contact,
        )

    def requirements(
        self,
        business_type: str,
        legal_entity: str,
        brand_business_line: str,
        nationality: str,
    ) -> dict[str, Any]:
        """Return the File Requirements body (docs/design.md 2.3) for a kind of merchant.

        Raises ``InvalidRequest`` (code ``invalid_parameter``) naming the query
        parameter and listing the values accepted for it.
        """
        kind, foreign = self.answer_key(
            business_type, legal_entity, brand_business_line, nationality
        )
        return self.body(kind, legal_entity, brand_business_line, foreign=foreign)

    def answer_key(
        self,
        business_type: str,
        legal_entity: str,
        brand_business_line: str,
        nationality: str,
    ) -> tuple[BusinessType, bool]:
        """Check a requirements query as ``requirements`` does (same errors); the
        business type and whether the contact is foreign, which with the entity and the
        line decide the answer."""
        self._checked_profile(business_type, legal_entity, brand_business_line, nationality)
        return BusinessType(business_type), nationality != self._home_nationality

    def answers(self) -> Iterator[tuple[BusinessType, str, str, bool]]:
        """Every distinct requirements answer's key: (business type, legal entity,
        business line, foreign contact)."""
        for kind, profile in self._profiles.items():
            for legal_entity in profile.legal_entities:
                for line in profile.business_lines:
                    yield kind, legal_entity, line, False
                    yield kind, legal_entity, line, True

    def body(
        self, kind: BusinessType, legal_entity: str, brand_business_line: str, *, foreign: bool
    ) -> dict[str, Any]:
        """The requirements body for an already checked query (see ``answer_key``)."""
        profile = self._profiles[kind]
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
    ) -> Profile:
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
        if NATIONALITY.fullmatch(nationality) is None:
            raise InvalidRequest(
                f"businessContactNationality {quoted(nationality)} is not an ISO 3166-1 "
                "alpha-2 country code; expected two upper-case letters such as ID.",
                code=Code.INVALID_PARAMETER,
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
