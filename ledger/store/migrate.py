"""Apply the SQL files of `migrations/<backend>/` in order, once each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
TABLE = "tagledger_schema_migrations"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations_for(backend: str) -> list[Migration]:
    found = []
    for path in sorted((MIGRATIONS_DIR / backend).glob("[0-9][0-9][0-9]_*.sql")):
        found.append(Migration(int(path.name[:3]), path.stem, path.read_text(encoding="utf-8")))
    if not found:
        raise FileNotFoundError(f"no migrations in {MIGRATIONS_DIR / backend}")
    return found


def pending(applied: set[int], backend: str) -> list[Migration]:
    return [m for m in migrations_for(backend) if m.version not in applied]


def latest_version(backend: str) -> int:
    return migrations_for(backend)[-1].version


Apply = Callable[[Migration], None]
