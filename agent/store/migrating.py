"""The schema's migrations in order: registered as sqlite-utils' Migrations are, applied by it,
and read without it.

A command that only reads asks which migrations its database has and whether it knows them all
(StoreTooNew): one SELECT on sqlite-utils' own table, without importing sqlite-utils (click,
dateutil and its plugins: a quarter of a read command's start-up). Applying them builds
sqlite-utils' Migrations from the same list at that moment. The schema itself is schema.py's;
nothing here changes the database but apply().
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import sqlite_utils
    from sqlite_utils.migrations import Migrations

Step = TypeVar("Step", bound=Callable[..., None])


@dataclass(frozen=True)
class Migration:
    name: str
    fn: Callable[..., None]
    transactional: bool = True


class Registry:
    """The migrations of one set, in the order they were registered (their order of use)."""

    # Where sqlite-utils records each applied migration (sqlite_utils.migrations.Migrations).
    TABLE = "_sqlite_migrations"

    def __init__(self, name: str) -> None:
        self.name = name
        self._migrations: list[Migration] = []

    def __call__(self, *, name: str, transactional: bool = True) -> Callable[[Step], Step]:
        """Register the decorated function as the migration `name`, after the others."""

        def register(fn: Step) -> Step:
            if name in self.names():
                raise ValueError(f"migration {name} is registered twice")
            self._migrations.append(Migration(name, fn, transactional))
            return fn

        return register

    def names(self) -> list[str]:
        return [m.name for m in self._migrations]

    def applied_names(self, conn: sqlite3.Connection) -> list[str]:
        """The names of this set's migrations the database has, in the order applied: what
        sqlite-utils' Migrations.applied() reads, with one SELECT."""
        exists = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (self.TABLE,)
        ).fetchone()
        if exists is None:
            return []
        rows = conn.execute(
            f"SELECT name FROM {self.TABLE} WHERE migration_set = ? ORDER BY rowid", (self.name,)
        )
        return [str(row[0]) for row in rows]

    def _as_sqlite_utils(self) -> Migrations:
        from sqlite_utils.migrations import Migrations  # noqa: PLC0415 - see the docstring

        out = Migrations(self.name)
        for m in self._migrations:
            out(name=m.name, transactional=m.transactional)(m.fn)
        return out

    def applied(self, db: sqlite_utils.Database) -> list[Any]:
        return self._as_sqlite_utils().applied(db)

    def apply(self, db: sqlite_utils.Database) -> None:
        """Apply the migrations the database does not have yet, in order (sqlite-utils)."""
        self._as_sqlite_utils().apply(db)
