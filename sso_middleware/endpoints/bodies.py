"""
Request bodies
==============

The admin API and the token endpoint read a form from the request body and
refuse a body over their limit with a 413, however it is framed.

werkzeug checks ``Content-Length`` against ``Request.max_content_length``
before reading, but a body without one (chunked, from a server that sets
``wsgi.input_terminated``, as gunicorn does) is read up to the limit and then
simply ends: the form would be parsed from a truncated body, and a parameter
after the cut would vanish without a word.

werkzeug also reads text that is not UTF-8 leniently: a raw ``\xff`` in a
form-encoded body drops the whole form, and ``%ff`` stays the text ``%FF``.
Both the body and the query string must be UTF-8 here, or reading the form
raises :exc:`UnicodeDecodeError` (a 400).
"""

from __future__ import annotations

import typing as t
from urllib.parse import parse_qsl

from werkzeug.exceptions import BadRequest, RequestEntityTooLarge
from werkzeug.wrappers import Request

if t.TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment


class BoundedRequest(Request):
    """A request whose form comes from a body of at most ``limit`` bytes;
    a longer one raises :exc:`~werkzeug.exceptions.RequestEntityTooLarge`
    when the form is first read.

    werkzeug may read one byte more than the limit (its ``max_content_length``
    is ``limit + 1``), so a body that has that byte is known to be too long,
    not taken for one that ends at the limit.
    """

    def __init__(self, environ: WSGIEnvironment, limit: int):
        super().__init__(environ)
        self.limit = limit
        self.max_content_length = limit + 1

    def _load_form_data(self) -> None:
        try:
            too_large = len(self.get_data(cache=True, parse_form_data=False)) > self.limit
        except RequestEntityTooLarge:  # werkzeug's own check of Content-Length
            too_large = True
        except Exception:  # the server could not read it: bad chunk framing, a client gone
            raise BadRequest("The request body could not be read") from None
        if too_large:
            raise RequestEntityTooLarge(f"The request body must not exceed {self.limit} bytes")
        _check_utf8(self.environ.get("QUERY_STRING", "").encode("latin-1"))
        if self.mimetype == "application/x-www-form-urlencoded":
            _check_utf8(self.get_data(cache=True, parse_form_data=False))
        super()._load_form_data()


def _check_utf8(encoded: bytes) -> None:
    """Raise :exc:`UnicodeDecodeError` unless every byte and every
    percent-escape of a form-encoded string is UTF-8."""
    parse_qsl(encoded.decode("utf-8"), keep_blank_values=True, errors="strict")
