"""Verification against the centre's key (issue 16, point 6): a disc whose custody record was
edited, re-signed with a new key and rebuilt is consistent in every hash and signature; checked
against the centre's key fingerprint it fails, naming both keys, in the system's verifier and in
the disc's own ``verify.py``. The fingerprint is on the statement and the disc's page."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from exporter.disc_verifier import grouped, normal_fingerprint
from exporter.verify import verify_images
from tests.exporter.conftest import Exported
from tests.support.forge import forge_disc


def test_fingerprints_are_read_as_typed_and_printed_in_groups() -> None:
    fp = "0123456789abcdef" * 4
    assert grouped(fp) == " ".join(["0123", "4567", "89ab", "cdef"] * 4)
    assert normal_fingerprint(grouped(fp).upper()) == fp
    assert normal_fingerprint(":".join(fp[i : i + 2] for i in range(0, 64, 2))) == fp
    assert normal_fingerprint(fp[:-1]) is None and normal_fingerprint("x" * 64) is None


def test_a_re_signed_disc_fails_against_the_centres_key(exported: Exported, tmp_path: Path) -> None:
    centre = exported.result.summary["fingerprint"]
    disc, image, forger = forge_disc(exported.extracted, tmp_path)
    assert forger != centre
    # every hash and the signature agree: without the expected key the forgery passes
    assert verify_images([image]).ok
    report = verify_images([image], expected_key=centre)
    assert not report.ok
    assert any(
        f"signed by key {grouped(forger)}, not by the expected key {grouped(centre)}" in p
        for p in report.problems
    ), report.problems
    assert verify_images(exported.result.master_images, expected_key=centre).ok

    run = [sys.executable, str(disc / "verify.py")]
    forged = subprocess.run(
        [*run, "--expect-key", grouped(centre)], capture_output=True, text=True, timeout=120
    )
    assert forged.returncode == 1, forged.stdout
    assert f"not by the expected key {grouped(centre)}" in forged.stdout and "FAILED" in forged.stdout
    genuine = subprocess.run(
        [sys.executable, str(exported.extracted / "verify.py"), "--expect-key", centre],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert genuine.returncode == 0, genuine.stdout
    assert "与中心公钥一致" in genuine.stdout
    bad = subprocess.run([*run, "--expect-key", "not-a-key"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "64 hex digits" in bad.stdout


def test_the_fingerprint_is_on_the_statement_and_the_discs_page(exported: Exported) -> None:
    shown = grouped(exported.result.summary["fingerprint"])
    for page in ("statement.html", "index.html"):
        assert shown in (exported.extracted / page).read_text(encoding="utf-8"), page
