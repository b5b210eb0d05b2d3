"""Per-server load, normal and after the worst single (or double) server failure (rule 4).

Normal load of a server: its own cameras with their analytics and their sub streams (the primary alone
reads a camera's sub stream, for analytics and the snapshot: both connections count), plus the cameras it
backs up in constant mode (it records them all the time), without analytics (rule 3) or sub streams.
When server F fails, F's cameras that have this server as backup in normal or fast mode move here, without
analytics or sub streams; cameras whose failover priority is "never" stay where they are. Loads add up per
failed server, so the worst pair of failures is found from each dimension's two largest moves.
"""

from dataclasses import dataclass, field

from cameras.models import FailoverPriority
from capacity import coefficients
from capacity.estimates import gb_per_hour
from capacity.inputs import DIMENSION_LABELS, DIMENSIONS, Site
from capacity.licensing import LicenseUse, PlanWarning, license_warnings
from redundancy.decisions import ingests
from redundancy.models import Placement


@dataclass
class Load:
    """A server's load with storage per hour, so it adds up before any retention applies."""

    mbps: float = 0.0
    cores: float = 0.0
    gb_per_hour: float = 0.0
    cameras: int = 0

    def __add__(self, other: "Load") -> "Load":
        return Load(self.mbps + other.mbps, self.cores + other.cores, self.gb_per_hour + other.gb_per_hour,
                    self.cameras + other.cameras)  # fmt: skip

    def figures(self, retention_hours: float) -> "Figures":
        return Figures(self.mbps, self.cores, self.gb_per_hour * retention_hours, self.cameras)


@dataclass(frozen=True)
class Figures:
    mbps: float
    cores: float
    storage_gb: float
    cameras: int

    def get(self, dimension: str) -> float:
        return getattr(self, dimension)


def capacity_of(server) -> dict[str, float | None]:
    cores = server.cpu_budget_cores
    return {
        "mbps": server.max_inbound_mbps,
        "cores": float(cores) if cores is not None else None,
        "storage_gb": server.storage_gb,
        "cameras": server.max_cameras,
    }


def utilisation(figures: Figures, capacity: dict) -> dict[str, float]:
    """Share of each capacity figure in use (1.0 = full); dimensions without a figure are left out."""
    return {d: figures.get(d) / capacity[d] for d in DIMENSIONS if capacity[d]}


def rank(figures: Figures, capacity: dict) -> float:
    """How close to full: the largest share in use, or Mbit/s against a nominal port without figures."""
    shares = utilisation(figures, capacity)
    return max(shares.values()) if shares else figures.mbps / coefficients.NOMINAL_INBOUND_MBPS


@dataclass(frozen=True)
class Scenario:
    failed: tuple[str, ...]
    figures: Figures
    moved: int
    utilisation: dict[str, float]

    @property
    def peak(self) -> float | None:
        return max(self.utilisation.values()) if self.utilisation else None

    @property
    def over(self) -> list[str]:
        return [d for d, share in self.utilisation.items() if share > 1.0]


@dataclass
class ServerPlan:
    server: object
    capacity: dict[str, float | None]
    normal: Scenario
    worst: Scenario | None
    worst_pair: Scenario | None
    own_cameras: int
    backed_up: int
    backed_up_constant: int
    without_backup: int
    licenses: LicenseUse
    warnings: list[PlanWarning] = field(default_factory=list)

    @property
    def peak(self) -> float | None:
        """Worst-case share of the server's tightest capacity figure."""
        return (self.worst or self.normal).peak


@dataclass
class CapacityPlan:
    servers: list[ServerPlan]
    pairs: bool

    @property
    def peak(self) -> float | None:
        peaks = [plan.peak for plan in self.servers if plan.peak is not None]
        return max(peaks) if peaks else None


def camera_loads(site: Site):
    """(ingest load, what the primary pays beyond it) per camera id; ingest is what any server recording it pays,
    the rest its analytics and its sub stream's bits and reading (less the main stream's decoding it spares)."""
    loads = {}
    for camera in site.cameras:
        est = site.estimates[camera.id]
        ingest = Load(est.stream_kbps / 1000, est.ingest_cores, gb_per_hour(est.recorded_kbps), 1)
        loads[camera.id] = (ingest, Load(est.sub_stream_kbps / 1000, est.cores_on_primary - est.ingest_cores))
    return loads


@dataclass
class _Tally:
    normal: Load = field(default_factory=Load)
    moves: dict[int, Load] = field(default_factory=dict)  # failed server id -> load moving here
    own: int = 0
    with_analytics: int = 0
    enabled_own: int = 0
    backed_up: int = 0
    backed_up_constant: int = 0
    without_backup: int = 0


