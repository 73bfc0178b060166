"""SQL expressions Django doesn't ship for both of our databases."""

from __future__ import annotations

from django.db.models import Subquery, TextField


class IdList(Subquery):
    """The integer ids a one-column subquery returns, as one value in the outer row:
    `ids_from` turns it into a frozenset. It saves a round trip for each list read
    beside a lock (who is present, for instance)."""

    output_field = TextField()

    def __init__(self, queryset, column: str):
        super().__init__(queryset.values(column))
        self.column = column

    def as_postgresql(self, compiler, connection, **extra):
        template = "ARRAY_TO_STRING(ARRAY(%(subquery)s), ',')"
        return self.as_sql(compiler, connection, template=template, **extra)

    def as_sqlite(self, compiler, connection, **extra):
        # The column is a name from our code, quoted; never anything a person typed.
        column = connection.ops.quote_name(self.column)
        template = f"(SELECT GROUP_CONCAT({column}, ',') FROM (%(subquery)s))"  # noqa: S608
        return self.as_sql(compiler, connection, template=template, **extra)


def ids_from(value: str | None) -> frozenset[int]:
    return frozenset(int(part) for part in value.split(",")) if value else frozenset()
