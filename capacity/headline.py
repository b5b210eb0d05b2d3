"""The one line a planner's reader needs first: which server and which resource are tightest in the worst
case (rule 4: its own load plus the worst single other-server failure), and whether that fits.

A server over capacity with nothing failed comes first (it is short today); then one over after a failure;
else the tightest share of all, which fits. Servers without a figure for a resource are not judged on it.
"""

from dataclasses import dataclass

from capacity.inputs import DIMENSION_LABELS, DIMENSIONS
from capacity.planner import CapacityPlan, Scenario, ServerPlan


@dataclass(frozen=True)
class Tightest:
    server: str
    dimension: str  # one of capacity.inputs.DIMENSIONS
    load: float
    capacity: float
    failed: tuple[str, ...]  # the single failure that brings the load there; empty with nothing failed
    moves_here: bool  # False: no failure moves a camera to this server, so its worst case is its normal load
    short_now: tuple[str, ...]  # servers over capacity with nothing failed
    short_after_failure: tuple[str, ...]  # servers within capacity now but over after one failure

    @property
    def share(self) -> float:
        return self.load / self.capacity

    @property
    def fits(self) -> bool:
        return not (self.short_now or self.short_after_failure)

    @property
    def resource(self) -> str:
        return DIMENSION_LABELS[self.dimension]

    @property
    def figures(self) -> str:
        """``srv-b, cameras: 11 of 16 (69 %) after srv-a fails``."""
        percent = f"{self.share:.0%}".replace("%", " %")
        if self.failed:
            when = f"after {self.failed[0]} fails"
        else:
            when = "with nothing failed" if self.moves_here else "with nothing failed; no failure moves cameras to it"
        return f"{self.server}, {self.resource}: {amount(self.load)} of {amount(self.capacity)} ({percent}) {when}"

    @property
    def text(self) -> str:
        if self.short_now:
            others = [name for name in self.short_now if name != self.server]
            return f"Over capacity already: {self.figures}." + (
                f" Also over with nothing failed: {', '.join(others)}." if others else ""
            )
        if self.short_after_failure:
            others = [name for name in self.short_after_failure if name != self.server]
            return f"Does not fit: {self.figures}." + (
                f" Also over after a failure: {', '.join(others)}." if others else ""
            )
        return f"Fits: the tightest is {self.figures}."


def amount(value: float) -> str:
    """A figure as an operator reads it: 16, 1,000, 812, 48.6, 0.03."""
    if value >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}".rstrip("0").rstrip(".")


def _tightest_in(p: ServerPlan, scenario: Scenario) -> tuple[float, str] | None:
    shares = scenario.utilisation
    if not shares:
        return None
    dimension = max(DIMENSIONS, key=lambda d: (shares.get(d, -1.0), -DIMENSIONS.index(d)))
    return shares[dimension], dimension


def tightest(capacity_plan: CapacityPlan) -> Tightest | None:
    """The server and resource tightest in the worst single failure; None when no server has a figure."""
    short_now = tuple(p.server.name for p in capacity_plan.servers if p.normal.over)
    short_after = tuple(
        p.server.name for p in capacity_plan.servers if not p.normal.over and p.worst is not None and p.worst.over
    )
    best = None
    for p in capacity_plan.servers:
        # With a server short today, that is the headline: its normal load, not what a failure adds.
        scenario = p.normal if short_now else (p.worst or p.normal)
        found = _tightest_in(p, scenario)
        if found is not None and (best is None or found[0] > best[0]):
            best = (found[0], found[1], p, scenario)
    if best is None:
        return None
    _share, dimension, p, scenario = best
    return Tightest(
        p.server.name, dimension, scenario.figures.get(dimension), p.capacity[dimension], scenario.failed,
        p.worst is not None, short_now, short_after,
    )  # fmt: skip
