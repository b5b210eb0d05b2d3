"""Proposing backup servers: spread each server's cameras so the worst single failure stays low.

Greedy, largest camera first: each camera goes to the valid backup (rules 1 and 2 through
``backup_problems``) whose worst case after taking it is lowest, among those that stay within
their capacity figures; a camera that has a backup only moves to one giving it the same mode.
A backup's worst case is the largest of its normal load and its load
after any one server fails; taking a camera from primary P only raises the "P fails" case (or,
for a constant-mode backup, its normal load and so every case). Ties go to the backup that
holds fewer of P's cameras, which spreads one server's cameras over several backups.

The operator sees the result as a diff and applies it through ``cameras.services.assign_backups``.
"""

from dataclasses import dataclass, field

import numpy as np

from cameras.models import FailoverPriority
from cameras.modes import mode_for
from cameras.rules import backup_problems
from cameras.services import BackupAssignment, assign_backups
from capacity import coefficients
from capacity.inputs import CameraInput, Site
from capacity.planner import camera_loads, capacity_of, tally

# A camera keeps its backup when that leaves the backup within this share of capacity of the best
# choice (0.02 = two percentage points): a proposal should not move cameras for nothing.
KEEP_MARGIN = 0.02

SCOPES = {"unassigned": "cameras without a backup", "all": "all cameras"}


@dataclass(frozen=True)
class Change:
    camera_id: int
    camera: str
    primary: str
    current_backup: str | None
    proposed_backup: str
    proposed_backup_id: int
    current_mode: str
    proposed_mode: str  # the mode follows the backup's settings: a constant-mode backup makes it constant


@dataclass
class Proposal:
    scope: str
    changes: list[Change]
    unplaced: list[tuple[str, str]]  # (camera, why no backup was proposed)
    kept: int  # cameras in scope whose backup stays as it is
    peak_before: float | None
    peak_after: float | None
    server_peaks: dict[str, tuple[float, float]] = field(default_factory=dict)  # name -> (before, after)

    @property
    def scope_label(self) -> str:
        return SCOPES[self.scope]

    @property
    def assignments(self) -> list[BackupAssignment]:
        return [BackupAssignment(change.camera_id, change.proposed_backup_id) for change in self.changes]


def in_scope(camera: CameraInput, scope: str) -> bool:
    """Cameras the proposal may change: enabled ones that would move on a failure."""
    if not camera.enabled or camera.priority == FailoverPriority.NEVER:
        return False
    return scope == "all" or camera.backup_id is None


class ServerLoads:
    """Per-server loads as arrays: normal[s], moves[primary, s], capacity for ranking and limits."""

    def __init__(self, site: Site, index: dict[int, int]):
        n = len(index)
        self.normal = np.zeros((n, 4))
        self.moves = np.zeros((n, n, 4))
        self.limit = np.full((n, 4), np.inf)
        for pk, i in index.items():
            server = site.servers[pk]
            capacity = capacity_of(server)
            hours = server.retention_hours
            # Storage is carried per hour: a capacity in GB becomes GB per hour of its retention.
            figures = [capacity["mbps"], capacity["cores"], capacity["storage_gb"] and capacity["storage_gb"] / hours,
                       capacity["cameras"]]  # fmt: skip
            self.limit[i] = [value if value else np.inf for value in figures]
        self.rank_capacity = self.limit.copy()
        unmeasured = np.all(np.isinf(self.limit), axis=1)
        self.rank_capacity[unmeasured, 0] = coefficients.NOMINAL_INBOUND_MBPS

    @classmethod
    def of(cls, site: Site, index: dict[int, int], backup_of=None) -> "ServerLoads":
        """The loads of the site as it stands, or with ``backup_of(camera)`` as each camera's backup."""
        state = cls(site, index)
        for pk, t in tally(site, backup_of=backup_of).items():
            state.normal[index[pk]] = _vector(t.normal)
            for failed, load in t.moves.items():
                state.moves[index[failed], index[pk]] = _vector(load)
        return state

    def scores(self, loads: np.ndarray, servers) -> np.ndarray:
        return np.max(loads / self.rank_capacity[servers], axis=-1)

    def worst(self, s: int) -> float:
        return float(np.max(self.scores(self.normal[s] + self.moves[:, s], s)))


