"""Contact data at send time: ``GET /internal/v1/customers/{id}/contact`` on the profile service.

Authenticated with the notifier's bearer token. The answer lives in memory for
one send and is never stored or logged: the public topic and the connector's
tables carry no phone number or e-mail address.
"""

from __future__ import annotations

from http import HTTPStatus
from urllib.parse import quote

import aiohttp
import msgspec

from services.sync_connector.http_clients import HttpClient
from services.sync_connector.notify.settings import ProfileApiSettings
from services.sync_connector.outcome import TRANSIENT_4XX

CONTACT_PATH = "/internal/v1/customers/{customer_id}/contact"
PROFILE_NOT_FOUND = "PROFILE_NOT_FOUND"


class Contact(msgspec.Struct, frozen=True, rename="camel"):
    customer_id: str
    customer_name: str
    contact_phone: str | None = None
    contact_email: str | None = None
    preferred_language: str | None = None


class _Problem(msgspec.Struct):
    code: str = ""


class ContactLookupError(Exception):
    """No contact data now; ``retryable`` says whether asking again later can help."""

    def __init__(self, detail: str, *, retryable: bool) -> None:
        super().__init__(detail)
        self.retryable = retryable


class ProfileContacts:
    """Asks through the profile service's own ``HttpClient`` (its pool; waiting for a connection is not failing)."""

    def __init__(self, settings: ProfileApiSettings, client: HttpClient) -> None:
        self._base_url = settings.url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {settings.token}"} if settings.token else {}
        self._client = client

    async def lookup(self, customer_id: str) -> Contact | None:
        """The customer's contact data; None when the profile service has no such (live) customer."""
        url = self._base_url + CONTACT_PATH.format(customer_id=quote(customer_id, safe=""))
        try:
            async with self._client.request("GET", url, headers=self._headers) as response:
                status, body = response.status, await response.read()
        except TimeoutError as exc:
            raise ContactLookupError("profile service: no answer within the timeout", retryable=True) from exc
        except aiohttp.ClientError as exc:
            raise ContactLookupError(f"profile service: {type(exc).__name__}: {exc}", retryable=True) from exc
        return _contact_from(status, body)


def _contact_from(status: int, body: bytes) -> Contact | None:
    if status == HTTPStatus.OK:
        try:
            return msgspec.json.decode(body, type=Contact)
        except msgspec.DecodeError as exc:
            raise ContactLookupError(f"profile service: unreadable contact: {exc}", retryable=True) from exc
    if status == HTTPStatus.NOT_FOUND and _problem_code(body) == PROFILE_NOT_FOUND:
        return None
    retryable = status in TRANSIENT_4XX or status >= HTTPStatus.INTERNAL_SERVER_ERROR
    code = _problem_code(body)
    raise ContactLookupError(f"profile service: HTTP {status}{f' {code}' if code else ''}", retryable=retryable)


def _problem_code(body: bytes) -> str:
    try:
        return msgspec.json.decode(body, type=_Problem).code
    except msgspec.DecodeError:
        return ""
