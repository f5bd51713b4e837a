"""The ``?sort=`` of a list page: one of its columns, ``-`` before it for descending.

A page declares its sortable columns (key → the fields it orders by) and its default;
:class:`Sorting` reads the parameter, orders a queryset, and gives each column header the
value its link sets (the reverse order for the column sorted by). A key that is no column
is ignored, with a message for the page, so a hand-edited address never fails.
"""

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from django.db.models import F, QuerySet


@dataclass(frozen=True)
class SortHeader:
    """What a column header links to (``link``: the ``sort`` value) and how the list is
    sorted by it now (``aria``: ``ascending``, ``descending`` or ``None``)."""

    link: str
    aria: str | None

    @property
    def arrow(self) -> str:
        return {"ascending": "▲", "descending": "▼"}.get(self.aria or "", "")


class Sorting:
    """``value`` (the page's ``?sort=``) read against ``columns``.

    ``columns`` maps each key to the fields it orders by; each field may hold nulls, which
    sort last either way. ``tiebreak`` orders rows the key leaves equal (then ``pk``), so
    pages never repeat or skip a row. A header of a column in ``descending_first`` (dates,
    amounts: the largest is what one looks for) sorts descending on its first click."""

    def __init__(
        self,
        value: str | None,
        *,
        columns: Mapping[str, Sequence[str]],
        default: str,
        tiebreak: Sequence[str] = (),
        descending_first: Collection[str] = (),
    ):
        self.columns = columns
        self.descending_first = descending_first
        self.tiebreak = tiebreak
        raw = (value or "").strip()
        self.error: str | None = None
        if raw and raw.removeprefix("-") not in columns:
            self.error = (
                f"“{raw}” is not a column to sort by, so the list is in its usual order. "
                f"Sort by {', '.join(columns)}, with - before it for descending."
            )
            raw = ""
        self.value = raw or default
        self.key = self.value.removeprefix("-")
        self.descending = self.value.startswith("-")

    def order(self, queryset: QuerySet) -> QuerySet:
        fields = [
            F(name).desc(nulls_last=True) if self.descending else F(name).asc(nulls_last=True)
            for name in self.columns[self.key]
        ]
        return queryset.order_by(*fields, *self.tiebreak, "pk")

    @property
    def headers(self) -> dict[str, SortHeader]:
        """Per column key, the header's link and state."""
        headers = {}
        for key in self.columns:
            if key != self.key:
                first = f"-{key}" if key in self.descending_first else key
                headers[key] = SortHeader(link=first, aria=None)
            elif self.descending:
                headers[key] = SortHeader(link=key, aria="descending")
            else:
                headers[key] = SortHeader(link=f"-{key}", aria="ascending")
        return headers
