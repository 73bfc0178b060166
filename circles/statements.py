"""The room's hot statements, compiled by Django once per connection, then only bound.

Profiling a share (docs/scaling.md) showed half of its CPU in Django building the
same few statements again and again. Here the ORM still writes them (tables,
columns, joins, quoting, how values go in and come back), but once per database
connection; a share only binds its values. On PostgreSQL the writes of one
transaction also travel together, as one statement (data-modifying WITH), so a
share costs two round trips: the locking read and the writes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from weakref import WeakKeyDictionary

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Model, QuerySet, UUIDField


@dataclass(frozen=True)
class Write:
    """One INSERT or UPDATE, ready to run."""

    sql: str
    params: list
    returns: bool = False


# How a parameter of a prepared query is adapted for the database, by kind.
_ADAPT: dict[str, Callable[[Any], Any]] = {
    "int": lambda value: value,
    "datetime": lambda value: connection.ops.adapt_datetimefield_value(value),
    "uuid": lambda value: UUIDField().get_db_prep_value(value, connection),
}


def _sentinel(kind: str, number: int):
    """A value no real query uses, recognisable among the compiled parameters."""
    if kind == "int":
        return -(10**12) - number
    if kind == "datetime":
        return datetime(2001, 2, 3, 4, 5, 6, 1000 + number, tzinfo=UTC)
    return uuid.UUID(int=0xFEED0000 + number)


def _same(sentinel, value) -> bool:
    return type(sentinel) is type(value) and sentinel == value


class PreparedQuery:
    """A `values_list` query built by `build(**params)`, compiled on its first run on
    each connection and afterwards only bound to new values. `params` names each
    parameter's kind: "int", "datetime" or "uuid"."""

    def __init__(self, build: Callable[..., QuerySet], **params: str):
        self.build = build
        self.kinds = params
        self._compiled: WeakKeyDictionary = WeakKeyDictionary()

    def _compile(self):
        sentinels = {name: _sentinel(kind, n) for n, (name, kind) in enumerate(self.kinds.items())}
        queryset = self.build(**sentinels)
        compiler = queryset.query.get_compiler(using=queryset.db)
        sql, compiled_params = compiler.as_sql()
        adapted = {name: _ADAPT[self.kinds[name]](value) for name, value in sentinels.items()}
        # Each compiled parameter is one of ours (by name) or a constant of the query
        # (a status, a LIMIT): kept as compiled.
        order = []
        for value in compiled_params:
            names = [name for name, sentinel in adapted.items() if _same(sentinel, value)]
            if len(names) > 1:
                raise ValueError(f"cannot tell which parameter {value!r} is")
            order.append((names[0], None) if names else (None, value))
        if {name for name, _constant in order} - {None} != set(self.kinds):
            raise ValueError("a parameter of the query was not found in its SQL")
        return compiler, sql, order

    def rows(self, **values) -> list[list]:
        wrapper = connections[DEFAULT_DB_ALIAS]  # this thread's connection
        compiled = self._compiled.get(wrapper)
        if compiled is None:
            compiled = self._compiled[wrapper] = self._compile()
        compiler, sql, order = compiled
        params = [
            constant if name is None else _ADAPT[self.kinds[name]](values[name])
            for name, constant in order
        ]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        return list(compiler.results_iter(results=[rows]))


# Writes --------------------------------------------------------------------------

_write_sql: dict[tuple, str] = {}


def _fields(model: type[Model], names) -> list:
    return [model._meta.get_field(name) for name in names]


def _adapted(fields: list, values: dict[str, Any]) -> list:
    return [
        field.get_db_prep_save(value, connection)
        for field, value in zip(fields, values.values(), strict=True)
    ]


def insert(model: type[Model], values: dict[str, Any], *, returning_pk: bool = False) -> Write:
    """INSERT one row; `values` by attname."""
    fields = _fields(model, values)
    key = ("insert", model, tuple(values), returning_pk, connection.vendor)
    sql = _write_sql.get(key)
    if sql is None:
        quote = connection.ops.quote_name
        columns = ", ".join(quote(field.column) for field in fields)
        holes = ", ".join(["%s"] * len(fields))
        sql = f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES ({holes})"  # noqa: S608
        if returning_pk:
            sql += f" RETURNING {quote(model._meta.pk.column)}"
        _write_sql[key] = sql
    return Write(sql, _adapted(fields, values), returns=returning_pk)


def insert_instance(instance: Model, *, returning_pk: bool = False) -> Write:
    """INSERT a model instance built in Python (its defaults applied): every column
    but an automatic primary key."""
    values = {
        field.attname: field.pre_save(instance, add=True)
        for field in instance._meta.concrete_fields
        if not (field.primary_key and getattr(instance, field.attname) is None)
    }
    return insert(type(instance), values, returning_pk=returning_pk)


def update(model: type[Model], pk, values: dict[str, Any]) -> Write:
    """UPDATE one row by primary key; `values` by attname."""
    fields = _fields(model, values)
    key = ("update", model, tuple(values), connection.vendor)
    sql = _write_sql.get(key)
    if sql is None:
        quote = connection.ops.quote_name
        sets = ", ".join(f"{quote(field.column)} = %s" for field in fields)
        table, pk_column = quote(model._meta.db_table), quote(model._meta.pk.column)
        sql = f"UPDATE {table} SET {sets} WHERE {pk_column} = %s"  # noqa: S608
        _write_sql[key] = sql
    params = _adapted(fields, values)
    params.append(model._meta.pk.get_db_prep_value(pk, connection))
    return Write(sql, params)


def run_writes(writes: list[Write]):
    """Run the writes in order; return the primary key the last one returned, if it
    returns one (only the last may). On PostgreSQL: one statement for all."""
    if not writes:
        return None
    if any(write.returns for write in writes[:-1]):
        raise ValueError("only the last write may return its primary key")
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql" and len(writes) > 1:
            # Data-modifying WITH: every part runs, in one round trip and one snapshot
            # (these writes touch different rows and read nothing the others write).
            parts = ", ".join(f"w{n} AS ({write.sql})" for n, write in enumerate(writes[:-1]))
            cursor.execute(
                f"WITH {parts} {writes[-1].sql}",
                [param for write in writes for param in write.params],
            )
        else:
            for write in writes:
                cursor.execute(write.sql, write.params)
        return cursor.fetchone()[0] if writes[-1].returns else None
