"""The audit trail's anchors: the chain's head, signed with the centre's key, kept outside the
database (docs/design/web.md "Audit trail").

Why: a keyed chain (indexer/audit.py) stops someone with write access to the database from
rewriting rows, but not from cutting the newest ones off: what is left still fits. An anchor is a
small JSON object in the evidence storage (under WORM when ``retention.object_lock`` is on) naming
the chain's last row and its hash, and where keying began, signed (Ed25519) with the centre's
signing key, the one whose fingerprint is printed on every disc statement. ``vaudit run`` writes
one every ``[audit] anchor_interval_seconds`` when the chain moved and one when it stops; every
export writes one and puts it in the disc's chain of custody. ``vaudit audit verify`` compares the
rows with all of them: a row that differs from an anchor, or a trail that ends before the newest
anchor's row, is named. Rows written after the newest anchor are not covered until the next one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine

from domain.errors import ConfigError, VauditError
from domain.types import AUDIT_ANCHOR_PREFIX, audit_anchor_key, iso, parse_iso
from exporter.signing import (
    PublicKeyInfo,
    generate_signing_key,
    load_signing_key,
    public_key_info,
    sign,
    verify_signature,
)
from indexer.audit import AnchorPoint, AuditHead, AuditLog, ChainReport, load_audit_key
from pipeline.settings import Settings
from pipeline.storage import Storage

logger = logging.getLogger(__name__)

ANCHOR_FORMAT = "video-audit-audit-anchor/1"
# Anchors a verification reads, newest first: the newest finds a cut; older ones add nothing
# the keyed hashes do not already find, and a year of minutely anchors is half a million objects.
ANCHORS_CHECKED = 100
# Signed bytes start with this, so an anchor's signature can never pass for a disc manifest's
# (the same key signs both).
_SIGNED_PREFIX = b"video-audit audit anchor v1\n"


def centre_signing_key(settings: Settings, create: bool = True) -> Ed25519PrivateKey | None:
    """The centre's Ed25519 key (``[export] signing_key``); made (0600) on first use if ``create``."""
    path = settings.export.signing_key
    if not path.exists():
        if not create:
            return None
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            info = generate_signing_key(path)
        except FileExistsError:  # another process made it meanwhile
            pass
        except OSError as exc:
            raise ConfigError(f"cannot create the signing key {path}: {exc}", path=str(path)) from exc
        else:
            logger.warning(
                "created the centre's signing key", extra={"path": str(path), "fingerprint": info.fingerprint}
            )
    return load_signing_key(path)


def audit_log(settings: Settings, engine: Engine, create_key: bool = True) -> AuditLog:
    """The audit trail with the centre's key (made on first run if ``create_key``)."""
    return AuditLog(engine, load_audit_key(settings.audit.key_file, create=create_key))


@dataclass(frozen=True, slots=True)
class Anchor:
    seq: int
    hash: str | None
    key_id: str | None
    keyed_from: int | None
    written: datetime
    signer: str  # fingerprint of the key that signed it
    storage_key: str

    def point(self) -> AnchorPoint:
        return AnchorPoint(
            self.seq, self.hash, self.keyed_from, iso(self.written), f"anchor {self.storage_key}"
        )

    def custody(self) -> dict[str, Any]:
        """What an export's chain of custody records of it."""
        return {
            "seq": self.seq,
            "hash": self.hash,
            "key_id": self.key_id,
            "keyed_from": self.keyed_from,
            "written": iso(self.written),
            "anchor": self.storage_key,
            "signer": self.signer,
        }


def _body(head: AuditHead, written: datetime, signer: str) -> dict[str, Any]:
    return {
        "format": ANCHOR_FORMAT,
        "seq": head.seq,
        "hash": head.hash,
        "key_id": head.key_id,
        "keyed_from": head.keyed_from,
        "written": iso(written),
        "signer": signer,
    }


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


