"""OSV records for tests, written the ways the mirror reads them: one ``.json`` per record
in a directory tree (like the OpenSSF malicious-packages repository), a zip export (like
OSV's ``PyPI/all.zip``), or one file."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

MODIFIED = "2026-05-01T00:00:00Z"


def osv_record(
    record_id: str,
    name: str,
    *,
    versions: Sequence[str] | None = None,
    ranges: Sequence[Sequence[Mapping[str, str]]] | None = None,
    range_type: str = "ECOSYSTEM",
    summary: str | None = None,
    details: str = "",
    modified: str = MODIFIED,
    ecosystem: str = "PyPI",
    **extra: Any,
) -> dict[str, Any]:
    """One record naming one package. ``ranges`` is a list of event lists, e.g.
    ``[[{"introduced": "0"}, {"fixed": "1.2"}]]``; with neither ``versions`` nor
    ``ranges``, every version (``introduced: "0"``)."""
    affected: dict[str, Any] = {"package": {"ecosystem": ecosystem, "name": name}}
    if versions is not None:
        affected["versions"] = list(versions)
    if ranges is not None:
        affected["ranges"] = [{"type": range_type, "events": list(events)} for events in ranges]
    if versions is None and ranges is None:
        affected["ranges"] = [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]
    record: dict[str, Any] = {
        "schema_version": "1.6.0",
        "id": record_id,
        "modified": modified,
        "published": modified,
        "summary": summary if summary is not None else f"Advisory {record_id} for {name}",
        "details": details,
        "affected": [affected],
    }
    record.update(extra)
    return record


def write_tree(root: Path, records: Iterable[Mapping[str, Any]]) -> Path:
    """``root/osv/malicious/pypi/<name>/<id>.json``, as the malicious-packages repo lays out."""
    for record in records:
        name = record["affected"][0]["package"]["name"]
        path = root / "osv" / "malicious" / "pypi" / name / f"{record['id']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=2))
    return root


def write_zip(path: Path, records: Iterable[Mapping[str, Any]]) -> Path:
    """An export zip: one ``<id>.json`` member per record."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for record in records:
            archive.writestr(f"{record['id']}.json", json.dumps(record))
    return path


def write_file(path: Path, record: Mapping[str, Any]) -> Path:
    path.write_text(json.dumps(record))
    return path