def tally(site: Site, backup_of=None) -> dict[int, _Tally]:
    """Every server's normal load and the load each other server's failure moves to it.

    ``backup_of(camera)`` overrides the stored backup (the proposal uses it to price a plan).
    """
    loads = camera_loads(site)
    tallies = {pk: _Tally() for pk in site.servers}
    for camera in site.cameras:
        backup_id = camera.backup_id if backup_of is None else backup_of(camera)
        primary = tallies[camera.primary_id]
        primary.own += 1
        primary.with_analytics += bool(camera.analytics)
        if backup_id is not None and backup_id in tallies:
            tallies[backup_id].backed_up += 1
        if not camera.enabled:
            continue
        ingest, on_primary = loads[camera.id]
        primary.enabled_own += 1
        primary.normal = primary.normal + ingest + on_primary
        if backup_id is None or backup_id not in tallies:
            primary.without_backup += 1
            continue
        backup = tallies[backup_id]
        mode = site.mode_of(camera, backup_id)
        at_rest = ingests(camera.primary_id, backup_id, mode)
        if backup_id in at_rest:  # constant mode: a second connection, recording all the time
            backup.backed_up_constant += 1
            backup.normal = backup.normal + ingest
        elif camera.priority != FailoverPriority.NEVER and backup_id in ingests(
            camera.primary_id, backup_id, mode, Placement.ON_BACKUP
        ):
            backup.moves[camera.primary_id] = backup.moves.get(camera.primary_id, Load()) + ingest
    return tallies


def plan(site: Site, pairs: bool = False) -> CapacityPlan:
    tallies = tally(site)
    plans = [_server_plan(site, server, tallies[pk], pairs) for pk, server in site.servers.items()]
    plans.sort(key=lambda p: (p.server.system.name, p.server.name))
    return CapacityPlan(plans, pairs)


def _server_plan(site: Site, server, t: "_Tally", pairs: bool) -> ServerPlan:
    capacity = capacity_of(server)
    hours = server.retention_hours

    def scenario(failed: tuple[int, ...], load: Load) -> Scenario:
        figures = load.figures(hours)
        names = tuple(site.servers[f].name for f in failed)
        return Scenario(names, figures, load.cameras - t.normal.cameras, utilisation(figures, capacity))

    worst = None
    if t.moves:
        failed = max(t.moves, key=lambda f: (rank((t.normal + t.moves[f]).figures(hours), capacity), -f))
        worst = scenario((failed,), t.normal + t.moves[failed])
    uses = LicenseUse(t.own, t.with_analytics, t.backed_up, site.licensing[server.pk])
    server_plan = ServerPlan(
        server, capacity, scenario((), t.normal), worst, _worst_pair(t, capacity, hours, scenario) if pairs else None,
        t.enabled_own, t.backed_up, t.backed_up_constant, t.without_backup, uses,
    )  # fmt: skip
    server_plan.warnings = capacity_warnings(server_plan) + license_warnings(server, uses, site.today)
    return server_plan


def _worst_pair(t: _Tally, capacity: dict, hours: int, scenario) -> Scenario | None:
    """Loads from two failed servers add up, so for each dimension the two largest moves give the
    worst pair in that dimension; the worst of those is the worst pair overall."""
    if len(t.moves) < 2:
        return None
    candidates = set()
    for attribute in ("mbps", "cores", "gb_per_hour", "cameras"):
        top = sorted(t.moves, key=lambda f: (getattr(t.moves[f], attribute), -f), reverse=True)[:2]
        candidates.add(tuple(sorted(top)))
    worst = max(
        candidates,
        key=lambda pair: (rank((t.normal + t.moves[pair[0]] + t.moves[pair[1]]).figures(hours), capacity), pair),
    )
    return scenario(worst, t.normal + t.moves[worst[0]] + t.moves[worst[1]])


def _over_text(scenario: Scenario, capacity: dict) -> str:
    return ", ".join(
        f"{DIMENSION_LABELS[d]} {_number(scenario.figures.get(d))} of {_number(capacity[d])}" for d in scenario.over
    )


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def capacity_warnings(p: ServerPlan) -> list[PlanWarning]:
    name = p.server.name
    warnings = []
    missing = [DIMENSION_LABELS[d] for d in DIMENSIONS if not p.capacity[d]]
    if len(missing) == len(DIMENSIONS):
        warnings.append(
            PlanWarning("info", f"{name} has no capacity figures: its load is not checked against any limit.")
        )
    elif missing:
        warnings.append(PlanWarning("info", f"{name} has no figure for {', '.join(missing)}: not checked."))
    if p.normal.over:
        warnings.append(PlanWarning("error", f"Over capacity in normal operation: {_over_text(p.normal, p.capacity)}."))
    if p.worst and p.worst.over:
        failed = p.worst.failed[0]
        warnings.append(
            PlanWarning(
                "error",
                f"Backs up more than it can take: if {failed} fails, {p.worst.moved} camera(s) move here and "
                f"{name} is over capacity ({_over_text(p.worst, p.capacity)}). Spread {failed}'s cameras over "
                "more backup servers or raise the capacity.",
            )
        )
    if p.worst_pair and p.worst_pair.over:
        first, second = p.worst_pair.failed
        over = _over_text(p.worst_pair, p.capacity)
        warnings.append(PlanWarning("warning", f"If {first} and {second} both fail: over capacity ({over})."))
    if p.without_backup:
        warnings.append(
            PlanWarning(
                "warning",
                f"{p.without_backup} of {name}'s camera(s) have no backup server: they are not recorded "
                f"while {name} is down.",
            )
        )
    return warnings