class _Options:
    """The servers that may back up cameras of one primary (in one mode), with their figures."""

    def __init__(self, servers: np.ndarray, state: ServerLoads, constant: np.ndarray):
        self.servers = servers
        self.limit = state.limit[servers]
        self.rank = state.rank_capacity[servers]
        self.constant = np.flatnonzero(constant[servers])

    def price(self, state: ServerLoads, worst: np.ndarray, p: int, vector: np.ndarray):
        """Per option: whether it stays within its limits after taking the camera, and its new worst case."""
        servers = self.servers
        taking = state.normal[servers] + state.moves[p, servers] + vector
        fits = (taking <= self.limit).all(axis=1)
        peak = np.maximum(worst[servers], (taking / self.rank).max(axis=1))
        if self.constant.size:
            # A constant-mode backup records the camera all the time: every one of its cases grows.
            cs = servers[self.constant]
            cases = state.normal[cs][:, None, :] + vector + state.moves[:, cs].transpose(1, 0, 2)
            peak[self.constant] = (cases / self.rank[self.constant][:, None, :]).max(axis=(1, 2))
            fits[self.constant] = (cases <= self.limit[self.constant][:, None, :]).all(axis=(1, 2))
        return fits, peak


def _vector(load) -> np.ndarray:
    return np.array([load.mbps, load.cores, load.gb_per_hour, load.cameras], dtype=float)


