"""Picture checks on one camera's sampled keyframes: black, frozen, covered, defocused, moved,
and a person count (OpenCV's built-in HOG people detector, no downloaded weights).

Pure: numpy arrays in, a :class:`CheckResult` out; :class:`PictureChecker` keeps the per-camera
state (previous sample, warm-up baseline). The input is the luma plane (``Y``, uint8, H×W) of a
decoded keyframe, which the decoder hands over without a colour conversion.

How each fault is told (thresholds in ``[picture_checks]``, ``PictureChecksConfig``):

- Every camera burns a clock and a name into its picture (OSD) and that text stays when the
  lens is covered or the room is dark. Level checks therefore read *percentiles* of the
  picture (the ``osd_fraction`` brightest and darkest pixels are ignored), never its max or
  plain variance, and the texture check takes a percentile over tiles, so a few tiles of
  sharp OSD text do not count as a sharp scene.
- **black**: the ``1 − osd_fraction`` percentile of luma is at most ``black_luma``.
- **covered**: not black, but the picture is flat: the spread between the ``osd_fraction``
  and ``1 − osd_fraction`` percentiles of a downscaled luma is at most ``covered_spread`` (a
  hand, cloth or tape lets a little light through; sensor noise averages out when downscaled).
- **frozen**: compared with the previous sample on 4×4-pixel block means (a quarter-size copy:
  fine enough to see one OSD digit change, and what is kept per camera is 1/16 of the frame),
  at most ``frozen_max_changed_pixels`` blocks differ by more than ``frozen_pixel_delta``, and
  that has lasted ``frozen_seconds`` (from the first sample showing the picture to this one)
  while new keyframes kept arriving (the caller only passes new keyframes), and the non-key
  frames read with the keyframe are near-empty (median ≤ ``frozen_max_delta_bytes_per_mpx``
  bytes per megapixel): identical frames encode to all-skipped macroblocks (simulator: 17 B
  at 360p, 273 B at 720p, i.e. 74-296 B/MP), while a ticking clock alone costs 1.4-2 KB/MP
  and a live sensor's noise more. At one sample per 2 s the default 2 s takes two identical
  samples: with the keyframe's age and the sampling phase, an alert 3-7 s after the freeze. A static room is not frozen: the
  OSD clock changes between two samples 2 s apart, and a live sensor's noise changes more; a
  hung encoder repeats identical frames, which decode to (nearly) identical pixels. Measured on
  the simulator at 720p: frozen, 0 blocks over 16 (largest change 11); the ticking clock alone
  on a black picture, 18-62 blocks; one changed digit of a synthetic OSD, 6.
- **defocused**: after ``warmup_samples`` fault-free samples, the scene's sharpness (a
  percentile over tiles of the mean |Laplacian|) has fallen below ``defocus_ratio`` of the
  warm-up baseline for ``confirm_samples`` samples. Off when the baseline scene has no texture
  (below ``min_baseline_sharpness``): blur cannot be told there.
- **moved**: after the warm-up, for ``confirm_samples`` samples both (a) the grey-level
  histograms of three horizontal bands differ from the baseline's (Bhattacharyya distance,
  mean over bands) by more than ``moved_distance`` and (b) a 32×18 thumbnail correlates with
  the baseline thumbnail (zero-mean normalised cross-correlation) less than
  ``moved_correlation``. (a) alone would take the lights being switched off for a move, (b)
  alone a person standing close or moving content (the simulator's scrolling bars keep their
  histograms); a turned or displaced camera changes both.
- **person count**: ``cv2.HOGDescriptor`` with the default people detector, on a copy scaled
  to ``hog_width``, at most once every ``hog_every_seconds`` (it costs tens of milliseconds).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from domain.types import PictureFault

logger = logging.getLogger(__name__)

Gray = npt.NDArray[np.uint8]

_SMALL = (320, 180)  # analysis size for level, texture and histogram checks (cheap, noise averaged)
_TILES = (8, 6)  # columns, rows of the texture grid
_BANDS = 3  # horizontal bands of the moved check
_BINS = 32
_THUMB = (32, 18)


@dataclass(frozen=True, slots=True)
class CheckThresholds:
    """The numbers the checks use (``PictureChecksConfig`` carries them from the settings)."""

    osd_fraction: float = 0.08
    black_luma: float = 32.0
    covered_spread: float = 18.0
    frozen_seconds: float = 2.0
    frozen_pixel_delta: int = 16
    frozen_max_changed_pixels: int = 2
    frozen_max_delta_bytes_per_mpx: float = 600.0
    warmup_samples: int = 5
    confirm_samples: int = 3
    defocus_ratio: float = 0.35
    min_baseline_sharpness: float = 1.0
    moved_distance: float = 0.3
    moved_correlation: float = 0.5
    hog_every_seconds: float = 10.0  # 0: never
    hog_width: int = 640
    hog_min_weight: float = 0.5


@dataclass(frozen=True, slots=True)
class PictureMetrics:
    """What the checks measured on one sample (logged and kept for tuning)."""

    low: float  # luma percentile osd_fraction
    high: float  # luma percentile 1 - osd_fraction
    spread: float  # high - low on the downscaled picture
    changed_pixels: int | None  # 4×4 blocks changed vs the previous sample (None: first sample)
    sharpness: float
    moved_distance: float | None  # histograms vs the baseline (None: no baseline yet)
    correlation: float | None  # thumbnail vs the baseline's


@dataclass(frozen=True, slots=True)
class CheckResult:
    faults: frozenset[PictureFault]
    person_count: int | None
    metrics: PictureMetrics


def _small(gray: Gray) -> Gray:
    return np.asarray(cv2.resize(gray, _SMALL, interpolation=cv2.INTER_AREA), dtype=np.uint8)


def levels(gray: Gray, osd_fraction: float) -> tuple[float, float]:
    """Luma percentiles ``osd_fraction`` and ``1 - osd_fraction``: the OSD text is ignored.

    From a 256-bin histogram (a full-HD ``np.percentile`` sorts two million values)."""
    hist = cv2.calcHist([gray], [0], None, [256], [0, 256]).reshape(-1)
    cum = np.cumsum(hist)
    total = float(cum[-1])
    lo = int(np.searchsorted(cum, osd_fraction * total, side="right"))
    hi = int(np.searchsorted(cum, (1 - osd_fraction) * total, side="left"))
    return float(min(lo, 255)), float(min(hi, 255))


def sharpness(small: Gray, osd_fraction: float) -> float:
    """A high percentile over tiles of the mean |Laplacian|: how much texture the scene has.

    Tiles, not the whole frame: the OSD's sharp text fills a few tiles only, and the
    percentile sits below them, so blurring the scene lowers it although the OSD stays sharp.
    """
    lap = np.abs(cv2.Laplacian(small, cv2.CV_32F, ksize=3))
    cols, rows = _TILES
    h, w = lap.shape
    tiles = lap[: h - h % rows, : w - w % cols].reshape(rows, h // rows, cols, w // cols).mean(axis=(1, 3))
    return float(np.percentile(tiles, 100 * (1 - max(osd_fraction, 0.25))))


def band_histograms(small: Gray) -> list[npt.NDArray[np.float32]]:
    h = small.shape[0]
    out = []
    for i in range(_BANDS):
        band = small[i * h // _BANDS : (i + 1) * h // _BANDS]
        hist = np.asarray(cv2.calcHist([band], [0], None, [_BINS], [0, 256]), dtype=np.float32)
        out.append(hist / max(float(hist.sum()), 1.0))
    return out


def histogram_distance(a: list[npt.NDArray[np.float32]], b: list[npt.NDArray[np.float32]]) -> float:
    return float(
        np.mean([cv2.compareHist(x, y, cv2.HISTCMP_BHATTACHARYYA) for x, y in zip(a, b, strict=True)])
    )


def thumbnail(small: Gray) -> npt.NDArray[np.float32]:
    return np.asarray(cv2.resize(small, _THUMB, interpolation=cv2.INTER_AREA), dtype=np.float32)


def correlation(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> float:
    """Zero-mean normalised cross-correlation: 1 same layout (whatever the exposure), ≤ 0 unrelated."""
    x, y = a - a.mean(), b - b.mean()
    den = float(np.sqrt(float((x * x).sum()) * float((y * y).sum())))
    return float((x * y).sum()) / den if den > 1e-6 else 0.0


def changed_pixels(a: Gray, b: Gray, delta: int) -> int:
    """Pixels whose luma differs by more than ``delta`` (same size required)."""
    return int(np.count_nonzero(cv2.absdiff(a, b) > delta))


class PeopleDetector:
    """OpenCV's HOG + linear SVM people detector (weights built into OpenCV)."""

    def __init__(self, width: int = 640, min_weight: float = 0.5) -> None:
        self.width = width
        self.min_weight = min_weight
        self._hog: Any = cv2.HOGDescriptor()
        self._hog.setSVMDetector(getattr(cv2, "HOGDescriptor_getDefaultPeopleDetector")())  # noqa: B009 (contrib: no stubs)

    def count(self, gray: Gray) -> int:
        h, w = gray.shape[:2]
        img: Any = gray
        if w > self.width:
            img = cv2.resize(gray, (self.width, round(h * self.width / w)), interpolation=cv2.INTER_AREA)
        rects, weights = self._hog.detectMultiScale(img, winStride=(8, 8), padding=(8, 8), scale=1.05)
        if len(rects) == 0:
            return 0
        return int(np.count_nonzero(np.asarray(weights).reshape(-1) >= self.min_weight))


