"""Write centre configuration files for end-to-end tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CamSpec:
    camera_id: str
    room_id: str
    room_kind: str
    url: str


def write_centre(
    path: Path,
    cams: list[CamSpec],
    db_url: str,
    storage_toml: str | None = None,
    segment_seconds: float = 3.0,
    extra: str = "",
) -> Path:
    root = path.parent
    storage_toml = storage_toml or f'kind = "local"\npath = "{root / "store"}"'
    lines = [
        "[storage]",
        storage_toml,
        "[database]",
        f'url = "{db_url}"',
        "[recorder]",
        f"segment_seconds = {segment_seconds}",
        f'spool = "{root / "spool"}"',
        extra,
    ]
    rooms: dict[str, list[CamSpec]] = {}
    for cam in cams:
        rooms.setdefault(cam.room_id, []).append(cam)
    for room_id, members in rooms.items():
        lines += [
            "[[rooms]]",
            f'id = "{room_id}"',
            f'name = "房间 {room_id}"',
            f'kind = "{members[0].room_kind}"',
        ]
        for cam in members:
            lines += ["  [[rooms.cameras]]", f'  id = "{cam.camera_id}"', f'  url = "{cam.url}"']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_keyed_centre(root: Path, db_url: str) -> Path:
    """``root/centre.toml`` without rooms, for the CLI's users, audit and export commands: the index
    at ``db_url``, local storage, exports, and the signing and audit keys under ``root/keys``."""
    path = root / "centre.toml"
    path.write_text(
        f'[database]\nurl = "{db_url}"\n[storage]\npath = "{root / "store"}"\n'
        f'[export]\nout_dir = "{root / "exports"}"\nsigning_key = "{root / "keys" / "sign.pem"}"\n'
        f'[audit]\nkey_file = "{root / "keys" / "audit.key"}"\n',
        encoding="utf-8",
    )
    return path
