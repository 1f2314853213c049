"""The disc page's time-code scripts, read back from the WebVTT the lanes write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from domain.types import GapCause
from exporter.disc_page import gap_titles, vtt_cues, write_cues_js

VTT = (
    "WEBVTT\n\n"
    "00:00:00.000 --> 00:00:01.000\n2024-05-01 09:00:12\n\n"
    "00:00:01.000 --> 00:00:01.500\n2024-05-01 09:00:13\n讯问开始 Interrogation start\n\n"
    '01:02:03.004 --> 01:02:04.000\n</script> "quoted"\n'
)


def test_cues_are_read_back_with_times_and_every_line() -> None:
    assert list(vtt_cues(VTT.splitlines(keepends=True))) == [
        (0, 1000, "2024-05-01 09:00:12"),
        (1000, 1500, "2024-05-01 09:00:13\n讯问开始 Interrogation start"),
        (3_723_004, 3_724_000, '</script> "quoted"'),  # the last cue needs no blank line after it
    ]


def test_a_bad_time_is_named_with_its_line() -> None:
    with pytest.raises(ValueError, match=r"line 3: '00:00:0x.000' is not a WebVTT time"):
        list(vtt_cues(["WEBVTT\n", "\n", "00:00:0x.000 --> 00:00:01.000\n", "text\n"]))


def test_the_script_files_the_cues_under_the_video_in_ascii(tmp_path: Path) -> None:
    vtt, js = tmp_path / "cam.vtt", tmp_path / "cam.cues.js"
    vtt.write_text(VTT, encoding="utf-8")
    write_cues_js(vtt, js, "videos/05-interrogation-1/cam-int.mp4")
    raw = js.read_bytes()
    assert raw.isascii()  # whatever charset the browser assumes for a script from file://
    text = raw.decode()
    head = '(window.DISC_CUES = window.DISC_CUES || {})["videos/05-interrogation-1/cam-int.mp4"] = ['
    assert text.startswith(head) and text.endswith("\n];\n")
    assert json.loads(text[len(head) - 1 : -2]) == [list(c) for c in vtt_cues(VTT.splitlines())]


def test_gap_chapters_are_titled_in_each_language_alone() -> None:
    assert gap_titles(GapCause.DISCONNECT) == (
        ("录像中断：连接中断", "Gap: disconnected"),
        ("录像恢复", "Recording resumed"),
    )
    assert gap_titles(GapCause.AUDIO_LOST)[1] == ("录音恢复", "Sound resumed")