@dataclass
class _Baseline:
    sharpness: list[float] = field(default_factory=list)
    hists: list[list[npt.NDArray[np.float32]]] = field(default_factory=list)
    thumbs: list[npt.NDArray[np.float32]] = field(default_factory=list)

    def ready(self, samples: int) -> bool:
        return len(self.sharpness) >= samples

    def hist(self) -> list[npt.NDArray[np.float32]]:
        return [np.mean([h[i] for h in self.hists], axis=0).astype(np.float32) for i in range(_BANDS)]


class PictureChecker:
    """One camera's checks over its sampled keyframes (call :meth:`check` per new keyframe)."""

    def __init__(
        self, thresholds: CheckThresholds | None = None, people: PeopleDetector | None = None
    ) -> None:
        self.t = thresholds or CheckThresholds()
        self._people = people
        self._prev: Gray | None = None
        self._prev_at: datetime | None = None
        self._unchanged_since: datetime | None = None
        self._baseline = _Baseline()
        self._baseline_hist: list[npt.NDArray[np.float32]] | None = None
        self._baseline_thumb: npt.NDArray[np.float32] | None = None
        self._baseline_sharpness: float | None = None
        self._blur_run = 0
        self._moved_run = 0
        self._last_hog: datetime | None = None

    def _people_detector(self) -> PeopleDetector:
        if self._people is None:
            self._people = PeopleDetector(self.t.hog_width, self.t.hog_min_weight)
        return self._people

    def check(self, gray: Gray, at: datetime, delta_bytes: float | None = None) -> CheckResult:
        """Check one new keyframe taken at ``at``. ``delta_bytes``: median size of the non-key
        frames around it (None: not known; frozen is then told from the pixels alone)."""
        t = self.t
        faults: set[PictureFault] = set()
        small = _small(gray)
        lo, hi = levels(gray, t.osd_fraction)
        s_lo, s_hi = levels(small, t.osd_fraction)
        spread = s_hi - s_lo
        if hi <= t.black_luma:
            faults.add(PictureFault.BLACK)
        elif spread <= t.covered_spread:
            faults.add(PictureFault.COVERED)

        changed: int | None = None
        h, w = gray.shape[:2]
        blocks = np.asarray(cv2.resize(gray, (w // 4, h // 4), interpolation=cv2.INTER_AREA), dtype=np.uint8)
        if self._prev is not None and self._prev.shape == blocks.shape:
            changed = changed_pixels(self._prev, blocks, t.frozen_pixel_delta)
        still = delta_bytes is None or delta_bytes <= t.frozen_max_delta_bytes_per_mpx * h * w / 1e6
        if changed is not None and changed <= t.frozen_max_changed_pixels and still:
            if self._unchanged_since is None:
                self._unchanged_since = self._prev_at or at  # unchanged since the previous sample
            if (at - self._unchanged_since).total_seconds() >= t.frozen_seconds:
                faults.add(PictureFault.FROZEN)
        else:
            self._unchanged_since = None
        self._prev = blocks
        self._prev_at = at

        sharp = sharpness(small, t.osd_fraction)
        hists = band_histograms(small)
        thumb = thumbnail(small)
        distance: float | None = None
        corr: float | None = None
        if self._baseline_hist is None or self._baseline_thumb is None:
            if not faults:  # the baseline is learnt from normal pictures only
                self._baseline.sharpness.append(sharp)
                self._baseline.hists.append(hists)
                self._baseline.thumbs.append(thumb)
                if self._baseline.ready(t.warmup_samples):
                    self._baseline_hist = self._baseline.hist()
                    self._baseline_thumb = np.mean(self._baseline.thumbs, axis=0).astype(np.float32)
                    self._baseline_sharpness = float(np.median(self._baseline.sharpness))
                    logger.debug("picture baseline: sharpness %.2f", self._baseline_sharpness)
        else:
            distance = histogram_distance(hists, self._baseline_hist)
            corr = correlation(thumb, self._baseline_thumb)
            level_fault = bool(faults & {PictureFault.BLACK, PictureFault.COVERED})
            # A black or covered picture explains both blur and a changed histogram.
            moved = distance > t.moved_distance and corr < t.moved_correlation and not level_fault
            self._moved_run = self._moved_run + 1 if moved else 0
            base = self._baseline_sharpness or 0.0
            blurred = base >= t.min_baseline_sharpness and sharp < t.defocus_ratio * base and not level_fault
            self._blur_run = self._blur_run + 1 if blurred else 0
            if self._moved_run >= t.confirm_samples:
                faults.add(PictureFault.MOVED)
            if self._blur_run >= t.confirm_samples:
                faults.add(PictureFault.DEFOCUSED)

        people: int | None = None
        if t.hog_every_seconds > 0 and (
            self._last_hog is None or (at - self._last_hog).total_seconds() >= t.hog_every_seconds
        ):
            self._last_hog = at
            people = self._people_detector().count(gray)
        metrics = PictureMetrics(lo, hi, spread, changed, sharp, distance, corr)
        return CheckResult(frozenset(faults), people, metrics)
