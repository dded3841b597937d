"""
Parser targets (figure 9)
=========================

One in-process deployment over the real Redis and four entry points that
take arbitrary input, each with the only answers it may give. Shared by the
Hypothesis properties (:mod:`proof.parsers`) and the atheris harnesses
(:mod:`proof.fuzz`), so both hold the product to the same definition of "a defined
4xx or anonymous":

- the SSO query (any method, any ``QUERY_STRING``, prefetch headers);
- the admin API body (any bytes, any content type), answered in JSON, XML
  or NVP as the WHMCS contract defines (see :meth:`Targets.admin_form`);
- the token endpoint body, query and ``Authorization`` header;
- the session cookie (any ``Cookie`` header, including well-signed cookies
  of the middleware's own format naming no session: a random key, the key of
  a token never redeemed, or a live session's key with another secret).

Redis is up throughout, so a 503 (the catch-all for an unexpected
exception) counts as a crash, as does any ``error`` audit record (the
middleware's "failed unexpectedly" traceback) and any exception out of the
WSGI call.
"""

from __future__ import annotations

import io
import json
import logging
import re
import typing as t
import xml.etree.ElementTree as ET

from werkzeug.test import create_environ

from sso_middleware import AdminAPIOptions, Limit, Limits, SSOMiddleware, Stores, get_identity
from sso_middleware.credentials import hash_secret
from sso_middleware.demo import demo_user_store
from sso_middleware.responses import HARDENING_HEADERS
from sso_middleware.tokens import token_key

BASE = "https://portal.example.com"
SSO_PATH = "/oauth/singlesignon.php"
API_PATH = "/includes/api.php"
TOKEN_PATH = "/oauth/token.php"
COOKIE = "__Host-sso_session"
API_IDENTIFIER = "parsers"

SSO_ALLOWED = {400, 403, 405, 429}
#: Redis is up, so no 503: that would be the catch-all for an unexpected
#: exception. A failed action is 200 with ``result=error``, as in WHMCS.
API_ALLOWED = {200, 400, 403, 405, 413, 415, 429}
#: The admin API's answer types: JSON, the ``<whmcsapi>`` XML document, NVP.
API_JSON = "application/json"
API_XML = "application/xml; charset=utf-8"
API_NVP = "text/plain; charset=utf-8"
API_CONTENT_TYPES = {API_JSON, API_XML, API_NVP}
#: Statuses answered before the request is read (not a POST, too large, not
#: a form): always JSON, whatever ``responsetype`` says.
API_JSON_ONLY = {405, 413, 415}
#: What XML echoes as the action: lower case letters and digits only.
_ECHOED_ACTION = re.compile(r"[0-9a-z]{0,64}")
TOKEN_ALLOWED = {200, 400, 401, 405, 413, 429}

#: The headers every answer carries, by lower-case name.
HARDENING = {name.lower(): value for name, value in HARDENING_HEADERS}


class Crash(AssertionError):
    """An answer outside the defined set: ``kind`` names the defect (the
    same for every input that shows it), ``detail`` the input."""

    def __init__(self, kind: str, detail: str = ""):
        super().__init__(f"{kind} ({detail})" if detail else kind)
        self.kind = kind
        self.detail = detail


def _error_kind(record: logging.LogRecord) -> str:
    error = record.exc_info[1] if record.exc_info else None
    where = ""
    if error is not None and error.__traceback__ is not None:
        frame = error.__traceback__
        while frame.tb_next is not None:
            frame = frame.tb_next
        where = f" at {frame.tb_frame.f_code.co_filename.rsplit('/', 2)[-1]}:{frame.tb_lineno}"
    return f"{record.getMessage()}: {type(error).__name__ if error else '?'}{where}"


class _Unexpected(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "sso_event", None) == "error" or record.exc_info:
            self.records.append(record)


def echo(environ: t.Any, start_response: t.Any) -> t.Iterable[bytes]:
    identity = get_identity(environ)
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"identity": [identity.user_id, identity.client_id] if identity else None}).encode()]


