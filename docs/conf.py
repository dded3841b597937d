"""Sphinx configuration of the sso_middleware documentation.

Build with ``.venv/bin/python -m sphinx -W --keep-going -b html docs docs/_build/html``
(``pip install -e '.[docs]'`` brings Sphinx and the extensions used here).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import typing as t

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.pycode import ModuleAnalyzer
from sphinx.util.docutils import SphinxDirective

import sso_middleware  # installed with the docs extra: pip install -e '.[docs]'

project = "sso_middleware"
author = "the sso_middleware authors"
copyright = "2026, the sso_middleware authors"
release = version = sso_middleware.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "sphinxcontrib.mermaid",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# Markdown: headings get anchors (``[text](page.md#a-heading)``), ``:::`` fences.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence", "deflist"]

# API reference: in source order, type hints in the description.
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
add_module_names = False

html_theme = "furo"
html_title = f"sso_middleware {release}"
html_static_path = ["_static"]
html_css_files = ["tables.css"]


def resolve_reexports(app: t.Any, env: t.Any, node: t.Any, contnode: t.Any) -> t.Any:
    """``sso_middleware.SSOMiddleware`` (as docstrings and users write it) is
    documented where it is defined, ``sso_middleware.middleware.SSOMiddleware``:
    resolve the short, re-exported names to the defining module's."""
    target = node.get("reftarget", "")
    if node.get("refdomain") != "py":
        return None
    if not target.startswith("sso_middleware."):
        # a name a module imported, written as that module sees it
        module_name = node.get("py:module") or ""
        if not module_name.startswith("sso_middleware"):
            return None
        target = f"{module_name}.{target.lstrip('.~')}"
    obj: t.Any = importlib.import_module("sso_middleware")
    parts = target.split(".")[1:]
    for part in parts:
        child = getattr(obj, part, None)
        if child is None and inspect.ismodule(obj):
            try:
                child = importlib.import_module(f"{obj.__name__}.{part}")
            except ImportError:
                child = None
        if child is None:
            return None
        obj = child
    if inspect.ismodule(obj):
        resolved = obj.__name__
    else:
        module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
        if not module or not qualname:
            return None
        resolved = f"{module}.{qualname}"
    if resolved == node.get("reftarget"):
        return None
    domain = env.get_domain("py")
    return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], resolved, node, contnode)


def ini_value(value: t.Any) -> str:
    """A default as it is written in an ini file."""
    from sso_middleware import Limit

    if value is None or value == {}:
        return "(none)"
    if isinstance(value, bool):
        return f"``{str(value).lower()}``"
    if isinstance(value, Limit):
        return f"``{value.attempts}/{value.window}``"
    return f"``{value}``"


def drop_module_title(app: t.Any, what: str, name: str, obj: t.Any, options: t.Any, lines: list[str]) -> None:
    """Module docstrings open with a title of their own; the reference page
    that documents the module has one already."""
    if (
        what == "module"
        and len(lines) >= 2
        and lines[0].strip()
        and set(lines[1].strip()) == {"="}
        and len(lines[1].strip()) >= len(lines[0].strip())
    ):
        del lines[:2]
        while lines and not lines[0].strip():
            del lines[0]


class IniOptions(SphinxDirective):
    """The table of the ini pipeline's option keys, built from
    :func:`sso_middleware.options.ini_fields`, so that the ini names, the
    Python options and their defaults have one source."""

    def run(self) -> list[nodes.Node]:
        from sso_middleware import options

        docs = ModuleAnalyzer.for_module(options.__name__).find_attr_docs()
        self.env.note_dependency(options.__file__)
        rows = []
        for ini, (group, field) in options.ini_fields().items():
            cls = options.GROUPS[group]
            if field.default is not dataclasses.MISSING:
                default = ini_value(field.default)
            elif field.default_factory is not dataclasses.MISSING:
                default = ini_value(field.default_factory())
            else:
                default = "required"
            if field.metadata.get("lines"):
                default += "; ``name = value`` lines"
            summary = " ".join(docs.get((cls.__name__, field.name), [])).strip()
            rows += [
                f"   * - ``{ini}``",
                (
                    f"     - :attr:`{group}={cls.__name__}({field.name})"
                    f" <{options.__name__}.{cls.__name__}.{field.name}>`"
                ),
                f"     - {default}",
                f"     - {summary}",
            ]
        text = [
            "",
            ".. list-table::",
            "   :header-rows: 1",
            "   :widths: 20 30 20 30",
            "",
            "   * - ini key",
            "     - Python option",
            "     - default",
            "     - meaning",
            *rows,
        ]
        container = nodes.container()
        self.state.nested_parse(StringList(text, source="ini_fields()"), self.content_offset, container)
        return container.children


def setup(app: t.Any) -> dict[str, t.Any]:
    app.connect("missing-reference", resolve_reexports)
    app.connect("autodoc-process-docstring", drop_module_title)
    app.add_directive("sso-ini-options", IniOptions)
    return {"parallel_read_safe": True}
