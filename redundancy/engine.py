"""The redundancy engine: reads health, decides, stores, and tells the agents what to ingest.

One ``tick()`` is a complete, idempotent pass in one direction: read Redis once (``observation``),
judge the servers, then the cameras (pure steps of ``decisions``), then write once (the database
in one transaction, Redis in one pipeline). Between passes the engine keeps in memory what it
would otherwise read again: the configuration (loaded again when its version moves), each
camera's placement, each server's record, the stream reports (read again only from servers whose
stream states changed, and from a few others in turn for their frame rates), and what it last
told each agent. Only the cameras whose next decision is not surely "stay" are decided each pass
(``decisions.settled``), so a pass costs what changed, not the site's size.

Engine workers share the multiserver systems by lease (``leases``); a worker decides only for the
systems it holds and writes placements and states only when they change, so a restarted or new
worker carries on from the database where the last one stopped. Without Redis the engine decides
nothing: silence from an unreachable Redis is no evidence that servers died.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial

import redis
from django.db import DatabaseError, transaction

from cameras.modes import RedundancyMode
from protocol import live
from recording.lease import describe
from recording.models import FRAME_RATE_BACK_FROM, REFUSED, FrameRateDrop, frame_rate_drop
from recording.tasks import wake_agent
from redundancy import config as site_config
from redundancy import fencing, notifications
from redundancy.decisions import (
    PRIORITY_ORDER,
    CameraView,
    Damping,
    ServerRecord,
    ServerView,
    Windows,
    active_server,
    decide,
    ingesting_servers,
    judge_server,
    settled,
    steady,
)
from redundancy.leases import SystemLeases
from redundancy.models import CameraPlacement, Event, EventKind, MailState, Placement, ServerState
from redundancy.observation import ENGINE_WITNESS, Observation, Streams, read_pass, read_reports

log = logging.getLogger(__name__)

OUTAGE_GAP = 3.0  # seconds without a pass, and without any heartbeat, that mean Redis was away
# Seconds a connection streams before its fps counts: the agents measure it over 5 s (recording.ingest.STATS_WINDOW).
FPS_SETTLED_AFTER = 5.0
NO_STREAMS = Streams({}, {})
MOVES = (EventKind.FAILOVER_STARTED, EventKind.FAILBACK_STARTED)  # the events that move a camera to another server
MOVING = (Placement.TO_BACKUP, Placement.TO_PRIMARY)
MOVE_EVENTS = (*MOVES, EventKind.FAILOVER_COMPLETED, EventKind.FAILBACK_COMPLETED)  # one incident from start to end
WARNED = {EventKind.SERVER_DOWN, EventKind.STORAGE_FAILED, EventKind.AGENT_CONFLICT, EventKind.FAILOVER_STARTED,
          EventKind.CAMERA_UNPROTECTED, EventKind.CAMERA_LOST, EventKind.CONNECTION_REFUSED,
          EventKind.FRAME_RATE_DROPPED}  # fmt: skip


def takeover_figures(report: dict) -> str:
    """How the new server connected to the camera, from its stream report: the open, the keyframe asked of the
    camera (ONVIF) and how it answered, the wait for the first keyframe, the first frame."""
    parts = []
    if report.get("open_seconds") is not None:
        parts.append(f"stream opened in {report['open_seconds']:.2f} s")
    if report.get("keyframe_request"):
        parts.append(f"keyframe asked of the camera: {report['keyframe_request']}")
    if report.get("keyframe_wait_seconds") is not None:
        parts.append(f"first keyframe {report['keyframe_wait_seconds']:.2f} s after the open")
    if report.get("first_frame_seconds") is not None:
        parts.append(f"first frame {report['first_frame_seconds']:.2f} s after connecting")
    return f" ({', '.join(parts)})" if parts else ""


def _when(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@dataclass(slots=True)
class Placed:
    """A camera's placement as the engine holds it (stored as its CameraPlacement)."""

    state: str
    since: float
    reason: str = ""
    fail_back: bool = False


@dataclass(slots=True)
class Held:
    """A server's state as the engine holds it (stored as its ServerState)."""

    record: ServerRecord
    draining: bool = False
    storage_error: str = ""
    dirty: bool = False  # changed since it was last stored

    @property
    def healthy_since(self) -> float | None:
        return self.record.healthy_since

    @property
    def failures(self) -> tuple[float, ...]:
        return self.record.failures

    @property
    def status(self) -> str:
        return self.record.status

    @property
    def status_since(self) -> datetime:
        return _when(self.record.status_since)


@dataclass
class TickResult:
    """What a pass did. ``ran``: it decided for the systems held; not ran and not ``abandoned``: it held none (a
    standby worker's pass, complete); ``abandoned``: why it stopped before its end (``redis_unreachable``,
    ``database_error``, ``term_superseded``, ``failed``). ``events``: those it stored (an abandoned pass may have
    stored its events before Redis failed it)."""

    ran: bool
    events: list[Event] = field(default_factory=list)
    desired: dict[str, set[int]] = field(default_factory=dict)
    decided: int = 0  # cameras decided this pass (the others were settled)
    abandoned: str = ""