class Targets:
    def __init__(self, redis_client: t.Any, secret_key: str, api_secret: str, *, quiet: bool = False):
        limit = Limit(10**7, 600)
        self.api_secret = api_secret
        self.app = SSOMiddleware(
            echo,
            system_url=BASE,
            secret_keys=[secret_key],
            user_store=demo_user_store(),
            stores=Stores.redis(redis_client, prefix="parsers:"),
            api=AdminAPIOptions(credentials={API_IDENTIFIER: hash_secret(api_secret)}),
            limits=Limits(redeem=limit, client_auth=limit, address_auth=limit),
        )
        self.signer = self.app.sessions.signer
        self.watch = _Unexpected()
        logger = logging.getLogger("sso_middleware")
        logger.addHandler(self.watch)
        if quiet:  # fuzzing: no denial printed per execution
            logger.propagate = False
            logger.setLevel(logging.DEBUG)
        status, _, body = self.call(
            "POST",
            API_PATH,
            body=_form(
                {
                    "action": "CreateOAuthCredential",
                    "identifier": API_IDENTIFIER,
                    "secret": api_secret,
                    "responsetype": "json",
                    "grantType": "single_sign_on",
                    "serviceId": "101",
                    "scope": "clientarea:invoices clientarea:product_details",
                }
            ),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        created = json.loads(body)
        self.client_id, self.client_secret = created["clientIdentifier"], created["clientSecret"]
        unspent = self.app.create_sso_token(client_id=1)["access_token"]
        redeemed = self.app.create_sso_token(client_id=1)["access_token"]
        status, _, _ = self.call("GET", SSO_PATH, query=f"access_token={redeemed}")
        assert status == 303, status
        #: Keys of real records a forged cookie may name: a token never
        #: redeemed, and the live session another token became.
        self.record_keys = [token_key(unspent), token_key(redeemed)]

    def close(self) -> None:
        logging.getLogger("sso_middleware").removeHandler(self.watch)

    # ------------------------------------------------------------------ plumbing

    def call(
        self,
        method: str,
        path: str,
        *,
        query: str = "",
        body: bytes = b"",
        headers: t.Mapping[str, str] | None = None,
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """One WSGI call with exactly these (latin-1) strings in the environ."""
        environ = create_environ(path=path, base_url=BASE, method=method)
        environ["QUERY_STRING"] = query
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("CONTENT_TYPE", None)
        for name, value in (headers or {}).items():
            key = name.upper().replace("-", "_")
            environ[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key] = value
        captured: dict[str, t.Any] = {}

        def start_response(
            status: str, response_headers: list[tuple[str, str]], exc_info: t.Any = None
        ) -> t.Any:
            captured["status"], captured["headers"] = status, response_headers
            return lambda data: None

        try:
            iterable = self.app(environ, start_response)
        except Exception as e:  # the WSGI server would answer 500
            raise Crash(f"{path}: {type(e).__name__} out of the middleware (a 500)", repr(e)[:120]) from e
        try:
            data = b"".join(iterable)
        finally:
            close = getattr(iterable, "close", None)
            if close is not None:
                close()
        return int(captured["status"].split()[0]), captured["headers"], data

    def _check(
        self, name: str, status: int, headers: list[tuple[str, str]], allowed: set[int], detail: str
    ) -> None:
        if self.watch.records:
            record = self.watch.records[0]
            self.watch.records.clear()
            raise Crash(f"{name}: {status} and unexpected error logged: {_error_kind(record)}", detail)
        if status not in allowed:
            raise Crash(f"{name}: status {status} not in {sorted(allowed)}", detail)
        names = {k.lower(): v for k, v in headers}
        for header, value in HARDENING.items():
            if names.get(header) != value:
                raise Crash(f"{name}: {status} without {header}: {value}", detail)

    # ------------------------------------------------------------------ the four targets

    def sso_query(self, method: str, query: str, purpose: str | None = None) -> int:
        headers = {"Sec-Purpose": purpose} if purpose is not None else {}
        status, response_headers, _ = self.call(method, SSO_PATH, query=query, headers=headers)
        allowed = set(SSO_ALLOWED)
        if purpose and ("prefetch" in purpose.lower() or "preview" in purpose.lower()):
            allowed.add(503)  # a prefetch is told to come back, by design
        self._check("SSO query", status, response_headers, allowed, f"{method} {query[:80]!r}")
        return status

    def admin_form(self, body: bytes, content_type: str | None, method: str = "POST") -> int:
        headers = {"Content-Type": content_type} if content_type is not None else {}
        status, response_headers, data = self.call(method, API_PATH, body=body, headers=headers)
        self._check("admin API form", status, response_headers, API_ALLOWED, f"{body[:80]!r}")
        content_type = next((v for k, v in response_headers if k.lower() == "content-type"), None)
        if content_type not in API_CONTENT_TYPES:
            raise Crash(f"admin API: {status} with Content-Type {content_type!r}", f"{body[:80]!r}")
        if status in API_JSON_ONLY and content_type != API_JSON:
            raise Crash(f"admin API: {status} as {content_type}, not JSON", f"{body[:80]!r}")
        if content_type == API_JSON:
            result = _json_result(data)
        elif content_type == API_XML:
            result = _xml_result(data)
        else:
            result = _nvp_result(data)
        if result not in ("success", "error"):
            raise Crash(f"admin API {content_type} answer without a result", repr(data[:80]))
        if result == "success" and status != 200:
            raise Crash(f"admin API: result=success with status {status}", repr(data[:80]))
        return status

    def token_form(
        self,
        body: bytes,
        query: str = "",
        authorization: str | None = None,
        content_type: str | None = "application/x-www-form-urlencoded",
    ) -> int:
        headers = {}
        if authorization is not None:
            headers["Authorization"] = authorization
        if content_type is not None:
            headers["Content-Type"] = content_type
        status, response_headers, data = self.call(
            "POST", TOKEN_PATH, query=query, body=body, headers=headers
        )
        self._check(
            "token endpoint form + Basic",
            status,
            response_headers,
            TOKEN_ALLOWED,
            f"{body[:60]!r} auth={authorization!r:.60}",
        )
        answer = json.loads(data)
        if status != 200 and "error" not in answer:
            raise Crash("token endpoint error without 'error'", repr(answer)[:80])
        return status

    def cookie(self, header: str) -> None:
        status, _, data = self.call("GET", "/page", headers={"Cookie": header})
        if self.watch.records:
            record = self.watch.records[0]
            self.watch.records.clear()
            raise Crash(f"cookie: unexpected error logged: {_error_kind(record)}", repr(header[:80]))
        if status != 200:
            raise Crash(f"cookie: status {status}", repr(header[:80]))
        if json.loads(data)["identity"] is not None:
            raise Crash("cookie: a forged cookie signed someone in", repr(header[:80]))

    def signed(self, payload: str) -> str:
        """A cookie value with a valid signature over ``payload``: it gets past
        the signature and must still name no session."""
        return self.signer.sign(payload.encode("utf-8", "surrogatepass")).decode("latin-1")


def _json_result(data: bytes) -> t.Any:
    """The ``result`` of a JSON answer: an object whose errors carry a message."""
    try:
        answer = json.loads(data)
    except ValueError:
        raise Crash("admin API answered non-JSON as JSON", repr(data[:80])) from None
    if not isinstance(answer, dict):
        raise Crash("admin API JSON answer not an object", repr(data[:80]))
    if answer.get("result") == "error" and not (isinstance(answer.get("message"), str) and answer["message"]):
        raise Crash("admin API JSON error without a message", repr(data[:80]))
    return answer.get("result")


def _xml_result(data: bytes) -> str | None:
    """The ``result`` of a ``<whmcsapi>`` document, which echoes the action
    (letters and digits only) and holds each field once."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        raise Crash("admin API answered malformed XML", repr(data[:80])) from None
    if root.tag != "whmcsapi":
        raise Crash(f"admin API XML root <{root.tag[:20]}>, not <whmcsapi>", repr(data[:80]))
    names = [child.tag for child in root]
    if len(names) != len(set(names)):
        raise Crash("admin API XML with a field twice", repr(data[:80]))
    action = root.find("action")
    if action is None or not _ECHOED_ACTION.fullmatch(action.text or ""):
        raise Crash("admin API XML without a clean <action> echo", repr(data[:80]))
    result = root.find("result")
    return None if result is None else result.text


def _nvp_result(data: bytes) -> str | None:
    """The ``result`` of a ``name=value;...`` answer, which must parse as a
    client parses it: every field a pair, none twice (a value cannot forge
    another ``result``)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise Crash("admin API NVP answer not UTF-8", repr(data[:80])) from None
    pairs = [field.split("=", 1) for field in text.split(";")]
    if any(len(pair) != 2 for pair in pairs) or "\n" in text or "\r" in text:
        raise Crash("admin API NVP answer that does not parse", repr(data[:80]))
    fields = dict(pairs)
    if len(fields) != len(pairs):
        raise Crash("admin API NVP answer with a field twice", repr(data[:80]))
    if fields.get("result") == "error" and not fields.get("message"):
        raise Crash("admin API NVP error without a message", repr(data[:80]))
    return fields.get("result")


def _form(fields: dict[str, str]) -> bytes:
    from urllib.parse import urlencode

    return urlencode(fields).encode()
