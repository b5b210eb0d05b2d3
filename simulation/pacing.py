"""When a simulated camera sends each frame: the full frame rate to one viewer and, as some real cameras do,
a lower one for each extra viewer. Standard library only: the RTSP camera process (``simulation.rtsp_server``)
runs on Debian's Python."""

SLOWEST = 0.1  # however many viewers, a camera keeps a tenth of its frame rate: real ones never stop for them


def viewer_rate(fps: float, drop_per_viewer: float, viewers: int) -> float:
    """The frame rate sent to ``viewers`` at once; ``drop_per_viewer`` is the share (0-1) lost per viewer beyond
    the first (0.5: two viewers get half the rate)."""
    return fps * max(SLOWEST, 1.0 - drop_per_viewer * max(0, viewers - 1))


class Pace:
    """Frame n is due at ``started + n / fps`` at the full rate. A new rate goes on from the frame due at that
    moment, so the frame counter stays contiguous (frames come later, none is skipped) and every viewer of the
    camera sees one numbering."""

    def __init__(self, started: float, fps: float):
        # From this time, this (fractional) frame on, at this rate: one tuple, replaced whole, so that the thread
        # that paces the frames never reads half of a change.
        self._since = (started, 0.0, fps)

    @property
    def rate(self) -> float:
        return self._since[2]

    def due(self, counter: int) -> float:
        at, first, rate = self._since
        return at + (counter - first) / rate

    def counter_at(self, moment: float) -> int:
        at, first, rate = self._since
        return max(0, int(first + (moment - at) * rate))

    def change_rate(self, rate: float, now: float) -> None:
        at, first, old = self._since
        if rate != old:
            self._since = (now, first + (now - at) * old, rate)
