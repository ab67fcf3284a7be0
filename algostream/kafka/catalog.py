"""The topic catalog (``topics/topics.toml``): load, validate, look up.

>>> cat = load_catalog()
>>> cat["md.book"].record_type.TYPE
'BookUpdate'
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from algostream.kafka.errors import CatalogError
from algostream.model.records import RECORD_TYPES, Record

DEFAULT_CATALOG = Path(__file__).resolve().parents[2] / "topics" / "topics.toml"
_TOPIC_KEYS = {
    "name",
    "key",
    "record",
    "partitions",
    "replication_factor",
    "retention_ms",
    "cleanup",
    "description",
}


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str
    record: str
    partitions: int
    replication_factor: int
    retention_ms: int | None
    cleanup: str
    description: str

    @property
    def record_type(self) -> type[Record]:
        return RECORD_TYPES[self.record]

    def configs(self) -> dict[str, str]:
        """Topic-level configs managed by the catalog."""
        out = {"cleanup.policy": self.cleanup}
        if self.retention_ms is not None and self.cleanup == "delete":
            out["retention.ms"] = str(self.retention_ms)
        return out

    def full_name(self, prefix: str = "") -> str:
        return f"{prefix}{self.name}"


class Catalog(dict[str, TopicSpec]):
    """Topic name -> spec, in catalog order."""


def _spec(entry: dict[str, Any], defaults: dict[str, Any], where: str) -> TopicSpec:
    unknown = set(entry) - _TOPIC_KEYS
    if unknown:
        raise CatalogError(f"{where}: unknown key(s) {sorted(unknown)}")
    for required in ("name", "key", "record"):
        if not isinstance(entry.get(required), str) or not entry[required]:
            raise CatalogError(
                f"{where}: '{required}' must be a non-empty string, got {entry.get(required)!r}"
            )
    if entry["record"] not in RECORD_TYPES:
        raise CatalogError(
            f"{where}: record = {entry['record']!r} is not a record type "
            f"(known: {', '.join(sorted(RECORD_TYPES))})"
        )
    cleanup = entry.get("cleanup", "delete")
    if cleanup not in ("delete", "compact"):
        raise CatalogError(f"{where}: cleanup = {cleanup!r}; expected 'delete' or 'compact'")
    partitions = entry.get("partitions", defaults.get("partitions", 1))
    if not isinstance(partitions, int) or partitions < 1:
        raise CatalogError(f"{where}: partitions = {partitions!r}; expected an int >= 1")
    return TopicSpec(
        name=entry["name"],
        key=entry["key"],
        record=entry["record"],
        partitions=partitions,
        replication_factor=int(
            entry.get("replication_factor", defaults.get("replication_factor", 1))
        ),
        retention_ms=entry.get("retention_ms"),
        cleanup=cleanup,
        description=entry.get("description", ""),
    )


def load_catalog(path: Path | None = None) -> Catalog:
    """Parse and validate the catalog; raises :class:`CatalogError` naming the entry."""
    path = path or DEFAULT_CATALOG
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CatalogError(f"cannot read topic catalog {path}: {exc}") from None
    defaults = raw.get("defaults", {})
    catalog = Catalog()
    for i, entry in enumerate(raw.get("topic", [])):
        spec = _spec(entry, defaults, f"{path.name} topic #{i + 1} ({entry.get('name')!r})")
        if spec.name in catalog:
            raise CatalogError(f"{path.name}: topic {spec.name!r} is listed twice")
        catalog[spec.name] = spec
    return catalog
