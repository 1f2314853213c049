"""A centre's discs and playback against tampering, through the index on SQLite and PostgreSQL
(issue 16, points 5, 6 and 8's playback): a segment swapped in storage with its new hash in the
index is refused by the export service and by playback, naming it (playback raises an alert and
writes an audit row); ``vaudit verify --config`` checks a disc against the recorder's sidecars and
the centre's key, so neither an old disc of swapped footage nor a re-signed disc passes; each
disc's custody record carries the audit trail's anchored head."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from domain.types import AUDIT_ANCHOR_PREFIX, ObservationSource, iso
from exporter.capture_chain import CaptureChain
from exporter.disc_verifier import grouped
from exporter.errors import SourceIntegrityError
from indexer.audit import AuditLog
from indexer.case_records import NewCase, NewObservation, NewSubject
from indexer.case_store import CaseStore
from indexer.segment_store import SegmentStore
from pipeline.api.app import create_app
from pipeline.export.service import ExportService, ExportSpec
from pipeline.settings import Settings, load_settings
from pipeline.storage import LocalStorage
from tests.exporter.conftest import extract
from tests.exporter.scenario import INDEX_ROOMS, Scenario, at, build_scenario, index_scenario
from tests.support.auth import log_in
from tests.support.forge import forge_disc
from tests.support.vaudit_proc import VAUDIT

pytestmark = pytest.mark.integration  # whole exports and `vaudit verify` subprocesses: ~3 s and ~17 s


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    return build_scenario(tmp_path_factory.mktemp("scenario") / "store")


@dataclasses.dataclass
class Centre:
    config: Path
    settings: Settings
    engine: Engine
    store: SegmentStore
    storage: LocalStorage
    scenario: Scenario
    service: ExportService
    spec: ExportSpec


@pytest.fixture
def centre(
    built: Scenario, tmp_path: Path, db_url: str, engine: Engine, store: SegmentStore
) -> Iterator[Centre]:
    root = tmp_path / "store"
    shutil.copytree(built.root, root)
    for p in root.rglob("*"):
        p.chmod(0o750 if p.is_dir() else 0o640)
    config = tmp_path / "centre.toml"
    rooms = "".join(
        f'[[rooms]]\nid = "{rid}"\nname = "{name}"\nkind = "{kind}"\n'
        + "".join(f'  [[rooms.cameras]]\n  id = "{cid}"\n  url = "{url}"\n' for cid, _n, url in cams)
        for rid, name, kind, cams in INDEX_ROOMS
    )
    config.write_text(
        f'[database]\nurl = "{db_url}"\n[storage]\npath = "{root}"\n'
        f'[export]\nout_dir = "{tmp_path / "exports"}"\nsigning_key = "{tmp_path / "keys" / "sign.pem"}"\n'
        f'[audit]\nkey_file = "{tmp_path / "keys" / "audit.key"}"\n[api]\nupload_tmp = "{tmp_path / "up"}"\n'
        + rooms,
        encoding="utf-8",
    )
    settings = load_settings(config)
    store.sync_rooms(settings.room_rows())
    index_scenario(store, built)
    store.add_gap(built.gap)
    cases = CaseStore(engine)
    case, _ = cases.create_case(NewCase("A2024-0501", "张某盗窃案", "盗窃"))
    subject, _ = cases.create_subject(NewSubject(case.id, "张某", "suspect"))
    cases.add_observations(
        [
            NewObservation("o1", "R-INT1", at(12), ObservationSource.WRISTBAND, subject_id=subject.id),
            NewObservation("o2", "R-WAIT", at(23), ObservationSource.WRISTBAND, subject_id=subject.id),
        ]
    )
    storage = LocalStorage(root)
    scenario = dataclasses.replace(built, root=root)
    spec = ExportSpec(case.case_number, str(subject.id), at(12), at(23), exported_by="测试员")
    yield Centre(
        config, settings, engine, store, storage, scenario, ExportService(settings, engine, storage), spec
    )


def _cam_int(c: Centre) -> list[Any]:
    return sorted((s for s in c.scenario.segments if s.camera_id == "cam-int"), key=lambda s: s.seq)


def _swap_bytes(c: Centre, rec: Any) -> str:
    """Other bytes in storage for ``rec``; returns their SHA-256."""
    import hashlib

    path = c.scenario.root / rec.storage_key
    path.chmod(0o640)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return hashlib.sha256(bytes(data)).hexdigest()


def _set_index_hash(c: Centre, key: str, sha: str) -> None:
    with c.engine.begin() as conn:
        conn.execute(text("UPDATE segments SET sha256 = :h WHERE storage_key = :k"), {"h": sha, "k": key})


def _vaudit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([VAUDIT, *args], capture_output=True, text=True, timeout=300, check=False)


def test_swapped_footage_is_refused_by_the_export_and_by_playback(centre: Centre) -> None:
    victim = _cam_int(centre)[0]
    new = _swap_bytes(centre, victim)
    _set_index_hash(centre, victim.storage_key, new)  # the index now vouches for the new bytes
    with pytest.raises(SourceIntegrityError) as info:
        centre.service.run(centre.spec)
    assert victim.storage_key in info.value.message
    assert f"the recorder's stored sidecar says {victim.sha256}" in info.value.message
    assert not list((centre.settings.export.out_dir).rglob("*.iso"))

    app = create_app(centre.settings, centre.store, engine=centre.engine, storage=centre.storage)
    with TestClient(app) as client:
        log_in(client, centre.engine)
        params = {"start": iso(at(12)), "end": iso(at(14))}
        r = client.get("/api/v1/playback/cam-int.mp4", params=params)
        assert r.status_code == 409, r.text
        error = r.json()["error"]
        assert error["code"] == "footage_altered" and victim.storage_key in error["message"]
        assert "is not what the recorder captured" in error["message"]
        items = client.get("/api/v1/alerts").json()["items"]
        found = [a for a in items if a["rule"] == "footage_integrity"]
        assert len(found) == 1 and found[0]["camera_id"] == "cam-int" and found[0]["room_id"] == "R-INT1"
        assert found[0]["severity"] == "high" and victim.storage_key in found[0]["message"]
        # the index put right again, the bytes still swapped: the hash check refuses them
        _set_index_hash(centre, victim.storage_key, victim.sha256)
        r = client.get("/api/v1/playback/cam-int.mp4", params=params)
        assert r.status_code == 409 and "no longer matches the hash recorded" in r.json()["error"]["message"]
        assert (
            len([a for a in client.get("/api/v1/alerts").json()["items"] if a["rule"] == "footage_integrity"])
            == 1
        )  # the same segment: one alert
        # the other segment still plays
        later = client.get("/api/v1/playback/cam-int.mp4", params={"start": iso(at(20)), "end": iso(at(22))})
        assert later.status_code == 200 and len(later.content) > 1000
    refused = [r for r in AuditLog(centre.engine).rows(limit=100) if r.action == "playback_refused"]
    assert len(refused) == 2 and all(r.detail and r.detail["key"] == victim.storage_key for r in refused)


def test_verify_checks_discs_against_the_sidecars_and_the_centres_key(
    centre: Centre, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = centre.service.run(centre.spec)
    master = result.master_images[0]
    cfg = str(centre.config)
    ok = _vaudit("verify", "--config", cfg, str(master))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    fp = result.summary["fingerprint"]
    assert (
        "signed by the centre's key" in ok.stderr
        and f"key fingerprint / 公钥指纹: {grouped(fp)}" in ok.stdout
    )
    shown = _vaudit("key-fingerprint", "--config", cfg)
    assert shown.stdout.split("\n")[:2] == [grouped(fp), fp]

    # the custody record carries the audit trail's head, also anchored in storage
    disc = extract(master, tmp_path / "disc")
    head = json.loads((disc / "custody.json").read_text(encoding="utf-8"))["audit_head"]
    assert head["seq"] == AuditLog(centre.engine).head().seq and head["anchor"].startswith(
        AUDIT_ANCHOR_PREFIX
    )
    assert centre.storage.exists(head["anchor"])

    # a forger's disc: custody edited, re-signed with a new key, rebuilt
    _dir, forged, forger = forge_disc(disc, tmp_path / "forge")
    bad = _vaudit("verify", "--config", cfg, str(forged))
    assert bad.returncode == 1
    assert f"signed by key {grouped(forger)}, not by the expected key {grouped(fp)}" in bad.stdout
    assert _vaudit("verify", "--expect-key", fp, str(forged)).returncode == 1
    unchecked = _vaudit("verify", str(forged))  # no key to compare with: says so
    assert unchecked.returncode == 0 and "not compared with the centre's" in unchecked.stderr
    # the key configured where the centre's key file is not
    other = centre.config.with_name("court.toml")
    text_ = centre.config.read_text(encoding="utf-8").replace(
        f'signing_key = "{tmp_path / "keys" / "sign.pem"}"',
        f'signing_key = "{tmp_path / "nowhere.pem"}"\nkey_fingerprint = "{grouped(forger)}"',
    )
    other.write_text(text_, encoding="utf-8")
    assert _vaudit("verify", "--config", str(other), str(forged)).returncode == 0
    assert _vaudit("verify", "--config", str(other), str(master)).returncode == 1

    # an old disc of swapped footage (sealed by a release that trusted the index): the recorder's
    # sidecar still names the original hash
    victim = _cam_int(centre)[0]
    _set_index_hash(centre, victim.storage_key, _swap_bytes(centre, victim))
    monkeypatch.setattr(CaptureChain, "check", lambda self, segments: None)
    old = centre.service.run(dataclasses.replace(centre.spec, exported_by="old release"))
    report = centre.service.verify(list(old.master_images))
    assert not report.ok
    assert any(
        victim.storage_key in p and f"differs from the recorder's stored sidecar ({victim.sha256})" in p
        for p in report.problems
    ), report.problems
