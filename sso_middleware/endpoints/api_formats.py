"""
Admin API response types
========================

The reference system answers in the ``responsetype`` a caller asks for:

``json``
    ``{"result": "success", ...}``, the recommended type.
``xml``
    a ``whmcsapi`` document: ``action`` (in lower case), ``result`` and the
    fields, each a child element; a list is a wrapper holding one element
    per item (``<clients><client>…</client></clients>``).
``nvp``
    the deprecated ``result=success;access_token=…`` of old integrations.

Without ``responsetype`` it answers XML for list actions and NVP for the
rest (its documentation names no default; that is what its code does), so
:func:`default_type` does the same: an integration that never sent
``responsetype`` parses our answers as it parsed the reference system's.

The XML is built with :mod:`xml.etree.ElementTree`, so every value is
escaped; the ``version`` attribute is left empty, as the reference system
leaves it on errors, so no answer names the software behind it. NVP cannot
escape: a ``;`` or line break inside a value would let a value that echoes
input (an unknown scope, say) forge fields such as ``result=success`` in a
client's parser, so those characters are percent-encoded.
"""

from __future__ import annotations

import re
import typing as t
import xml.etree.ElementTree as ET

from ..responses import Answer, json_response

#: The types a caller may ask for.
RESPONSE_TYPES = ("json", "xml", "nvp")

#: Characters XML 1.0 cannot carry, even escaped; replaced by U+FFFD.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

#: Characters percent-encoded in NVP values: the separators.
_NVP_ESCAPES = {ord(c): f"%{ord(c):02X}" for c in ";\r\n"}


def default_type(structured: bool) -> str:
    """The type of an answer when the caller names none: XML for an action
    whose answer holds lists, NVP for the rest."""
    return "xml" if structured else "nvp"


def render(
    result: t.Mapping[str, t.Any],
    response_type: str,
    action: str,
    status: int = 200,
    *,
    headers: t.Mapping[str, str] | None = None,
) -> Answer:
    """``result`` as a response of ``response_type`` (one of
    :data:`RESPONSE_TYPES`); ``action`` is the lower-case name XML echoes."""
    if response_type == "xml":
        body, content_type = to_xml(result, action), "application/xml; charset=utf-8"
    elif response_type == "nvp":
        body, content_type = to_nvp(result).encode(), "text/plain; charset=utf-8"
    else:
        return json_response(result, status, headers=headers)
    return Answer(body, status, content_type, headers or {})


def to_xml(result: t.Mapping[str, t.Any], action: str) -> bytes:
    """The ``whmcsapi`` document, one element a line as the reference
    system writes it."""
    root = ET.Element("whmcsapi", version="")
    _add(root, "action", action)
    for name, value in result.items():
        _add(root, name, value)
    ET.indent(root, space="")
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document


def _add(parent: ET.Element, name: str, value: t.Any) -> None:
    if isinstance(value, t.Mapping):
        element = ET.SubElement(parent, name)
        for key, item in value.items():
            _add(element, key, item)
    elif isinstance(value, (list, tuple)):
        if value:  # as the reference system does, an empty list is left out
            wrapper = ET.SubElement(parent, name)
            for item in value:
                _add(wrapper, name[:-1] if name.endswith("s") else name + "_item", item)
    else:
        ET.SubElement(parent, name).text = _NOT_XML.sub("\ufffd", _scalar(value))


def to_nvp(result: t.Mapping[str, t.Any]) -> str:
    """``name=value;name=value``; only for answers without lists."""
    return ";".join(f"{name}={_scalar(value).translate(_NVP_ESCAPES)}" for name, value in result.items())


def _scalar(value: t.Any) -> str:
    """A value as PHP prints it: ``True`` as ``1``, ``False`` and ``None``
    as nothing."""
    if value is None or value is False:
        return ""
    if value is True:
        return "1"
    return str(value)
