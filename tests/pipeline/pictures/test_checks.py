"""Picture checks on synthetic frames: a textured room with a burnt-in clock (OSD), and the same
room black, covered, frozen, defocused and moved. Pure numpy/OpenCV, no video."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime, timedelta

import cv2
import numpy as np
import pytest

from domain.types import UTC, PictureFault
from pipeline.pictures.checks import CheckThresholds, PeopleDetector, PictureChecker
from pipeline.pictures.watcher import thresholds_from
from pipeline.settings import PictureChecksConfig

H, W = 360, 640
T0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
NO_HOG = CheckThresholds(hog_every_seconds=0)


def room(seed: int = 1) -> np.ndarray:
    """A textured scene: smooth shading, furniture-like blocks, fine texture (like a wall)."""
    rng = np.random.default_rng(seed)
    img = np.tile(np.linspace(60, 170, W, dtype=np.float32), (H, 1))
    for _ in range(25):
        x, y = rng.integers(0, W - 80), rng.integers(40, H - 60)
        w, h = rng.integers(20, 120), rng.integers(20, 100)
        img[y : y + h, x : x + w] = rng.integers(20, 235)
    img += rng.normal(0, 12, (H, W)).astype(np.float32)  # texture
    return np.clip(img, 0, 255).astype(np.uint8)


def with_osd(img: np.ndarray, at: datetime, label: str = "int-1-a") -> np.ndarray:
    """The camera's burnt-in name and clock (seconds), white on a dark box, top left."""
    out = img.copy()
    cv2.rectangle(out, (4, 4), (300, 26), 16, -1)
    cv2.putText(out, f"{label} {at:%Y-%m-%d %H:%M:%S}", (8, 21), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 235, 1)
    return out


