"""
Request bodies
==============

The admin API and the token endpoint read a form from the request body and
refuse a body over their limit with a 413, however it is framed.

werkzeug checks ``Content-Length`` against ``Request.max_content_length``
before reading, but a body without one (chunked, from a server that sets
``wsgi.input_terminated``, as gunicorn does) is read up to the limit and then
simply ends: the form would be parsed from a truncated body, and a parameter
after the cut would vanish without a word. Such a server also ends a body
that stops short of its ``Content-Length`` (a client gone, or half-closed)
without an error; that is a 400 here too.

werkzeug also reads text that is not UTF-8 leniently: a raw ``\xff`` in a
form-encoded body drops the whole form, and ``%ff`` stays the text ``%FF``.
Here both are parsed strictly, once, and such text is a 400.
"""

from __future__ import annotations

import typing as t
from urllib.parse import parse_qsl

from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge
from werkzeug.formparser import FormDataParser
from werkzeug.http import parse_options_header
from werkzeug.utils import cached_property
from werkzeug.wrappers import Request
from werkzeug.wsgi import get_content_length, get_input_stream

if t.TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

#: What a form or query string that is not UTF-8 is answered with.
NOT_UTF8 = "Parameters must be UTF-8"

#: What a body that could not be read is answered with.
UNREADABLE = "The request body could not be read"

#: The media type of a form-encoded body.
FORM_ENCODED = "application/x-www-form-urlencoded"


def _too_large(limit: int) -> RequestEntityTooLarge:
    return RequestEntityTooLarge(f"The request body must not exceed {limit} bytes")


def _check_complete(environ: WSGIEnvironment, body: bytes) -> None:
    """Refuse a body shorter than its ``Content-Length``: the client went
    away mid-body (or half-closed), and a server that terminates the input
    itself, as gunicorn does, just ends the stream there. The form would be
    parsed from what arrived, a parameter after the cut vanishing without a
    word."""
    declared = get_content_length(environ)
    if declared is not None and len(body) < declared:
        raise BadRequest(UNREADABLE)


def _parse_strictly(text: bytes) -> list[tuple[str, str]]:
    """``name=value&…`` whose bytes and percent-escapes are all UTF-8, or
    :exc:`~werkzeug.exceptions.BadRequest` (not a :exc:`ValueError`, which
    werkzeug's form parser would swallow into an empty form)."""
    try:
        return parse_qsl(text.decode(), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise BadRequest(NOT_UTF8) from None


class _StrictFormParser(FormDataParser):
    """werkzeug's form parser, with the form-encoded body read strictly."""

    def _parse_urlencoded(
        self, stream: t.IO[bytes], mimetype: str, content_length: int | None, options: dict[str, str]
    ) -> tuple[t.IO[bytes], MultiDict[str, str], MultiDict[str, t.Any]]:
        return stream, self.cls(_parse_strictly(stream.read())), self.cls()


class BoundedRequest(Request):
    """A request whose form comes from a body of at most ``limit`` bytes;
    a longer one raises :exc:`~werkzeug.exceptions.RequestEntityTooLarge`
    when the form is first read. The query string and a form-encoded body
    must be UTF-8, escapes included, or reading them raises
    :exc:`~werkzeug.exceptions.BadRequest`.

    werkzeug may read one byte more than the limit (its ``max_content_length``
    is ``limit + 1``), so a body that has that byte is known to be too long,
    not taken for one that ends at the limit.
    """

    form_data_parser_class = _StrictFormParser

    def __init__(self, environ: WSGIEnvironment, limit: int):
        super().__init__(environ)
        self.limit = limit
        self.max_content_length = limit + 1

    @cached_property
    def args(self) -> MultiDict[str, str]:
        return self.parameter_storage_class(_parse_strictly(self.query_string))

    def _load_form_data(self) -> None:
        _read(lambda: self.get_data(cache=True, parse_form_data=False), self.environ, self.limit)
        super()._load_form_data()  # from the data read and cached above


class FormPost:
    """The parts of a request that the token endpoint reads (its query
    string, its form-encoded body, its media type and ``Authorization``),
    read as strictly and within the same limit as :class:`BoundedRequest`
    does, through werkzeug's own input stream, without building a
    ``Request``: on a token grant a werkzeug ``Request`` cost more than the
    endpoint's own checks (``benchmarks.lean_paths``).

    A body of any other media type is not read: the endpoint refuses it.

    :raises ~werkzeug.exceptions.RequestEntityTooLarge: for a body over
        ``limit`` bytes, however it is framed.
    :raises ~werkzeug.exceptions.BadRequest: for a body the server could not
        read, or text that is not UTF-8.
    """

    __slots__ = ("environ", "mimetype", "authorization", "args", "form")

    def __init__(self, environ: WSGIEnvironment, limit: int):
        self.environ = environ
        #: The body's media type, lower case, without parameters.
        self.mimetype = parse_options_header(environ.get("CONTENT_TYPE", ""))[0].lower()
        #: The ``Authorization`` header, ``""`` without one.
        self.authorization: str = environ.get("HTTP_AUTHORIZATION", "")
        #: The query string's parameters.
        self.args = MultiDict(_parse_strictly(environ.get("QUERY_STRING", "").encode("latin-1")))
        #: The body's parameters (none unless form-encoded).
        self.form: MultiDict[str, str] = MultiDict()
        if self.mimetype == FORM_ENCODED:
            stream = get_input_stream(environ, max_content_length=limit + 1)
            self.form = MultiDict(_parse_strictly(_read(stream.read, environ, limit)))


def _read(read: t.Callable[[], bytes], environ: WSGIEnvironment, limit: int) -> bytes:
    """The body ``read`` returns from a stream limited to ``limit`` + 1
    bytes (to tell a longer body from one that ends at the limit), read to
    its end, so that a body shorter than its ``Content-Length`` is noticed:
    at most ``limit`` bytes, whole, or an HTTP error."""
    try:
        body = read()
    except RequestEntityTooLarge:  # werkzeug's own check of Content-Length
        raise _too_large(limit) from None
    except Exception:  # the server could not read it: bad chunk framing, a client gone
        raise BadRequest(UNREADABLE) from None
    if len(body) > limit:
        raise _too_large(limit)
    _check_complete(environ, body)
    return body
