"""The File Requirements use case (docs/design.md 2.3): which documents a merchant must provide."""

from __future__ import annotations

from typing import Any

from berkas.core.catalogue import Catalogue
from berkas.core.codes import Code
from berkas.core.errors import InvalidRequest

PARAMETERS = (
    "businessType",
    "businessLegalEntity",
    "brandBusinessLine",
    "businessContactNationality",
)


class RequirementsService:
    """Answers from the catalogue, which is data the operator may override."""

    def __init__(self, catalogue: Catalogue) -> None:
        self._catalogue = catalogue

    def lookup(self, query: dict[str, str]) -> dict[str, Any]:
        """The DOKU-shaped requirements body; each missing parameter is named."""
        missing = [name for name in PARAMETERS if not query.get(name, "").strip()]
        if missing:
            raise InvalidRequest(
                f"Query parameter {missing[0]} is required (required: {', '.join(PARAMETERS)}).",
                code=Code.PARAMETER_MISSING,
            )
        return self._catalogue.requirements(
            query["businessType"].strip(),
            query["businessLegalEntity"].strip(),
            query["brandBusinessLine"].strip(),
            query["businessContactNationality"].strip(),
        )
