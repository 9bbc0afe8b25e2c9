"""The HMAC-signed DOKU endpoints (docs/design.md 2.1-2.3): Generate Token, File Requirements."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from berkas.api import observe, openapi, schemas
from berkas.api.deps import ServicesDep, json_object, signed_request, small_body
from berkas.api.errors import error_response
from berkas.api.threads import in_thread
from berkas.core.codes import Code
from berkas.core.errors import AuthenticationFailed, BerkasError, InvalidRequest
from berkas.core.models import Client
from berkas.core.wire import API_PREFIX
from berkas.services.bundle import Services
from berkas.services.signed import SignedRequest

router = APIRouter(prefix=API_PREFIX, tags=["partner"])


@router.post(
    "/token",
    summary="Generate Token (DOKU)",
    response_model=schemas.TokenResponse,
    responses=openapi.TOKEN_ERRORS,
    openapi_extra=openapi.TOKEN_BODY,
)
async def token(request: Request, svc: ServicesDep) -> Response:
    _not_a_bearer_endpoint(request)
    body = await small_body(request)
    signed = signed_request(request, body)

    def issue(client: Client) -> Response:
        payload = json_object(body)
        if payload.get("grant_type") != "client_credentials":
            raise InvalidRequest(
                'grant_type must be "client_credentials".', code=Code.GRANT_TYPE_INVALID
            )
        issued = svc.tokens.issue_to(client, payload.get("valid_time"))
        return JSONResponse(schemas.TokenResponse(token=issued.token).model_dump())

    return await _once(svc, signed, issue)


@router.get(
    "/file",
    summary="File Requirements (DOKU)",
    responses={
        200: {
            "description": "The documents a merchant of this kind must provide "
            "(DOKU's shape; the example is PERSONAL / PERSEORANGAN / RETAIL / ID).",
            "content": {"application/json": {"example": openapi.REQUIREMENTS_EXAMPLE}},
        },
        **openapi.REQUIREMENTS_ERRORS,
    },
    openapi_extra={"parameters": openapi.SIGNED_HEADERS + openapi.REQUIREMENT_QUERY},
)
async def requirements(request: Request, svc: ServicesDep) -> Response:
    _not_a_bearer_endpoint(request)
    signed = signed_request(request, None)
    query = request.query_params

    def lookup(_: Client) -> Response:
        repeated = sorted({k for k in query if len(query.getlist(k)) > 1})
        if repeated:
            raise InvalidRequest(
                f"query parameter {repeated[0]} is given more than once; send it once.",
                code=Code.PARAMETER_REPEATED,
            )
        # Built once at start (RequirementsService); JSONResponse would serialize again.
        return Response(svc.requirements.answer(dict(query)), media_type="application/json")

    return await _once(svc, signed, lookup)


def _not_a_bearer_endpoint(request: Request) -> None:
    # A bearer token where DOKU's signature is due (docs/design.md 2.1: token and
    # requirements are HMAC-signed; only the file operations take the token) would
    # otherwise hear "the Client-Id header is required", which hides the mix-up.
    headers = request.headers
    if (
        headers.get("authorization", "").lower().startswith("bearer")
        and headers.get("client-id") is None
        and headers.get("signature") is None
    ):
        raise AuthenticationFailed(
            f"{request.method} {request.url.path} takes DOKU's signature headers (Client-Id, "
            "Request-Id, Request-Timestamp, Signature: HMACSHA256 over them), not a bearer "
            "token; the bearer token is for uploads (POST /file) and /file/{id}.",
            code=Code.HEADER_MISSING,
        )


async def _once(
    svc: Services,
    signed: SignedRequest,
    handler: Callable[[Client], Response],
) -> Response:
    """Authenticate, then answer a signed request at most once per Request-Id (DOKU's
    idempotency rule).

    Both signed endpoints only compute their answer (no other effect), so the work runs
    first and the answer is stored once, in one write; a Request-Id used first gets the
    first answer (or a conflict) instead of this one. A request over the client's rate
    is refused before that, so its Request-Id stays unused for the retry. All of it (the
    client lookup, the RSA signature, the write) is blocking work done in one
    worker-thread trip: a trip per step cost a thread hand-off each, and signing on the
    event loop stalled it.
    """

    def answer() -> Response:
        try:
            client = svc.signed.authenticate(signed)
        except AuthenticationFailed:
            observe.note_claimed(signed.client_id)
            raise
        observe.note_client(client.client_id)
        svc.limits.admit_request(client.client_id)
        try:
            response = handler(client)
        except BerkasError as exc:
            response = error_response(exc)
        try:
            svc.signed.record(client, signed, response.status_code, bytes(response.body))
        except BerkasError as exc:
            return error_response(exc)
        return response

    return await in_thread(answer)
