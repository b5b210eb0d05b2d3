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
from cameras.rules import backup_problems
from cameras.services import BackupAssignment, assign_backups
from capacity import coefficients
from capacity.inputs import CameraInput, Site
from capacity.planner import camera_loads, capacity_of, tally

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
    def assignments(self) -> list[BackupAssignment]:
        return [BackupAssignment(change.camera_id, change.proposed_backup_id) for change in self.changes]


def in_scope(camera: CameraInput, scope: str) -> bool:
    """Cameras the proposal may change: enabled ones that would move on a failure."""
    if not camera.enabled or camera.priority == FailoverPriority.NEVER:
        return False
    return scope == "all" or camera.backup_id is None


class _State:
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

    def scores(self, loads: np.ndarray, servers) -> np.ndarray:
        return np.max(loads / self.rank_capacity[servers], axis=-1)

    def worst(self, s: int) -> float:
        return float(np.max(self.scores(self.normal[s] + self.moves[:, s], s)))


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
    state = _State(site, index)
    tallies = tally(site, backup_of=lambda c: None if c.id in movable_ids else c.backup_id)
    for pk, t in tallies.items():
        state.normal[index[pk]] = _vector(t.normal)
        for failed, load in t.moves.items():
            state.moves[index[failed], index[pk]] = _vector(load)
    worst = np.array([state.worst(i) for i in range(len(ids))]) if ids else np.zeros(0)
    held = np.zeros((len(ids), len(ids)))  # cameras of primary p placed on s by this proposal

    candidates = _candidates(site, ids, {camera.primary_id for camera in movable})
    constant = np.array([site.servers[pk].redundancy.constant_redundancy for pk in ids], dtype=bool)
    chosen: dict[int, int | None] = {}
    unplaced = []
    same_mode: dict[tuple[int, str], np.ndarray] = {}  # the mode depends on the two servers only
    movable.sort(key=lambda c: (-loads[c.id][0].mbps, c.id))
    for camera in movable:
        p = index[camera.primary_id]
        options = candidates[camera.primary_id]
        if options.size == 0:
            unplaced.append((camera, "no server in its multiserver system may back it up (rules 1 and 2)"))
            continue
        if camera.backup_id is not None:
            # Reconsidering a camera's backup keeps its redundancy mode: the operator chose that protection.
            mode = site.mode_of(camera)
            key = (camera.primary_id, mode)
            if key not in same_mode:
                same_mode[key] = options[[site.mode_of(camera, ids[i]) == mode for i in options]]
            options = same_mode[key]
            if options.size == 0:
                unplaced.append((camera, f"no other valid backup server gives it {mode} redundancy"))
                continue
        vector = _vector(loads[camera.id][0])
        taking = state.normal[options] + state.moves[p, options] + vector
        fits = np.all(taking <= state.limit[options], axis=1)
        peak = np.maximum(worst[options], state.scores(taking, options))
        for j in np.flatnonzero(constant[options]):
            # A constant-mode backup records the camera all the time: every one of its cases grows.
            s = options[j]
            cases = state.normal[s] + vector + state.moves[:, s]
            peak[j] = float(np.max(state.scores(cases, s)))
            fits[j] = bool(np.all(cases <= state.limit[s]))
        if not fits.any():
            unplaced.append((camera, "no valid backup server has room for it within its capacity figures"))
            continue
        order = np.lexsort((options, held[p, options], peak, ~fits))
        j = order[0]
        s = options[j]
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
        server_peaks={names[pk]: (before[pk], after[pk]) for pk in ids if before[pk] != after[pk]},
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
    """Every server's worst case (normal or any single failure) as a share of its tightest figure."""
    state = _State(site, index)
    for pk, t in tally(site, backup_of=backup_of).items():
        state.normal[index[pk]] = _vector(t.normal)
        for failed, load in t.moves.items():
            state.moves[index[failed], index[pk]] = _vector(load)
    return {pk: state.worst(index[pk]) for pk in ids}


def apply(proposal: Proposal, today=None) -> int:
    """Store the proposal through the same path as the Cameras tab; all or nothing."""
    return len(assign_backups(proposal.assignments, today))
