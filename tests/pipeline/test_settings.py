"""Centre configuration validation: clear errors for every kind of mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from domain.errors import ConfigError
from pipeline.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]

GOOD = """
[storage]
kind = "local"
path = "data/store"
[database]
url = "sqlite:///data/index.db"
[[rooms]]
id = "int-1"
name = "讯问室1"
kind = "interrogation"
  [[rooms.cameras]]
  id = "int-1-a"
  url = "rtsp://127.0.0.1:8554/int-1-a"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "centre.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_issue_shape_loads(tmp_path: Path) -> None:
    s = load_settings(_write(tmp_path, GOOD))
    assert [(r.id, c.id) for r, c in s.cameras()] == [("int-1", "int-1-a")]
    assert s.rooms[0].name == "讯问室1"
    assert s.recorder.segment_seconds == 10.0


def test_onvif_media_service_gives_the_camera_a_sync_point(tmp_path: Path) -> None:
    s = load_settings(_write(tmp_path, GOOD))
    assert s.rooms[0].cameras[0].sync_point() is None
    s = load_settings(_write(tmp_path, GOOD + 'onvif_url = "http://127.0.0.1:8080/onvif/media_service"\n'))
    spec = s.rooms[0].cameras[0].sync_point()
    assert spec is not None and (spec.url, spec.profile) == (
        "http://127.0.0.1:8080/onvif/media_service",
        "Profile_1",
    )


def test_examples_load() -> None:
    s = load_settings(ROOT / "examples" / "centre.toml")
    kinds = {r.kind.value for r in s.rooms}
    assert {"entry", "search", "waiting", "interrogation"} <= kinds
    assert sum(1 for r in s.rooms if r.kind.value == "interrogation") >= 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD.replace('kind = "local"', 'kind = "local"\nbogus = 1'), "storage.bogus: unknown key"),
        (GOOD + GOOD.split("[[rooms]]")[1].join(["[[rooms]]", ""]), "duplicate room id 'int-1'"),
        (GOOD.replace("rtsp://127.0.0.1:8554/int-1-a", "http://cam/x"), "is not an rtsp:// URL"),
        (GOOD.replace("rtsp://127.0.0.1:8554/int-1-a", "rtsp://127.0.0.1:99999/x"), "bad port"),
        (GOOD.replace('kind = "interrogation"', 'kind = "kitchen"'), "rooms.0.kind"),
        (
            GOOD.replace('kind = "local"', 'kind = "s3"\nendpoint = "http://127.0.0.1:9000"\nbucket = "b"'),
            "missing credentials",
        ),
        (GOOD.replace("sqlite:///", "mysql:///"), "not supported"),
        (GOOD + 'onvif_url = "rtsp://127.0.0.1/onvif"\n', "is not an http(s):// URL"),
        (GOOD + 'onvif_url = "http://127.0.0.1/onvif"\nonvif_profile = ""\n', "profile token"),
        ("[storage\nkind=", "not valid TOML"),
    ],
)
def test_mistakes_are_named(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(_write(tmp_path, text))
    assert expected in info.value.message


def test_duplicate_camera_id(tmp_path: Path) -> None:
    text = (
        GOOD
        + """
[[rooms]]
id = "int-2"
name = "讯问室2"
kind = "interrogation"
  [[rooms.cameras]]
  id = "int-1-a"
  url = "rtsp://127.0.0.1:8555/x"
"""
    )
    with pytest.raises(ConfigError, match="duplicate camera id 'int-1-a'"):
        load_settings(_write(tmp_path, text))


def test_s3_credentials_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAUDIT_STORAGE__ACCESS_KEY", "ak")
    monkeypatch.setenv("VAUDIT_STORAGE__SECRET_KEY", "sk")
    text = GOOD.replace('kind = "local"', 'kind = "s3"\nendpoint = "http://127.0.0.1:9000"\nbucket = "b"')
    s = load_settings(_write(tmp_path, text))
    assert s.storage.access_key is not None and s.storage.access_key.get_secret_value() == "ak"


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_camera_login_from_the_url_the_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from domain.credentials import CameraLogin

    in_url = GOOD.replace("rtsp://127.0.0.1", "rtsp://admin:p%40ss@127.0.0.1")
    s = load_settings(_write(tmp_path, in_url))
    assert s.camera_login(s.rooms[0].cameras[0]) == CameraLogin("admin", "p@ss")
    # apart from the URL: user in the file, password from the environment by camera id
    monkeypatch.setenv("VAUDIT_RECORDER__CAMERA_PASSWORDS", '{"int-1-a": "env-secret"}')
    s = load_settings(_write(tmp_path, GOOD + 'user = "viewer"\n'))
    cam = s.rooms[0].cameras[0]
    assert s.camera_login(cam) == CameraLogin("viewer", "env-secret")
    assert "env-secret" not in repr(s) and "env-secret" not in str(s.model_dump())
    monkeypatch.delenv("VAUDIT_RECORDER__CAMERA_PASSWORDS")
    # the recorder's default login for every camera without its own
    monkeypatch.setenv("VAUDIT_RECORDER__CAMERA_USER", "svc")
    monkeypatch.setenv("VAUDIT_RECORDER__CAMERA_PASSWORD", "default-secret")
    s = load_settings(_write(tmp_path, GOOD))
    assert s.camera_login(s.rooms[0].cameras[0]) == CameraLogin("svc", "default-secret")
    s = load_settings(_write(tmp_path, in_url))
    assert s.camera_login(s.rooms[0].cameras[0]) == CameraLogin("admin", "p@ss")
    monkeypatch.delenv("VAUDIT_RECORDER__CAMERA_USER")
    monkeypatch.delenv("VAUDIT_RECORDER__CAMERA_PASSWORD")
    s = load_settings(_write(tmp_path, GOOD))
    assert s.camera_login(s.rooms[0].cameras[0]) is None


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        (GOOD.replace("rtsp://127.0.0.1", "rtsp://a:b@127.0.0.1") + 'user = "c"\n', None, "not both"),
        (GOOD + 'password = "x"\n', None, "has a password but no user"),
        (GOOD, '{"int-1-a": "x"}', "has a password but no user"),
        (GOOD + 'user = "u"\n', '{"int-9": "x"}', "not configured: int-9"),
    ],
)
def test_camera_login_mistakes_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, env: str | None, expected: str
) -> None:
    if env is not None:
        monkeypatch.setenv("VAUDIT_RECORDER__CAMERA_PASSWORDS", env)
    with pytest.raises(ConfigError) as info:
        load_settings(_write(tmp_path, text))
    assert expected in info.value.message


def test_a_bad_camera_url_is_named_without_its_password(tmp_path: Path) -> None:
    text = GOOD.replace("rtsp://127.0.0.1:8554/int-1-a", "rtsp://admin:Leak3d@127.0.0.1:99999/x")
    with pytest.raises(ConfigError) as info:
        load_settings(_write(tmp_path, text))
    assert "bad port" in info.value.message and "Leak3d" not in info.value.message