def propose(site: Site, scope: str = "unassigned") -> Proposal:
    if scope not in SCOPES:
        raise ValueError(f"Unknown scope {scope!r}: use one of {', '.join(SCOPES)}.")
    ids = sorted(site.servers)
    index = {pk: i for i, pk in enumerate(ids)}
    loads = camera_loads(site)
    movable = [camera for camera in site.cameras if in_scope(camera, scope)]
    movable_ids = {camera.id for camera in movable}

    before = _peaks(site, ids, index)
    state = ServerLoads.of(site, index, backup_of=lambda c: None if c.id in movable_ids else c.backup_id)
    worst = np.array([state.worst(i) for i in range(len(ids))]) if ids else np.zeros(0)
    held = np.zeros((len(ids), len(ids)))  # cameras of primary p placed on s by this proposal

    candidates = _candidates(site, ids, {camera.primary_id for camera in movable})
    settings = [site.servers[pk].redundancy for pk in ids]
    constant = np.array([s.constant_redundancy for s in settings], dtype=bool)
    # A camera's mode with backup b depends on b's flags and on whether its primary has fast redundancy.
    modes = {fast: np.array([mode_for(s.constant_redundancy, s.fast_redundancy, fast) for s in settings])
             for fast in (False, True)}  # fmt: skip
    options_cache: dict[tuple, _Options | None] = {}
    chosen: dict[int, int | None] = {}
    unplaced = []

    def keep(camera) -> None:
        """A camera left as it is keeps loading its current backup: later choices must see that."""
        if camera.backup_id not in index:
            return
        s, vector = index[camera.backup_id], _vector(loads[camera.id][0])
        if constant[s]:
            state.normal[s] += vector
        else:
            state.moves[index[camera.primary_id], s] += vector
        worst[s] = state.worst(s)

    movable.sort(key=lambda c: (-loads[c.id][0].mbps, c.id))
    for camera in movable:
        p = index[camera.primary_id]
        # Reconsidering a camera's backup keeps its redundancy mode: the operator chose that protection.
        mode = site.mode_of(camera) if camera.backup_id is not None else None
        key = (camera.primary_id, mode)
        if key not in options_cache:
            servers = candidates[camera.primary_id]
            if mode is not None:
                servers = servers[modes[settings[p].fast_redundancy][servers] == mode]
            options_cache[key] = _Options(servers, state, constant) if servers.size else None
        options = options_cache[key]
        if options is None:
            why = "no server in its multiserver system may back it up (rules 1 and 2)"
            if mode and candidates[camera.primary_id].size:
                why = f"no other valid backup server gives it {mode} redundancy"
            unplaced.append((camera, why))
            keep(camera)
            continue
        vector = _vector(loads[camera.id][0])
        fits, peak = options.price(state, worst, p, vector)
        masked = np.where(fits, peak, np.inf)
        best = masked.min()
        if best == np.inf:
            unplaced.append((camera, "no valid backup server has room for it within its capacity figures"))
            keep(camera)
            continue
        ties = np.flatnonzero(masked == best)
        j = ties[np.argmin(held[p, options.servers[ties]])] if ties.size > 1 else ties[0]
        if camera.backup_id is not None:
            # Moving a camera costs a reconnection: keep its backup unless another is clearly better.
            here = np.flatnonzero(options.servers == index.get(camera.backup_id, -1))
            if here.size and masked[here[0]] <= best + KEEP_MARGIN:
                j = here[0]
        s = options.servers[j]
        if constant[s]:
            state.normal[s] += vector
        else:
            state.moves[p, s] += vector
        worst[s] = peak[j]
        held[p, s] += 1
        chosen[camera.id] = ids[s]

    # A camera in scope that found no better place keeps the backup it has.
    unplaced_with_backup = {camera.id for camera, _ in unplaced if camera.backup_id is not None}
    plan_backup = {**{c.id: c.backup_id for c in movable if c.id in unplaced_with_backup}, **chosen}
    after = _peaks(site, ids, index, backup_of=lambda c: plan_backup.get(c.id) if c.id in movable_ids else c.backup_id)
    names = {pk: site.servers[pk].name for pk in ids}
    changes = [
        Change(
            camera.id,
            camera.name,
            names[camera.primary_id],
            names.get(camera.backup_id),
            names[chosen[camera.id]],
            chosen[camera.id],
            site.mode_of(camera),
            site.mode_of(camera, chosen[camera.id]),
        )
        for camera in sorted(movable, key=lambda c: c.name)
        if camera.id in chosen and chosen[camera.id] != camera.backup_id
    ]
    return Proposal(
        scope=scope,
        changes=changes,
        unplaced=[(camera.name, why) for camera, why in sorted(unplaced, key=lambda u: u[0].name)],
        kept=len(movable) - len(changes) - len(unplaced),
        peak_before=max(before.values(), default=None),
        peak_after=max(after.values(), default=None),
        server_peaks={names[pk]: (before[pk], after[pk]) for pk in before if before[pk] != after[pk]},
    )


def _candidates(site: Site, ids: list[int], primaries: set[int]) -> dict[int, np.ndarray]:
    """Per primary server, the positions of the servers that may back up its cameras (rules 1, 2)."""

    def licensing_of(server):
        return site.licensing[server.pk]

    by_system: dict[int, list[int]] = {}
    for i, pk in enumerate(ids):
        by_system.setdefault(site.servers[pk].system_id, []).append(i)
    candidates = {}
    for primary_id in primaries:
        primary = site.servers[primary_id]
        candidates[primary_id] = np.array(
            [i for i in by_system[primary.system_id]
             if not backup_problems("", primary, site.servers[ids[i]], site.today, licensing_of)],
            dtype=int,
        )  # fmt: skip
    return candidates


def _peaks(site: Site, ids: list[int], index: dict[int, int], backup_of=None) -> dict[int, float]:
    """Each server's worst case (normal or any single failure) as a share of its tightest capacity
    figure, as the planner reports it; servers without figures are left out."""
    state = ServerLoads.of(site, index, backup_of)
    peaks = {}
    for pk in ids:
        s = index[pk]
        if np.all(np.isinf(state.limit[s])):
            continue  # no capacity figure: balanced against a nominal port, but no share to report
        peaks[pk] = float(np.max((state.normal[s] + state.moves[:, s]) / state.limit[s]))
    return peaks


def apply(proposal: Proposal, today=None) -> int:
    """Store the proposal through the same path as the Cameras tab; all or nothing."""
    return len(assign_backups(proposal.assignments, today))