class AnchorBook:
    """Writes anchors signed with ``key`` and reads them back, accepting only signatures of
    ``trusted`` (the centre's public key)."""

    def __init__(
        self, storage: Storage, key: Ed25519PrivateKey | None, trusted: PublicKeyInfo | None
    ) -> None:
        self._storage = storage
        self._key = key
        self._trusted = trusted

    @classmethod
    def for_settings(cls, settings: Settings, storage: Storage, create_key: bool = True) -> AnchorBook:
        key = centre_signing_key(settings, create=create_key)
        return cls(storage, key, None if key is None else public_key_info(key))

    def write(self, head: AuditHead, now: datetime | None = None) -> Anchor:
        if self._key is None:
            raise ConfigError("cannot anchor the audit trail without the centre's signing key")
        signer = public_key_info(self._key)
        written = (now or datetime.now(UTC)).astimezone(UTC)
        body = _body(head, written, signer.fingerprint)
        signature = sign(self._key, _SIGNED_PREFIX + _canonical(body)).decode("ascii").strip()
        data = json.dumps({**body, "signature": signature}, sort_keys=True, indent=1).encode() + b"\n"
        key = audit_anchor_key(written, head.seq)
        fd, tmp = tempfile.mkstemp(prefix=".anchor-", suffix=".json")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            self._storage.put_file(key, Path(tmp), hashlib.sha256(data).hexdigest())
        finally:
            Path(tmp).unlink(missing_ok=True)
        logger.info("audit trail anchored", extra={"seq": head.seq, "anchor": key})
        return Anchor(head.seq, head.hash, head.key_id, head.keyed_from, written, signer.fingerprint, key)

    def read(self, newest: int | None = ANCHORS_CHECKED) -> tuple[list[Anchor], list[str]]:
        """The ``newest`` anchors in storage (None: all), oldest first, and what is wrong with
        those that cannot be trusted (unreadable, or not signed by the centre's key: planted)."""
        anchors: list[Anchor] = []
        problems: list[str] = []
        keys = list(self._storage.list(AUDIT_ANCHOR_PREFIX + "/"))
        for key in keys if newest is None else keys[-newest:]:
            try:
                with self._storage.open(key) as fh:
                    doc = json.loads(fh.read())
                anchors.append(self._parse(key, doc))
            except (ValueError, KeyError, TypeError) as exc:
                problems.append(f"anchor {key}: unreadable ({exc})")
            except VauditError as exc:
                problems.append(f"anchor {key}: {exc.message}")
        return anchors, problems

    def _parse(self, key: str, doc: dict[str, Any]) -> Anchor:
        if doc.get("format") != ANCHOR_FORMAT:
            raise ValueError(f"format {doc.get('format')!r}")
        signature = str(doc.pop("signature"))
        if self._trusted is None:
            raise ConfigError("cannot check it: the centre's signing key is missing")
        if doc.get("signer") != self._trusted.fingerprint:
            raise ConfigError(
                f"signed by key {doc.get('signer')}, not by the centre's key {self._trusted.fingerprint}"
            )
        why = verify_signature(self._trusted.pem, _SIGNED_PREFIX + _canonical(doc), signature.encode())
        if why is not None:
            raise ConfigError(f"{why} (the anchor was altered)")
        return Anchor(
            int(doc["seq"]),
            doc["hash"],
            doc["key_id"],
            doc["keyed_from"],
            parse_iso(doc["written"]),
            str(doc["signer"]),
            key,
        )

    def newest(self) -> Anchor | None:
        anchors, _problems = self.read(newest=1)
        return anchors[-1] if anchors else None


@dataclass(frozen=True, slots=True)
class AuditVerdict:
    chain: ChainReport
    anchor_problems: list[str]

    @property
    def ok(self) -> bool:
        return self.chain.ok and not self.anchor_problems


def custody_heads(out_dir: Path) -> list[AnchorPoint]:
    """The audit heads recorded in the chains of custody of the exports under ``out_dir``."""
    points = []
    for manifest in sorted(out_dir.glob("*/manifest.json")) if out_dir.is_dir() else []:
        try:
            head = json.loads(manifest.read_text(encoding="utf-8"))["custody"]["audit_head"]
            points.append(
                AnchorPoint(
                    int(head["seq"]),
                    head["hash"],
                    head.get("keyed_from"),
                    str(head["written"]),
                    f"the chain of custody of export {manifest.parent.name}",
                )
            )
        except (OSError, ValueError, KeyError, TypeError):
            continue  # an export from before heads were recorded, or not an export
    return points


def verify_audit(settings: Settings, engine: Engine, storage: Storage | None) -> AuditVerdict:
    """The chain checked with the centre's audit key, against the newest anchors in ``storage``
    (None: none) and the heads in the exports' chains of custody."""
    log = audit_log(settings, engine, create_key=False)
    points = custody_heads(settings.export.out_dir)
    problems: list[str] = []
    if storage is not None:
        anchors, problems = AnchorBook.for_settings(settings, storage, create_key=False).read()
        points += [a.point() for a in anchors]
    return AuditVerdict(log.verify(points), problems)


class AnchorWriter:
    """Anchors the chain's head every ``interval`` seconds when it moved, and once on stop.
    A failure (storage down) is logged and tried again at the next interval."""

    def __init__(self, log: AuditLog, book: AnchorBook, interval: float) -> None:
        self._log = log
        self._book = book
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: int | None = None  # seq of the newest anchor written or found

    def anchor_if_moved(self) -> Anchor | None:
        try:
            if self._last is None:
                newest = self._book.newest()
                self._last = 0 if newest is None else newest.seq
            head = self._log.head()
            if head.seq == 0 or head.seq == self._last:
                return None
            anchor = self._book.write(head)
        except VauditError as exc:
            logger.error("could not anchor the audit trail", extra={"error": exc.message})
            return None
        self._last = anchor.seq
        return anchor

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="audit-anchor", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.anchor_if_moved()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self.anchor_if_moved()
