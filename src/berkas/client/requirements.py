"""The requirements resource: which documents a merchant must provide (GET /file,
docs/design.md 2.3)."""

from __future__ import annotations

from berkas.client import models
from berkas.client.flow import Flow
from berkas.client.models import Requirements
from berkas.client.session import PREFIX, Session, response_json


class RequirementCalls:
    """The requirements flow, over a ``Session``."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def requirements(
        self, business_type: str, legal_entity: str, brand_business_line: str, nationality: str
    ) -> Flow[Requirements]:
        params = {
            "businessType": str(business_type),
            "businessLegalEntity": legal_entity,
            "brandBusinessLine": brand_business_line,
            "businessContactNationality": nationality,
        }
        response = yield from self._session.signed("GET", f"{PREFIX}/file", params=params)
        return models.parse_requirements(response_json(response))