def covered(seed: int = 7) -> np.ndarray:
    """A palm over the lens: dark, flat, sensor noise."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(48, 4, (H, W)), 0, 255).astype(np.uint8)


def run(
    checker: PictureChecker, frames: list[np.ndarray], start: int = 0, step: float = 2.0
) -> list[set[str]]:
    out = []
    for i, frame in enumerate(frames):
        result = checker.check(frame, T0 + timedelta(seconds=(start + i) * step))
        out.append({f.value for f in result.faults})
    return out


def at(i: int, step: float = 2.0) -> datetime:
    return T0 + timedelta(seconds=i * step)


def test_normal_room_with_ticking_clock_raises_nothing_even_when_static() -> None:
    scene = room()
    checker = PictureChecker(NO_HOG)
    # The room does not move at all; only the clock ticks: not frozen, not moved, not blurred.
    faults = run(checker, [with_osd(scene, at(i)) for i in range(40)])
    assert faults == [set()] * 40


def test_black_with_osd_is_black_at_once() -> None:
    checker = PictureChecker(NO_HOG)
    run(checker, [with_osd(room(), at(i)) for i in range(3)])
    dark = np.zeros((H, W), np.uint8)
    faults = run(checker, [with_osd(dark, at(i)) for i in range(3, 6)], start=3)
    assert faults == [{"black"}] * 3  # the ticking clock keeps it from being frozen as well


def test_covered_with_osd_is_covered_not_black() -> None:
    checker = PictureChecker(NO_HOG)
    faults = run(checker, [with_osd(covered(seed=i), at(i)) for i in range(4)])
    assert faults == [{"covered"}] * 4


def test_a_dim_but_textured_room_is_neither_black_nor_covered() -> None:
    dim = (room().astype(np.float32) * 0.45).astype(np.uint8)  # lights dimmed: p92 ≈ 80
    checker = PictureChecker(NO_HOG)
    assert run(checker, [with_osd(dim, at(i)) for i in range(6)]) == [set()] * 6


def test_frozen_after_exactly_frozen_seconds_of_identical_frames() -> None:
    t = CheckThresholds(hog_every_seconds=0, frozen_seconds=4.0)
    checker = PictureChecker(t)
    stuck = with_osd(room(), at(0))  # the clock stopped with the picture
    times = [0.0, 2.0, 3.9, 4.0, 6.0]
    faults = [{f.value for f in checker.check(stuck, T0 + timedelta(seconds=s)).faults} for s in times]
    assert faults == [set(), set(), set(), {"frozen"}, {"frozen"}]
    # The picture moves again: frozen clears at once, and the count starts over.
    moving = with_osd(room(), at(5))
    assert checker.check(moving, T0 + timedelta(seconds=8)).faults == frozenset()
    assert checker.check(moving, T0 + timedelta(seconds=10)).faults == frozenset()
    assert checker.check(moving, T0 + timedelta(seconds=12)).faults == frozenset({PictureFault.FROZEN})


def test_frozen_tolerates_decoder_noise_but_not_a_changed_clock_digit() -> None:
    checker = PictureChecker(CheckThresholds(hog_every_seconds=0, frozen_seconds=4.0))
    stuck = with_osd(room(), at(0))
    rng = np.random.default_rng(3)
    # Re-encoded keyframes of one picture differ by a few levels (rate control).
    noisy = [np.clip(stuck.astype(np.int16) + rng.integers(-3, 4, stuck.shape), 0, 255).astype(np.uint8)]
    assert run(checker, [stuck, noisy[0], stuck]) == [set(), set(), {"frozen"}]
    fresh = PictureChecker(CheckThresholds(hog_every_seconds=0, frozen_seconds=4.0))
    scene = room()
    ticking = [with_osd(scene, T0 + timedelta(seconds=s)) for s in (0, 1, 2)]  # one digit each
    assert run(fresh, ticking) == [set(), set(), set()]


def test_frozen_needs_near_empty_delta_frames_when_their_sizes_are_known() -> None:
    """Identical keyframes but full-size P-frames in between (something moves between the
    keyframes, e.g. a sensor's noise): not frozen; near-empty P-frames: frozen."""
    t = CheckThresholds(hog_every_seconds=0, frozen_seconds=2.0, frozen_max_delta_bytes_per_mpx=600)
    stuck = with_osd(room(), at(0))  # 640×360 = 0.23 MP: the limit is 138 bytes
    busy = PictureChecker(t)
    assert [busy.check(stuck, at(i), delta_bytes=2000).faults for i in range(4)] == [frozenset()] * 4
    skipped = PictureChecker(t)
    faults = [skipped.check(stuck, at(i), delta_bytes=17).faults for i in range(3)]
    assert faults == [frozenset(), frozenset({PictureFault.FROZEN}), frozenset({PictureFault.FROZEN})]
    edge = PictureChecker(t)
    assert edge.check(stuck, at(0), delta_bytes=138.2).faults == frozenset()
    assert edge.check(stuck, at(1), delta_bytes=138.2).faults == frozenset({PictureFault.FROZEN})
    assert edge.check(stuck, at(2), delta_bytes=138.3).faults == frozenset()


def test_defocused_after_warmup_and_confirmation_while_the_osd_stays_sharp() -> None:
    t = CheckThresholds(hog_every_seconds=0, warmup_samples=5, confirm_samples=3)
    checker = PictureChecker(t)
    scene = room()
    assert run(checker, [with_osd(scene, at(i)) for i in range(6)]) == [set()] * 6
    blurred = cv2.GaussianBlur(scene, (0, 0), 4)  # the lens, not the OSD, is out of focus
    faults = run(checker, [with_osd(blurred, at(i)) for i in range(6, 10)], start=6)
    assert faults == [set(), set(), {"defocused"}, {"defocused"}]


def test_moved_after_warmup_and_confirmation() -> None:
    t = CheckThresholds(hog_every_seconds=0, warmup_samples=5, confirm_samples=3)
    checker = PictureChecker(t)
    scene = room()
    assert run(checker, [with_osd(scene, at(i)) for i in range(5)]) == [set()] * 5
    # Turned towards another corner: other furniture, light from the other side; same OSD.
    shade = np.linspace(-70, 70, H)[:, None]
    other = np.clip(room(seed=42)[::-1].astype(np.int16) + shade, 0, 255).astype(np.uint8)
    faults = run(checker, [with_osd(other, at(i)) for i in range(5, 9)], start=5)
    assert faults == [set(), set(), {"moved"}, {"moved"}]


def test_lights_dimmed_is_not_a_moved_camera() -> None:
    t = CheckThresholds(hog_every_seconds=0, warmup_samples=5, confirm_samples=3)
    checker = PictureChecker(t)
    scene = room()
    run(checker, [with_osd(scene, at(i)) for i in range(5)])
    dim = (scene.astype(np.float32) * 0.5).astype(np.uint8)
    assert run(checker, [with_osd(dim, at(i)) for i in range(5, 10)], start=5) == [set()] * 5


def test_a_person_walking_through_is_not_a_moved_camera() -> None:
    t = CheckThresholds(hog_every_seconds=0, warmup_samples=5, confirm_samples=3)
    checker = PictureChecker(t)
    scene = room()
    run(checker, [with_osd(scene, at(i)) for i in range(5)])
    frames = []
    for i in range(8):  # a dark figure crossing the room, 1/6 of the width
        img = scene.copy()
        x = 40 + i * 60
        img[60:H, x : x + W // 6] = 35
        frames.append(with_osd(img, at(5 + i)))
    assert run(checker, frames, start=5) == [set()] * 8


def test_no_baseline_from_faulty_pictures() -> None:
    """A camera that starts covered learns its baseline only once the picture is normal."""
    t = CheckThresholds(hog_every_seconds=0, warmup_samples=3, confirm_samples=2)
    checker = PictureChecker(t)
    run(checker, [with_osd(covered(seed=i), at(i)) for i in range(5)])
    scene = room()
    assert run(checker, [with_osd(scene, at(i)) for i in range(5, 12)], start=5) == [set()] * 7


def test_people_detector_runs_on_its_period_and_finds_no_one_in_an_empty_room() -> None:
    checker = PictureChecker(CheckThresholds(hog_every_seconds=10.0))
    scene = room()
    counts = [checker.check(with_osd(scene, at(i)), at(i)).person_count for i in range(7)]
    assert counts == [0, None, None, None, None, 0, None]  # samples every 2 s, HOG every 10 s


def test_people_detector_counts_a_person_shaped_figure() -> None:
    """HOG's people model on a drawn standing figure (head, torso, arms, legs) at walking size."""
    img = np.full((360, 640), 200, np.uint8)
    rng = np.random.default_rng(5)
    img = np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)
    cx, top = 320, 60
    cv2.circle(img, (cx, top + 22), 20, 40, -1)  # head
    cv2.rectangle(img, (cx - 30, top + 44), (cx + 30, top + 150), 50, -1)  # torso
    cv2.rectangle(img, (cx - 44, top + 48), (cx - 32, top + 140), 50, -1)  # arms
    cv2.rectangle(img, (cx + 32, top + 48), (cx + 44, top + 140), 50, -1)
    cv2.rectangle(img, (cx - 28, top + 150), (cx - 6, top + 250), 45, -1)  # legs
    cv2.rectangle(img, (cx + 6, top + 150), (cx + 28, top + 250), 45, -1)
    img = np.asarray(cv2.GaussianBlur(img, (0, 0), 1.2), dtype=np.uint8)
    detector = PeopleDetector(width=640, min_weight=0.0)
    assert detector.count(img) >= 1
    assert detector.count(np.full((360, 640), 200, np.uint8)) == 0


def test_thresholds_come_from_the_settings_section() -> None:
    cfg = PictureChecksConfig(frozen_seconds=7.5, black_luma=20, hog_every_seconds=0)
    t = thresholds_from(cfg)
    assert (t.frozen_seconds, t.black_luma, t.hog_every_seconds) == (7.5, 20, 0)
    for f in fields(CheckThresholds):  # every threshold is configurable, with the same default
        assert getattr(PictureChecksConfig(), f.name) == getattr(CheckThresholds(), f.name), f.name


@pytest.mark.parametrize("size", [(720, 1280), (576, 704)])
def test_works_at_camera_resolutions(size: tuple[int, int]) -> None:
    h, w = size
    scene = cv2.resize(room(), (w, h))
    checker = PictureChecker(NO_HOG)
    assert run(checker, [with_osd(scene, at(i)) for i in range(3)]) == [set()] * 3
    assert run(checker, [np.zeros((h, w), np.uint8)], start=3) == [{"black"}]
