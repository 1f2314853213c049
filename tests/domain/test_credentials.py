"""Camera credentials on plain data: split from and put into URLs, and masked in every text."""

from __future__ import annotations

import json

import pytest

from domain.credentials import (
    MASK,
    CameraLogin,
    Redactor,
    login_of,
    redact_text,
    redact_url,
    url_secrets,
    with_login,
    without_login,
)

PASSWORD = "p@ss:w/rd 密码%"
ENCODED = "p%40ss%3Aw%2Frd%20%E5%AF%86%E7%A0%81%25"


def test_login_is_split_from_and_put_into_the_url() -> None:
    url = f"rtsp://admin:{ENCODED}@10.0.0.5:554/s1?channel=1"
    assert login_of(url) == CameraLogin("admin", PASSWORD)
    assert without_login(url) == "rtsp://10.0.0.5:554/s1?channel=1"
    assert login_of("rtsp://10.0.0.5/s1") is None
    dialled = with_login("rtsp://old:old@10.0.0.5:554/s1", CameraLogin("admin", PASSWORD))
    assert dialled == f"rtsp://admin:{ENCODED}@10.0.0.5:554/s1"
    assert login_of(dialled) == CameraLogin("admin", PASSWORD)
    assert with_login("rtsp://10.0.0.5/s1", None) == "rtsp://10.0.0.5/s1"
    assert PASSWORD not in repr(CameraLogin("admin", PASSWORD))


def test_redact_url_masks_userinfo_and_credential_parameters() -> None:
    assert redact_url(f"rtsp://admin:{ENCODED}@10.0.0.5:554/s1") == "rtsp://***@10.0.0.5:554/s1"
    assert redact_url("rtsp://admin@10.0.0.5/s1") == "rtsp://***@10.0.0.5/s1"
    assert (
        redact_url("rtsp://10.0.0.5/s1?channel=1&user=admin&password=abc%26d&PWD=x&passwd=y&subtype=0")
        == "rtsp://10.0.0.5/s1?channel=1&user=***&password=***&PWD=***&passwd=***&subtype=0"
    )
    assert redact_url("rtsp://10.0.0.5/s1") == "rtsp://10.0.0.5/s1"


def test_url_secrets_are_the_password_and_query_credentials_not_the_user() -> None:
    found = url_secrets(f"rtsp://admin:{ENCODED}@h/s?password=q%20w&user=bob&x=1")
    assert {PASSWORD, ENCODED, "q w", "q%20w"} <= found
    assert "admin" not in found and "bob" not in found and "1" not in found
    assert url_secrets("rtsp://h/s", CameraLogin("u", "sep")) == {"sep"}


@pytest.mark.parametrize(
    "text",
    [
        # libav's own text: the URL it was given, as PyAV quotes it
        f"HTTPUnauthorizedError: [Errno 1330794744] Server returned 401 Unauthorized: 'rtsp://admin:{ENCODED}@10.0.0.5/s1'",
        # the same URL with the password percent-decoded, or with lower-case hex
        f"could not open rtsp://admin:{PASSWORD}@10.0.0.5/s1",
        f"could not open rtsp://admin:{ENCODED.lower()}@10.0.0.5/s1",
        # the password again, bare, outside any URL
        f"authorization failed for admin with {PASSWORD} (digest)",
        # escaped on its way through JSON or repr
        json.dumps({"error": f"bad login {PASSWORD}"}, ensure_ascii=True),
        json.dumps({"error": f"bad login {PASSWORD}"}, ensure_ascii=False),
        repr({"error": f"bad login {PASSWORD}"}),
        repr(f"bad {PASSWORD}".encode()),
        # in the query string
        f"rtsp://10.0.0.5/s1?password={ENCODED}&channel=1",
    ],
)
def test_camera_redactor_masks_the_password_in_every_spelling(text: str) -> None:
    redactor = Redactor.for_camera(f"rtsp://admin:{ENCODED}@10.0.0.5/s1")
    out = redactor.text(text)
    for secret in (PASSWORD, ENCODED, ENCODED.lower(), "p@ss", "w/rd 密码", "密码"):
        assert secret not in out, out
    assert MASK in out


def test_separate_login_and_query_passwords_are_masked_too() -> None:
    redactor = Redactor.for_camera("rtsp://10.0.0.5/s1?pwd=qs-secret", CameraLogin("admin", "sep-Secret1"))
    out = redactor.text("open rtsp://admin:sep-Secret1@10.0.0.5/s1?pwd=qs-secret failed; sep-Secret1 again")
    assert "sep-Secret1" not in out and "qs-secret" not in out
    assert out == "open rtsp://***@10.0.0.5/s1?pwd=*** failed; *** again"


def test_unknown_secrets_in_urls_and_key_values_are_masked_generically() -> None:
    text = "a rtsp://u:unknown1@h/s b http://x:y@z c password=abc&pwd=def passwd=ghi, token=jkl"
    out = redact_text(text)
    for secret in ("unknown1", "u:", "x:y", "abc", "def", "ghi", "jkl"):
        assert secret not in out, out
    # a password holding "@" unencoded: the authority ends at its last "@"
    assert redact_text("rtsp://admin:p@ss@10.0.0.5/s1") == "rtsp://***@10.0.0.5/s1"
    # harmless text stays as it was
    assert (
        redact_text("storage_key=cam/x.ts user=admin port 554") == "storage_key=cam/x.ts user=admin port 554"
    )


def test_secrets_can_be_added_while_in_use_and_the_longest_wins() -> None:
    redactor = Redactor()
    assert not redactor
    redactor.add("abc")
    redactor.add("abcdef")
    assert redactor.text("xx abcdef yy abc") == "xx *** yy ***"
    redactor.add("")
    assert redactor.text("nothing here") == "nothing here"
