"""The File Requirements use case (docs/design.md 2.3): which documents a merchant must provide."""

from __future__ import annotations

import json
from typing import Any

from berkas.core.catalogue import Catalogue
from berkas.core.catalogue_types import BusinessType
from berkas.core.codes import Code
from berkas.core.errors import InvalidRequest

PARAMETERS = (
    "businessType",
    "businessLegalEntity",
    "brandBusinessLine",
    "businessContactNationality",
)


class RequirementsService:
    """Answers from the catalogue, which is data the operator may override.

    The catalogue is read once at start and never changes while serving, so every
    distinct answer is serialized here, once: a request only checks its query and picks
    the bytes.
    """

    def __init__(self, catalogue: Catalogue) -> None:
        self._catalogue = catalogue
        self._answers: dict[tuple[BusinessType, str, str, bool], bytes] = {
            (kind, entity, line, foreign): _json(
                catalogue.body(kind, entity, line, foreign=foreign)
            )
            for kind, entity, line, foreign in catalogue.answers()
        }

    def answer(self, query: dict[str, str]) -> bytes:
        """The DOKU-shaped requirements body as the JSON bytes the API sends, built at
        start; each missing parameter is named."""
        missing = [name for name in PARAMETERS if not query.get(name, "").strip()]
        if missing:
            raise InvalidRequest(
                f"Query parameter {missing[0]} is required (required: {', '.join(PARAMETERS)}).",
                code=Code.PARAMETER_MISSING,
            )
        entity = query["businessLegalEntity"].strip()
        line = query["brandBusinessLine"].strip()
        kind, foreign = self._catalogue.answer_key(
            query["businessType"].strip(),
            entity,
            line,
            query["businessContactNationality"].strip(),
        )
        return self._answers[kind, entity, line, foreign]


def _json(body: dict[str, Any]) -> bytes:
    # Byte for byte what starlette's JSONResponse.render makes of the same dict, so the
    # answer (and the copy a replay gets back, docs/design.md 2.1) is unchanged.
    return json.dumps(
        body, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")