class Engine:
    def __init__(self, redis_client: redis.Redis | None = None, clock: Callable[[], float] | None = None,
                 wake_agent=wake_agent, wake_mailer=notifications.wake_mailer, worker: str | None = None,
                 publisher=None):  # fmt: skip
        """``clock``: the time decisions are made at; None for Redis's clock, which the heartbeats are stamped
        by (tests give one they move). ``publisher``: where the live status goes (``status.StatusPublisher``)."""
        self.redis = redis_client or live.client()
        self.clock = clock
        self.wake_agent = wake_agent
        self.wake_mailer = wake_mailer
        self.windows = Windows.from_settings()
        self.damping = Damping.from_settings()
        self.leases = SystemLeases(self.redis, worker)
        self.publisher = publisher
        self.cache = site_config.Cache()
        self.config: site_config.SiteConfig | None = None  # the held systems' part
        self.terms: dict[int, int] = {}  # system held → this worker's term (fencing token) for it
        self._writes = 0  # desired sets written by this worker: each write's place in its term (``seq``)
        # camera → the event that began its move, while it moves: every desired word written meanwhile carries it, so
        # an agent that reconciles after a later write still logs the incident's id on its takeover.
        self._incidents: dict[int, int] = {}
        self._rewrite = False  # Redis failed a pass: it may have lost the last writes (a failover), write again
        self._loaded: tuple | None = None  # (config version, terms held) the memory below is of
        self.gone: dict[str, float | None] = {}  # agents whose process ended → their last-seen time then
        self.last_now: float | None = None  # the last pass's time, by its clock
        self._changing = False

    # -- what others tell the engine ---------------------------------------------------------------

    def agent_gone(self, name: str) -> None:
        """The agent's process ended (its watch connection closed and its port refuses): until it is heard again,
        fast mode counts it down at once. Called from the watch's thread; the loop is woken by the caller."""
        self.gone[name] = None  # the next pass notes its time

    def agent_back(self, name: str) -> None:
        self.gone.pop(name, None)

    # -- one pass -----------------------------------------------------------------------------------

    def tick(self) -> TickResult:
        """One pass. Without Redis, or when the database fails it, nothing is decided; a pass that failed after
        it began to change what the engine holds makes the next one load everything again from the database
        (what was stored is the truth: a decision not stored is made again, with its events)."""
        self._changing = False
        self._stored: list[Event] = []
        try:
            return self._tick()
        except fencing.TermSuperseded as exc:
            # Another worker took these systems while this one was away (paused, cut off): what it holds of
            # them is stale. Nothing of this pass is stored for them; they are loaded afresh if held again.
            log.warning("event=tick_abandoned reason=term_superseded systems=%s worker=%s", sorted(exc.systems),
                        self.leases.worker)  # fmt: skip
            self.leases.drop(exc.systems)
            for system in exc.systems:
                self.terms.pop(system, None)
            self._loaded = None
            return TickResult(ran=False, events=self._stored, abandoned="term_superseded")
        except redis.RedisError:
            log.warning("event=tick_abandoned reason=redis_unreachable")
            self._rewrite = True
            reason = "redis_unreachable"
        except DatabaseError as exc:
            log.warning("event=tick_abandoned reason=database_error error=%s", type(exc).__name__)
            reason = "database_error"
        if self._changing:
            self._loaded = None
        return TickResult(ran=False, events=self._stored, abandoned=reason)

    def stop(self) -> None:
        """Give the leases back so that another worker takes the systems at once."""
        self.leases.release()

    def _tick(self) -> TickResult:
        site, reloaded = self.cache.get(self.cache.config.version if self.cache.config else
                                        live.read_config_version(self.redis))  # fmt: skip
        held = self._hold(site.systems())
        if not held:
            self._forget()
            return TickResult(ran=False)
        names = [s.name for s in site.servers.values() if s.system_id in held]
        seen_pass = read_pass(self.redis, names, self.clock() if self.clock else None)
        now = self.clock() if self.clock else seen_pass.redis_now
        site, again = self.cache.get(seen_pass.config_version)
        reloaded = reloaded or again
        if again and site.systems() != set(self.leases.held):
            held = self._hold(site.systems())
        terms = frozenset(self.terms.items())
        if self._loaded != (site.version, terms):
            same_terms = self._loaded is not None and self._loaded[1] == terms
            self._load(site.within(held), now, refresh=same_terms)
            self._loaded = (site.version, terms)
            reloaded = True
            if set(names) != set(self.config.by_name):  # servers just taken on: read them too
                names = list(self.config.by_name)
                seen_pass = replace(read_pass(self.redis, names, None if self.clock is None else now),
                                    previous_pass=seen_pass.previous_pass)  # fmt: skip
        cfg = self.config
        self._last_seen, self.last_now = seen_pass.last_seen, now
        for name, at in list(self.gone.items()):
            if at is None:  # just reported: a heartbeat stamped after this pass is a new agent's
                self.gone[name] = now
            elif seen_pass.last_seen.get(name, 0.0) > at:
                self.gone.pop(name, None)

        self._read_reports(seen_pass, names)
        heard = {name: at for name, at in seen_pass.last_seen.items() if name in cfg.by_name}
        seen = Observation(now, heard, seen_pass.leaving, self.reports,
                           {n: b.get("storage_error") for n, b in seen_pass.heartbeats.items() if b is not None},
                           set(self.gone), self.windows.fast)  # fmt: skip
        witnessed = self._witness_outage(seen, seen_pass.previous_pass, now)
        # While Redis was unreachable nobody's heartbeat got through: that silence is no failure.
        seen = seen.without_outages([*seen_pass.outages, *witnessed])
        self._heard = seen.last_seen  # as judged: the windows' ends the loop waits for are reckoned from these

        self._changing = True  # from here on what is held runs ahead of what is stored, until the pass ends
        events: list[Event] = []
        views: dict[int, ServerView] = {}
        steadiness_changed: set[int] = set()
        for server in cfg.servers.values():
            held_state = self.states[server.pk]
            record = held_state.record
            streams = self.streams.get(server.name) or NO_STREAMS
            view = seen.server_view(server, held_state, streams, self.damping)
            events += self._judge(server, held_state, view, now)
            events += self._storage(server, held_state, seen.storage_errors, now)
            if held_state.record is not record:  # a health streak starts, a hold-down changes: as judged now
                view = seen.server_view(server, held_state, streams, self.damping)
            views[server.pk] = view
            is_steady = steady(view, self.windows)
            if self.steady.get(server.pk) != is_steady:
                self.steady[server.pk] = is_steady
                steadiness_changed.add(server.pk)
        events += self._agent_conflicts(seen_pass.conflicts, now)

        for server_pk in steadiness_changed | {cfg.by_name[n].pk for n in self._states_changed}:
            for camera_pk in self.by_primary.get(server_pk, ()):
                self._settle_check(camera_pk)

        changed: list[int] = []
        load = {server.pk: len(self.desired.get(server.name, ())) for server in cfg.servers.values()}
        camera_views: dict[int, CameraView] = {}
        decided = sorted(self.unsettled, key=self.order.__getitem__)
        for camera_pk in decided:
            camera = self.cameras[camera_pk]
            view = camera_views[camera_pk] = self._camera_view(camera, views, now)
            backup = view.backup
            room = backup is None or backup.max_cameras is None or load[backup.pk] < backup.max_cameras
            decision = decide(view, self.windows, backup_has_room=room)
            if decision.placement != view.placement:
                if decision.placement == Placement.TO_BACKUP and backup is not None:
                    load[backup.pk] += 1
                placed = self.placements[camera_pk]
                placed.state, placed.since, placed.reason = decision.placement, now, decision.reason
                if decision.placement == Placement.ON_PRIMARY:
                    placed.fail_back = False
                changed.append(camera_pk)
                camera_views[camera_pk] = replace(view, placement=decision.placement)
                for kind in decision.events:
                    events.append(self._camera_event(kind, camera, view, decision.reason, now))
                if not decision.events:  # a move's events are logged once stored, with their ids
                    log.info("camera=%s event=moved placement=%s reason=%r", camera.pk, decision.placement,
                             decision.reason)  # fmt: skip
            self._settle_check(camera_pk)

        # Cameras whose streams may have changed state: those of servers whose reports were read again.
        touched = self._cameras_changed | set(changed)
        touched &= self.cameras.keys()
        events += self._stream_events(touched, views, camera_views, now)
        events += self._refused_connections(touched, views, camera_views, now)
        events += self._frame_rate_drops(self._fps_read | self._fps_settling, views, camera_views, now)
        for event in events:  # the outbox: the mail worker sends these, the pass goes on
            if notifications.wants_mail(event, cfg.servers):
                event.mail_state = MailState.PENDING
        lost = self.leases.confirm()  # a long pass, or a pause: is this worker still the one that decides?
        if lost:
            raise fencing.TermSuperseded(lost)
        self._store(changed, events)
        moved = set(changed)
        # The event that moved each camera this pass, in the agents' word: one incident's id in every tier's log.
        self._incidents.update({event.camera_id: event.pk for event in events  # fmt: skip
                                if event.kind in MOVES and event.camera_id in moved and event.pk is not None})
        incidents = self._incidents
        self._log_events(events, moved, incidents)
        self._incidents = {camera: event for camera, event in incidents.items()
                           if camera in self.placements and self.placements[camera].state in MOVING}  # fmt: skip

        desired = self._desired_sets(views, camera_views) if (changed or steadiness_changed or reloaded
                                                              or self._desired_stale) else self.desired  # fmt: skip
        self._desired_stale = False
        with self.redis.pipeline(transaction=False) as pipe:
            told: dict[int, dict[str, set[int]]] = {}  # system → its servers' new desired sets
            for name, cameras in desired.items():
                if cameras != self.desired.get(name) or self._rewrite:
                    told.setdefault(cfg.by_name[name].system_id, {})[name] = cameras
            if told:
                self._writes += 1
            for system, sets in told.items():  # first in the pipeline: their answers are the first results
                live.write_desired_fenced(pipe, system, self.terms[system], sets, self._writes, incidents)
            for server in cfg.servers.values():
                if server.name in seen.leaving and not any(
                    self.placements[c].state == Placement.TO_BACKUP for c in self.by_primary.get(server.pk, ())
                ):
                    live.mark_handed_over(pipe, server.name)
            self._write_memory(pipe)
            written = pipe.execute()[: len(told)]
        refused = {system for system, ok in zip(told, written, strict=True) if not ok}
        if refused:  # a later term wrote them: this worker lost the systems after its database check
            raise fencing.TermSuperseded(refused)
        self._rewrite = False
        self.desired = {name: set(cameras) for name, cameras in desired.items()}
        for sets in told.values():
            for name in sets:
                self.wake_agent(name)
        self._publish(views, camera_views, changed, touched, steadiness_changed, now)
        if events:
            transaction.on_commit(lambda: notifications.push(events))
        if any(event.mail_state == MailState.PENDING for event in events):
            transaction.on_commit(self.wake_mailer)
        return TickResult(ran=True, events=events, desired=self.desired, decided=len(decided))

    def _hold(self, systems: set[int]) -> set[int]:
        """The leases of the systems this worker decides for, each with this worker's term: a lease just taken
        begins a new term (its token one more than any before), a lease lost ends it."""
        held = self.leases.hold(systems)
        for system in set(self.terms) - held | self.leases.taken:
            self.terms.pop(system, None)
        for system in sorted(held - self.terms.keys()):
            self.terms[system] = fencing.begin_term(system, self.leases.worker)
            log.info("system=%s event=term_begun worker=%s term=%d", system, self.leases.worker, self.terms[system])
        return held

    def next_deadline(self, now: float) -> float | None:
        """Seconds from ``now`` (by the pass's clock) until a server heard now would pass a window that changes
        a decision: the fast window of a steady server, or the down window of one not yet down."""
        if self.config is None or not hasattr(self, "_heard"):
            return None
        soonest = None
        for server in self.config.servers.values():
            at = self._heard.get(server.name)
            if at is None:
                continue
            for window in (self.windows.fast, self.down_windows.get(server.pk, self.windows.normal)):
                due = at + window - now
                if due > 0 and (soonest is None or due < soonest):
                    soonest = due
        return soonest

    # -- memory -------------------------------------------------------------------------------------

    def _forget(self) -> None:
        if self.config is not None and self.publisher is not None:
            for system in self.config.systems():
                self.publisher.forget(system)
        self.config, self._loaded = None, None

    def _load(self, cfg: site_config.SiteConfig, now: float, refresh: bool = False) -> None:
        """The held systems' configuration, placements and server states, from the database; what was last
        written to Redis for them (desired sets, stream states, episodes). With ``refresh`` (the same systems,
        a new configuration version) what the engine itself writes stays as it holds it: only the operators'
        drains and fail-backs are read again, and only new cameras' placements; the cameras and servers whose
        configuration changed are decided again and published anew."""
        previous = self.config if refresh else None
        if self.config is not None and self.publisher is not None:
            for system in self.config.systems() - cfg.systems():
                self.publisher.forget(system)
        self.config = cfg
        systems = cfg.systems()
        stored = {s.server_id: s for s in ServerState.objects.filter(server__system__in=systems)}
        missing = [ServerState(server_id=pk, status_since=_when(now)) for pk in cfg.servers if pk not in stored]
        ServerState.objects.bulk_create(missing, ignore_conflicts=True)
        stored.update({s.server_id: s for s in missing})
        states = {
            pk: Held(ServerRecord(s.status, s.status_since.timestamp(),
                                  s.healthy_since.timestamp() if s.healthy_since else None,
                                  tuple(s.failures)), s.draining, s.storage_error)
            for pk, s in stored.items()
        }  # fmt: skip
        # The engine decides for enabled cameras; a disabled one keeps its stored placement untouched.
        self.cameras = {pk: camera for pk, camera in cfg.cameras.items() if camera.enabled}
        if previous is None:
            self.states = states
            wanted = CameraPlacement.objects.filter(camera__primary_server__system__in=systems)
            placements = {}
        else:
            for pk, held in states.items():  # the engine's own record stays; the operator's drain is read
                if pk in self.states:
                    self.states[pk].draining = held.draining
                else:
                    self.states[pk] = held
            placements = self.placements
            asked = CameraPlacement.objects.filter(camera__primary_server__system__in=systems, fail_back_requested=True)
            asked = set(asked.values_list("camera_id", flat=True))
            for pk, placed in placements.items():
                placed.fail_back = pk in asked
            wanted = CameraPlacement.objects.filter(camera__in=[pk for pk in cfg.cameras if pk not in placements])
        placements.update({
            pk: Placed(state, since.timestamp(), reason, fail_back)
            for pk, state, since, reason, fail_back in wanted.values_list(
                "camera_id", "state", "since", "reason", "fail_back_requested")
        })  # fmt: skip
        missing = [pk for pk in self.cameras if pk not in placements]
        CameraPlacement.objects.bulk_create(
            [CameraPlacement(camera_id=pk, state=Placement.ON_PRIMARY, since=_when(now)) for pk in missing],
            ignore_conflicts=True, batch_size=2000,
        )  # fmt: skip
        placements.update({pk: Placed(Placement.ON_PRIMARY, now) for pk in missing})
        self.placements = placements  # a disabled camera's too, as stored (for the status)
        self.own = {pk: 0 for pk in cfg.servers}
        for camera in cfg.cameras.values():
            self.own[camera.primary_id] += 1
        self.by_primary: dict[int, list[int]] = {}
        modes: dict[int, set[str]] = {pk: set() for pk in cfg.servers}
        for camera in self.cameras.values():
            self.by_primary.setdefault(camera.primary_id, []).append(camera.pk)
            modes[camera.primary_id].add(camera.mode)
            if camera.backup_id:
                modes[camera.backup_id].add(camera.mode)
        self.down_windows = {pk: self.windows.for_server(kinds) for pk, kinds in modes.items()}
        # High-priority cameras claim a full backup's last places first.
        self.order = {pk: (PRIORITY_ORDER[c.priority], c.name) for pk, c in self.cameras.items()}
        self._desired_stale = True
        if previous is not None:
            servers_changed = {pk for pk, s in cfg.servers.items() if previous.servers.get(pk) != s}
            again = {pk for pk, camera in cfg.cameras.items() if previous.cameras.get(pk) != camera
                     or camera.primary_id in servers_changed or camera.backup_id in servers_changed}  # fmt: skip
            again |= {pk for pk, placed in placements.items() if placed.fail_back}
            again |= {c for pk, held in self.states.items() if held.draining for c in self.by_primary.get(pk, ())}
            self.unsettled = (self.unsettled | again) & self.cameras.keys()
            self._rows_due |= again | (previous.cameras.keys() - cfg.cameras.keys())
            log.info("event=engine_refreshed cameras_changed=%d", len(again))
            return
        names = list(cfg.by_name)
        stored_desired = live.read_all_desired(self.redis, names)
        self.desired = {name: cameras for name, cameras in stored_desired.items() if cameras is not None}
        keys = [str(pk) for pk in self.cameras]
        seen = self.redis.hmget(live.key("stream-states"), keys) if keys else []
        self.stream_seen = {int(k): v.decode() for k, v in zip(keys, seen, strict=True) if v}
        self.episodes = {name: {m.decode() for m in self.redis.smembers(live.key(name))}
                         for name in ("refused", "frame-rate-dropped")}  # fmt: skip
        self._memory_writes: list[tuple] = []
        self.reports: dict[str, dict[int, dict]] = {}
        self.streams: dict[str, Streams] = {}
        self.fps: dict[str, dict] = {}  # the frame rates each heartbeat last carried
        self.digests: dict[str, str | None] = {}
        self.steady: dict[int, bool] = {}
        self.unsettled = set(self.cameras)  # decided once; those that settle drop out
        self._states_changed: set[str] = set()
        self._fps_read: set[int] = set()
        self._fps_settling: set[int] = set()
        self._cameras_changed: set[int] = set()
        self._rows_due: set[int] = set()  # camera rows to publish at the next pass whatever else happens
        self._full_publish = True
        log.info("event=engine_loaded systems=%s servers=%d cameras=%d", sorted(self.leases.held),
                 len(cfg.servers), len(self.cameras))  # fmt: skip

    def _read_reports(self, seen_pass, names) -> None:
        """Stream reports again from the servers whose digest of them moved (or that send none); the frame
        rates the heartbeats carry into the reports held. ``_states_changed``: the servers whose stream states
        changed; ``_cameras_changed``: their cameras; ``_fps_read``: the cameras whose frame rate was read."""
        again, self._states_changed, self._cameras_changed, self._fps_read = [], set(), set(), set()
        for name in names:
            beat = seen_pass.heartbeats.get(name)
            digest = (beat or {}).get("streams")
            if digest is None or digest != self.digests.get(name) or name not in self.reports:
                again.append(name)
                self.digests[name] = digest
        for name, reports in read_reports(self.redis, again).items():
            before = self.reports.get(name) or {}
            states = {camera: (r.get("state"), r.get("since")) for camera, r in reports.items()}
            if name not in self.reports or states != {c: (r.get("state"), r.get("since")) for c, r in before.items()}:
                self._states_changed.add(name)
                self._cameras_changed.update(reports.keys() | before.keys())  # a camera it stopped reading too
            self.reports[name] = reports
            self.streams[name] = Streams.of(reports)
            self._fps_read.update(reports)
            self.fps.pop(name, None)
        for name in names:
            fps = (seen_pass.heartbeats.get(name) or {}).get("fps")
            if not fps or fps == self.fps.get(name):
                continue
            self.fps[name] = fps
            reports = self.reports.get(name, {})
            for camera, rate in fps.items():
                report = reports.get(int(camera))
                if report is not None and report.get("fps") != rate:
                    report["fps"] = rate
                    self._fps_read.add(int(camera))

    def _settle_check(self, camera_pk: int) -> None:
        camera = self.cameras[camera_pk]
        primary = self.config.servers[camera.primary_id]
        stream = self.reports.get(primary.name, {}).get(camera_pk, {}).get("state")
        if settled(self.placements[camera_pk].state, camera.mode, self.steady.get(camera.primary_id, False), stream):
            self.unsettled.discard(camera_pk)
        else:
            self.unsettled.add(camera_pk)

    def _camera_view(self, camera, views, now) -> CameraView:
        placed = self.placements.get(camera.pk) or Placed(Placement.ON_PRIMARY, None)
        return CameraView(
            pk=camera.pk, name=camera.name, mode=camera.mode, priority=camera.priority,
            primary=views[camera.primary_id], backup=views.get(camera.backup_id) if camera.backup_id else None,
            placement=placed.state, in_placement_for=now - placed.since if placed.since is not None else 0.0,
            fail_back_now=placed.fail_back,
        )  # fmt: skip

    def _desired_sets(self, views, camera_views) -> dict[str, set[int]]:
        """Per server, the cameras it should ingest: a settled camera its primary (and in constant mode its
        backup, ``ingesting_servers`` would say the same), the others as ``ingesting_servers`` says."""
        cfg = self.config
        desired = {server.pk: set() for server in cfg.servers.values()}
        for camera in self.cameras.values():
            if camera.pk in self.unsettled:
                view = camera_views.get(camera.pk) or self._camera_view(camera, views, 0.0)
                for server_pk in ingesting_servers(view):
                    desired[server_pk].add(camera.pk)
            else:
                desired[camera.primary_id].add(camera.pk)
                if camera.mode == RedundancyMode.CONSTANT and camera.backup_id:
                    desired[camera.backup_id].add(camera.pk)
        return {cfg.servers[pk].name: cameras for pk, cameras in desired.items()}

    def _store(self, changed: list[int], events: list[Event]) -> None:
        dirty = [pk for pk, held in self.states.items() if held.dirty]
        if not (changed or dirty or events):
            return
        with transaction.atomic():
            fencing.check_terms(dict(self.terms))
            # One update per kind of move (a failover's cameras share their state, time and reason), and only
            # the engine's own fields: an operator's drain or fail-back made meanwhile must survive.
            moves: dict[tuple, list[int]] = {}
            for pk in changed:
                placed = self.placements[pk]
                moves.setdefault((placed.state, placed.since, placed.reason[:200]), []).append(pk)
            for (state, since, reason), pks in moves.items():
                for at in range(0, len(pks), 500):
                    CameraPlacement.objects.filter(pk__in=pks[at : at + 500]).update(state=state, since=_when(since),
                                                                                     reason=reason)  # fmt: skip
            back = [pk for pk in changed if self.placements[pk].state == Placement.ON_PRIMARY]
            if back:
                CameraPlacement.objects.filter(pk__in=back, fail_back_requested=True).update(fail_back_requested=False)
            for pk in dirty:
                held = self.states[pk]
                record = held.record
                ServerState.objects.filter(server_id=pk).update(
                    status=record.status, status_since=_when(record.status_since),
                    healthy_since=_when(record.healthy_since) if record.healthy_since is not None else None,
                    failures=list(record.failures),
                    storage_error=held.storage_error,
                )  # fmt: skip
                held.dirty = False
            Event.objects.bulk_create(events)
        self._stored = events

    def _log_events(self, events: list[Event], moved: set[int], incidents: dict[int, int]) -> None:
        """One line per stored event: its id (``event_id``) and its incident's (``incident``), which the agents and
        the mail worker repeat. A camera's move is one incident from its start to its end, named by the event that
        began it (``incidents``); its start names the server event of the same pass that caused it (``cause``);
        any other event is an incident of its own."""
        cfg = self.config
        causes = {event.server_id: event.pk for event in events if event.camera_id is None}
        for event in events:
            level = logging.WARNING if event.kind in WARNED else logging.INFO
            if event.camera_id is None:
                server = cfg.servers.get(event.server_id)
                log.log(level, "server=%s event=%s incident=%s event_id=%s message=%r",
                        server.name if server else event.server_id, event.kind, event.pk, event.pk,
                        event.message)  # fmt: skip
                continue
            camera = cfg.cameras.get(event.camera_id)
            primary = cfg.servers[camera.primary_id].name if camera else "-"
            backup = cfg.servers[camera.backup_id].name if camera and camera.backup_id in cfg.servers else "-"
            incident = incidents.get(event.camera_id, event.pk) if event.kind in MOVE_EVENTS else event.pk
            line = "camera=%s event=%s incident=%s event_id=%s primary=%s backup=%s"
            args = [event.camera_id, event.kind, incident, event.pk, primary, backup]
            cause = causes.get(camera.primary_id if camera else None) if event.kind in MOVES else None
            if cause is not None:
                line, args = line + " cause=%s", [*args, cause]
            if event.camera_id in moved:
                placed = self.placements[event.camera_id]
                line, args = line + " placement=%s reason=%r", [*args, placed.state, placed.reason]
            else:
                line, args = line + " message=%r", [*args, event.message]
            log.log(level, line, *args)

    def _write_memory(self, pipe) -> None:
        for operation, *args in self._memory_writes:
            getattr(pipe, operation)(*args)
        self._memory_writes = []

    def _publish(self, views, camera_views, changed, touched, steadiness_changed, now) -> None:
        """The live status of the held systems: every server's row (the publisher sends only what differs) and
        the rows of the cameras that may have changed; all of them after a load."""
        if self.publisher is None:
            return
        from redundancy import status

        cfg = self.config
        full, self._full_publish = self._full_publish, False
        by_system: dict[int, tuple[dict, dict]] = {s: ({}, {}) for s in cfg.systems()}
        away: dict[int, int] = {}
        for pk, camera in cfg.cameras.items():
            placed = self.placements.get(pk)
            if placed is not None and placed.state in (Placement.TO_BACKUP, Placement.ON_BACKUP):
                away[camera.primary_id] = away.get(camera.primary_id, 0) + 1
        for server in cfg.servers.values():
            by_system[server.system_id][0][server.pk] = status.server_row(
                server, self.states[server.pk], views[server.pk], self.own[server.pk], away.get(server.pk, 0),
                self._last_seen.get(server.name), self.windows,
            )  # fmt: skip
        removed = self._rows_due - cfg.cameras.keys()
        if full:
            rows = cfg.cameras.keys()
        else:
            rows = set(changed) | touched | self._fps_read | self._rows_due
            if steadiness_changed:  # leaving or draining changes who ingests their cameras
                rows |= {pk for pk, c in cfg.cameras.items()
                         if c.primary_id in steadiness_changed or c.backup_id in steadiness_changed}  # fmt: skip
            rows &= cfg.cameras.keys()
        for pk in rows:
            camera = cfg.cameras[pk]
            view = camera_views.get(pk) or self._camera_view(camera, views, now)
            by_system[camera.system_id][1][pk] = status.camera_row(camera, self.placements.get(pk), view, self.windows,
                                                                  self.reports, cfg)  # fmt: skip
        self._rows_due = set()
        for system, (servers, cameras) in by_system.items():
            self.publisher.publish(system, now, servers, cameras, full=full, removed_cameras=removed)

    def _witness_outage(self, seen, previous_pass: float | None, now: float) -> list[tuple[float, float]]:
        """After a gap in its passes in which no server was heard at all, the engine reports the
        gap as an outage of Redis itself: agents report theirs only once they reach Redis again."""
        if previous_pass is None or now - previous_pass <= OUTAGE_GAP or not seen.last_seen:
            return []
        last_heard = max(seen.last_seen.values())
        if now - last_heard > OUTAGE_GAP and last_heard <= previous_pass + 1.0:
            live.report_outage(self.redis, ENGINE_WITNESS, last_heard, now)
            log.warning("event=redis_outage_seen silent_for=%.1fs", now - last_heard)
            return [(last_heard, now)]
        return []

    # -- servers ------------------------------------------------------------------------------------

    def _judge(self, server, held: Held, view: ServerView, now) -> list[Event]:
        judgement = judge_server(held.record, view, self.down_windows.get(server.pk, self.windows.normal),
                                 self.windows, self.damping, now)  # fmt: skip
        if judgement.record != held.record:
            held.record = judgement.record
            held.dirty = True
        events = []
        for kind in judgement.events:
            if kind == "server_down":
                text = f"{server.name} stopped after a planned shutdown" if judgement.planned else (
                    f"{server.name} is down: no heartbeat for {view.heartbeat_age:.1f} s" if not view.gone_under
                    or view.heartbeat_age > self.windows.fast else
                    f"{server.name} is down: its agent's process ended (last heartbeat {view.heartbeat_age:.1f} s "
                    "ago)"
                )  # fmt: skip
                events.append(self._server_event(EventKind.SERVER_DOWN, server, text, now))
            elif kind == "server_leaving":
                events.append(self._server_event(EventKind.SERVER_LEAVING, server,
                                                 f"{server.name} announced a shutdown", now))  # fmt: skip
            elif kind == "server_up":
                events.append(self._server_event(EventKind.SERVER_UP, server, f"{server.name} is up", now))
            elif kind == "flap_damped":
                record = judgement.record
                events.append(self._server_event(
                    EventKind.FLAP_DAMPED, server,
                    f"{server.name} failed {len(record.failures)} times within the hour: its cameras return only "
                    f"after {self.damping.hold_down_after(record.failures, now):.0f} s of good health", now,
                ))  # fmt: skip
        return events

    def _storage(self, server, held: Held, storage_errors, now) -> list[Event]:
        """A server whose agent cannot write its recordings (disk full, path gone): an event each way.
        Its cameras are reported lost by the agent, so fast mode moves them to their backups."""
        if server.name not in storage_errors:
            return []  # not heard this pass: nothing new about its storage
        error = (storage_errors[server.name] or "")[:200]
        if error == held.storage_error:
            return []
        held.storage_error = error
        held.dirty = True
        if error:
            text = f"{server.name} cannot write its recordings: {error}"
            return [self._server_event(EventKind.STORAGE_FAILED, server, text, now)]
        text = f"{server.name} writes its recordings again"
        return [self._server_event(EventKind.STORAGE_RESTORED, server, text, now)]

    def _agent_conflicts(self, reports, now) -> list[Event]:
        """Two agents claimed one video server's name (a second start, a cloned host): each report once."""
        events = []
        for report in reports:
            server = self.config.by_name.get(report.get("server"))
            if server is None:
                continue
            holder, agent = describe(report.get("holder", {})), describe(report.get("agent", {}))
            text = (f"A second agent for {server.name} ({agent}) was refused: {holder} runs it" if report.get("refused")
                    else f"Two agents report for {server.name}: {holder} holds it, {agent} lost it")  # fmt: skip
            events.append(self._server_event(EventKind.AGENT_CONFLICT, server, text, now))
        return events

    # -- cameras' streams ----------------------------------------------------------------------------

    def _view_of(self, camera_pk, views, camera_views, now) -> CameraView:
        return camera_views.get(camera_pk) or self._camera_view(self.cameras[camera_pk], views, now)

    def _stream_events(self, cameras, views, camera_views, now) -> list[Event]:
        """Lost and restored streams on the server that records each camera now."""
        events, changes = [], {}
        for camera_pk in cameras:
            view = self._view_of(camera_pk, views, camera_views, now)
            active = active_server(view)
            if active is None or not active.alive(self.windows.for_mode(view.mode)):
                continue
            state = active.streams.get(camera_pk)
            if state not in ("streaming", "lost"):
                continue
            seen, old = f"{active.pk}:{state}", self.stream_seen.get(camera_pk)
            if seen == old:
                continue
            self.stream_seen[camera_pk] = changes[str(camera_pk)] = seen
            # Only a change seen on the same server counts: a move to another server is its own event.
            if old and old.split(":")[0] == str(active.pk):
                lost = state == "lost"
                camera = self.cameras[camera_pk]
                events.append(self._event(
                    EventKind.CAMERA_LOST if lost else EventKind.CAMERA_RESTORED, now, camera=camera,
                    server_id=active.pk, mode=view.mode,
                    message=f"{active.name} {'lost' if lost else 'has again'} the stream of {camera.name}",
                ))  # fmt: skip
        if changes:
            self._memory_writes.append(("hset", live.key("stream-states"), None, None, changes))
        return events

    def _episodes(self, name: str, holding: dict[str, Callable[[], Event]], over: set[str]) -> list[Event]:
        """One event per episode of a condition, whose members are kept between passes (in memory and in the
        Redis set ``name``). ``holding`` maps each member whose condition holds now to the maker of the event its
        start is; ``over`` are those whose condition has ended. A member in neither is left as it is."""
        known = self.episodes[name]
        started = [member for member in holding if member not in known]
        ended = [member for member in over if member in known]
        if started:
            known.update(started)
            self._memory_writes.append(("sadd", live.key(name), *started))
        if ended:
            known.difference_update(ended)
            self._memory_writes.append(("srem", live.key(name), *ended))
        return [holding[member]() for member in started]

    def _refused_connections(self, cameras, views, camera_views, now) -> list[Event]:
        """A camera that turns a server's connection away (most often: no more RTSP sessions at once, as the
        second connection of constant mode asks) is an event once, until that server reads it again."""
        holding, over = {}, set()
        for camera_pk in cameras:
            view = self._view_of(camera_pk, views, camera_views, now)
            for server in (view.primary, view.backup):
                if server is None:
                    continue
                report = self.reports.get(server.name, {}).get(camera_pk, {})
                member = f"{camera_pk}:{server.pk}"
                if report.get("state") == "lost" and str(report.get("reason", "")).startswith(REFUSED):
                    holding[member] = partial(self._refusal_event, self.cameras[camera_pk], view, server,
                                              report["reason"], now)  # fmt: skip
                elif report.get("state") in ("streaming", None):  # reads it, or no longer tries
                    over.add(member)
        return self._episodes("refused", holding, over)

    def _refusal_event(self, camera, view, server, reason, now) -> Event:
        role = "backup" if server is view.backup else "primary"
        text = f"{camera.name} refuses the connection of its {role} {server.name}: {reason.removeprefix(REFUSED)}"
        if view.mode == RedundancyMode.CONSTANT and server is view.backup:
            text += "; constant redundancy needs a second session"
        return self._event(EventKind.CONNECTION_REFUSED, now, camera=camera, server_id=server.pk, mode=view.mode,
                           message=text[:500])  # fmt: skip

    def _frame_rate_drops(self, cameras, views, camera_views, now) -> list[Event]:
        """A camera whose frame rate drops while its primary and its backup both read it (some cameras slow
        down for each extra viewer; constant mode keeps two) is an event once per episode. The episode ends
        when both measure at least FRAME_RATE_BACK_FROM of its fps again, or one of them no longer reads it.
        Judged for the cameras whose frame rates were read this pass, and again each pass for those read by a
        server that has not streamed them long enough to have measured them (``_fps_settling``)."""
        holding, over, servers = {}, set(), self.config.servers
        self._fps_settling = set()
        for camera_pk in cameras:
            camera = self.cameras.get(camera_pk)
            if camera is None or camera.backup_id is None:
                continue
            pair = (camera.primary_id, camera.backup_id)
            reading = [self.reports.get(servers[pk].name, {}).get(camera_pk) for pk in pair]
            if str(camera_pk) not in self.episodes["frame-rate-dropped"] and not all(reading):
                continue  # one server reads it: no drop can start
            view = self._view_of(camera_pk, views, camera_views, now)
            measured = self._settled_fps(camera_pk, (view.primary, view.backup), now)
            if all(reading) and len(measured) < 2:
                self._fps_settling.add(camera_pk)
            if drop := frame_rate_drop(camera, measured):
                holding[str(camera_pk)] = partial(self._frame_rate_event, camera, view, drop, now)
            elif frame_rate_drop(camera, measured, below=FRAME_RATE_BACK_FROM) is None:
                over.add(str(camera_pk))
        return self._episodes("frame-rate-dropped", holding, over)

    def _settled_fps(self, camera_pk, servers, now) -> list[tuple[str, float]]:
        """(server name, fps) of each of ``servers`` that has streamed the camera long enough to have measured it."""
        measured = []
        for server in servers:
            report = self.reports.get(server.name, {}).get(camera_pk, {}) if server else {}
            if report.get("state") == "streaming" and now - report.get("since", now) >= FPS_SETTLED_AFTER:
                measured.append((server.name, float(report.get("fps") or 0)))
        return measured

    def _frame_rate_event(self, camera, view, drop: FrameRateDrop, now) -> Event:
        return self._event(EventKind.FRAME_RATE_DROPPED, now, camera=camera, server_id=view.backup.pk,
                           mode=view.mode, message=drop.warning()[:500])  # fmt: skip

    # -- events -------------------------------------------------------------------------------------

    def _event(self, kind, now, camera=None, server=None, **fields) -> Event:
        event = Event(at=_when(now), kind=kind, camera_id=camera.pk if camera else None,
                      server_id=fields.pop("server_id", server.pk if server else None), **fields)  # fmt: skip
        event.system_id = (server or camera).system_id if (server or camera) else None
        return event

    def _server_event(self, kind, server, message, now) -> Event:
        return self._event(kind, now, server=server, message=message)

    def _camera_event(self, kind, camera, view: CameraView, reason, now) -> Event:
        primary, backup = view.primary, view.backup
        backup_name = backup.name if backup else "no backup"
        texts = {
            "failover_started": (
                f"{camera.name} moves from {primary.name} to {backup_name}: {reason}",
                primary,
                backup,
            ),  # fmt: skip
            "failover_completed": (f"{camera.name} records on {backup_name}", primary, backup),
            "failback_started": (f"{camera.name} returns from {backup_name} to {primary.name}", backup, primary),
            "failback_completed": (f"{camera.name} records on {primary.name} again", backup, primary),
            "camera_unprotected": (f"{camera.name} is recorded by nobody: {reason}", primary, None),
            "camera_restored": (f"{camera.name}: {reason}", None, primary),
        }
        text, source, target = texts[kind]
        if kind == "failover_started" and primary.heartbeat_age is not None and reason.endswith("is down"):
            text += f" (last heard {primary.heartbeat_age:.1f} s ago)"
        if kind in ("failover_completed", "failback_completed") and target is not None:
            text += takeover_figures(self.reports.get(target.name, {}).get(camera.pk, {}))
        source_pk, target_pk = (source.pk if source else None), (target.pk if target else None)
        return self._event(kind, now, camera=camera, mode=view.mode, message=text[:500], server_id=source_pk,
                           to_server_id=target_pk)  # fmt: skip
