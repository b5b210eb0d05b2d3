"""Analytics modules, run by an agent for the cameras whose primary server it is (rule 3).

Each detector takes decoded frames and reports an episode of what it watches for twice: when
it starts, and when it ends (or has run for its longest allowed stretch). Both reports share
the start time, so the second completes the first in the database.
"""

from dataclasses import dataclass

import cv2
import numpy as np

from cameras.models import AnalyticsModule

WORK_WIDTH = 160  # detectors look at a small picture: cheap, and noise averages out


def _small_gray(image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    scale = WORK_WIDTH / width
    small = cv2.resize(image, (WORK_WIDTH, max(1, int(height * scale))), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small


@dataclass
class _Episode:
    started_at: float
    last_seen: float
    peak: float


class _EpisodeDetector:
    """Turns a per-frame score into events: start above ``threshold``, end after ``quiet`` seconds below."""

    module = ""

    def __init__(self, threshold: float, quiet: float = 2.0, longest: float = 60.0, warmup_frames: int = 10):
        self.threshold = threshold
        self.quiet = quiet
        self.longest = longest
        self.warmup_frames = warmup_frames
        self._frames = 0
        self._episode: _Episode | None = None

    def score(self, gray: np.ndarray) -> float:
        raise NotImplementedError

    def feed(self, image: np.ndarray, at: float) -> dict | None:
        """An event dict when an episode starts (``ended_at`` None) and again when it ends."""
        score = self.score(_small_gray(image))
        self._frames += 1
        if self._frames <= self.warmup_frames:
            return None
        episode = self._episode
        if score >= self.threshold:
            if episode is None:
                self._episode = _Episode(at, at, score)
                return self._event(self._episode, None)
            episode.last_seen, episode.peak = at, max(episode.peak, score)
            if at - episode.started_at >= self.longest:
                self._episode = None  # a long episode is reported in parts; the next frame starts the next
                return self._event(episode, at)
            return None
        if episode is not None and at - episode.last_seen >= self.quiet:
            self._episode = None
            return self._event(episode, episode.last_seen)
        return None

    def _event(self, episode: _Episode, ended_at: float | None) -> dict:
        return {"module": self.module, "started_at": episode.started_at, "ended_at": ended_at,
                "peak_score": round(float(episode.peak), 4)}  # fmt: skip


class MotionDetector(_EpisodeDetector):
    """Background subtraction (MOG2): the share of the picture that moves."""

    module = AnalyticsModule.MOTION_DETECTION

    def __init__(self, threshold: float = 0.005, **kwargs):
        super().__init__(threshold, **kwargs)
        self._background = cv2.createBackgroundSubtractorMOG2(history=100, varThreshold=25, detectShadows=False)

    def score(self, gray: np.ndarray) -> float:
        mask = self._background.apply(gray)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        return float(np.count_nonzero(mask)) / mask.size


class TamperDetector(_EpisodeDetector):
    """A covered, blinded or defocused lens: the picture loses most of its detail."""

    module = AnalyticsModule.TAMPER_DETECTION

    def __init__(self, **kwargs):
        super().__init__(threshold=0.8, quiet=kwargs.pop("quiet", 3.0), **kwargs)
        self._baseline: float | None = None

    def score(self, gray: np.ndarray) -> float:
        detail = float(cv2.Laplacian(gray, cv2.CV_32F).var()) + float(gray.std())
        if self._baseline is None:
            self._baseline = detail
        lost = max(0.0, 1.0 - detail / self._baseline) if self._baseline > 0 else 0.0
        if lost < 0.5:  # learn slowly from healthy pictures only
            self._baseline = 0.98 * self._baseline + 0.02 * detail
        return lost


DETECTORS = {MotionDetector.module: MotionDetector, TamperDetector.module: TamperDetector}


def detectors_for(modules) -> list[_EpisodeDetector]:
    return [DETECTORS[module]() for module in modules if module in DETECTORS]
