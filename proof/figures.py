"""Figures: one measured value, the bar it must meet, and the verdict,
computed from the measurement (never written by hand)."""

from __future__ import annotations

import dataclasses
import typing as t


@dataclasses.dataclass
class Figure:
    #: The number of the property the figure is evidence for (1 single use,
    #: 2 replay, 3 expiry, 4 revocation and timeouts, 8 redirect safety,
    #: 9 parsers, 10 Redis faults, 11 no secrets at rest or in logs): the
    #: table's ``#`` column, and the N of "proof figure N" in the threat model.
    item: str
    name: str
    value: str
    bar: str
    ok: bool
    #: Free-form numbers for the JSON output and tests.
    data: dict[str, t.Any] = dataclasses.field(default_factory=dict)

    @property
    def verdict(self) -> str:
        return "pass" if self.ok else "FAIL"


def table(figures: t.Sequence[Figure], *, markdown: bool = True) -> str:
    rows = [("#", "figure", "measured", "bar", "result")]
    rows += [(f.item, f.name, f.value, f.bar, f.verdict) for f in figures]
    if markdown:
        lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows[1:]]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows)


def ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:.0f} ms"
