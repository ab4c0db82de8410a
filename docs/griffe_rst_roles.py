"""A griffe extension for the API reference: Sphinx roles in docstrings as code spans.

sagactor's docstrings cross-reference with Sphinx roles (:class:`SagaTimeout`, :meth:`~x.y`),
which Markdown would print as they are. This turns each into `SagaTimeout` (the last part of
the name for a ``~`` target, as Sphinx shows it). Loaded by mkdocs.yml; not part of the site.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|meth|func|mod|attr|data|exc|obj):`(~?)([^`]+)`")


def _code(match: re.Match[str]) -> str:
    short, target = match[1], match[2]
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


class RstRoles(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(_code, obj.docstring.value)
