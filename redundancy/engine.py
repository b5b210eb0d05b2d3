"""The redundancy engine: reads health, decides, stores, and tells the agents what to ingest.

One ``tick()`` is a complete, idempotent pass. A Redis lock keeps overlapping ticks (two
beats, a slow tick) from deciding twice; stored placements make a restarted engine carry on
where the last one stopped. Without Redis the engine decides nothing: silence from an
unreachable Redis is no evidence that servers died.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial

import redis
from django.conf import settings
from django.db import transaction

from cameras.models import Camera
from cameras.modes import RedundancyMode
from recording import live
from recording.lease import describe
from recording.models import FRAME_RATE_BACK_FROM, REFUSED, FrameRateDrop, frame_rate_drop
from recording.tasks import notify
from redundancy import notifications
from redundancy.decisions import (
    PRIORITY_ORDER,
    CameraView,
    ServerView,
    Windows,
    active_server,
    decide,
    hold_down_for,
    ingesting_servers,
    server_status,
)
from redundancy.models import CameraPlacement, Event, EventKind, MailState, Placement, ServerState, ServerStatus
from redundancy.observation import observe
from servers.models import Server

log = logging.getLogger(__name__)

LOCK_KEY = "engine-lock"
ENGINE_WITNESS = "engine"  # the engine's own report of an outage, beside the agents'
OUTAGE_GAP = 3.0  # seconds without a pass, and without any heartbeat, that mean Redis was away
FAILURE_MEMORY = 3600.0  # seconds of failures that count towards flap damping
# Seconds a connection streams before its fps counts: the agents measure it over 5 s (recording.ingest.STATS_WINDOW).
FPS_SETTLED_AFTER = 5.0


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


@dataclass
class TickResult:
    ran: bool
    events: list[Event] = field(default_factory=list)
    desired: dict[str, set[int]] = field(default_factory=dict)


class Engine:
    def __init__(self, redis_client: redis.Redis | None = None, clock=time.time, notify_agent=notify,
                 wake_mailer=notifications.wake_mailer):  # fmt: skip
        self.redis = redis_client or live.client()
        self.clock = clock
        self.notify_agent = notify_agent
        self.wake_mailer = wake_mailer
        self.windows = Windows.from_settings()
        self.base_hold_down = settings.ENGINE_HOLD_DOWN_SECONDS
        self.longest_hold_down = settings.ENGINE_LONGEST_HOLD_DOWN_SECONDS
        self._health: dict[str, dict[int, dict]] = {}

    def tick(self) -> TickResult:
        token = str(self.clock())
        try:
            if not self.redis.set(live.key(LOCK_KEY), token, nx=True, px=10_000):
                return TickResult(ran=False)
        except redis.RedisError:
            log.warning("event=tick_skipped reason=redis_unreachable")
            return TickResult(ran=False)
        try:
            return self._tick()
        except redis.RedisError:
            log.warning("event=tick_abandoned reason=redis_unreachable")
            return TickResult(ran=False)
        finally:
            try:
                if self.redis.get(live.key(LOCK_KEY)) == token.encode():
                    self.redis.delete(live.key(LOCK_KEY))
            except redis.RedisError:
                pass

    # -- one pass ---------------------------------------------------------------------------

    def _tick(self) -> TickResult:
        now = self.clock()
        servers = list(Server.objects.select_related("redundancy", "system"))
        names = [s.name for s in servers]
        # After a Redis outage (or with no engine running) the servers' silence meant nothing:
        # their heartbeats are counted from when the engine could see again.
        seen = observe(self.redis, names, now)
        self._witness_outage(seen, live.mark_engine_pass(self.redis, now), now)
        # While Redis was unreachable nobody's heartbeat got through: that silence is no failure.
        seen = seen.without_outages(live.read_outages(self.redis, [*names, ENGINE_WITNESS]))
        self._health = seen.health  # the agents' stream reports: how fast a takeover connected
        previous_desired = live.read_all_desired(self.redis, names)

        cameras = list(Camera.objects.with_servers().filter(enabled=True))
        modes = {camera.pk: camera.redundancy_mode for camera in cameras}
        modes_of_server: dict[int, set[str]] = {server.pk: set() for server in servers}
        for camera in cameras:
            modes_of_server[camera.primary_server_id].add(modes[camera.pk])
            if camera.backup_server_id:
                modes_of_server[camera.backup_server_id].add(modes[camera.pk])

        self._dirty: set[ServerState] = set()
        states = self._server_states(servers, now)
        placements = self._placements(cameras, now)
        events: list[Event] = []
        views: dict[int, ServerView] = {}
        for server in servers:
            state = states[server.pk]
            down_window = self.windows.for_server(modes_of_server[server.pk])
            age, leaving = seen.heartbeat_age(server.name), server.name in seen.leaving
            events += self._server_status(server, state, age, leaving, down_window, now)
            events += self._storage(server, state, seen.storage_errors, now)
            views[server.pk] = seen.server_view(server, state)
        events += self._agent_conflicts(servers, now)

        camera_views = {}
        load = {server.pk: 0 for server in servers}
        for camera in cameras:
            placement = placements[camera.pk]
            camera_views[camera.pk] = CameraView(
                pk=camera.pk, name=camera.name, mode=modes[camera.pk], priority=camera.failover_priority,
                primary=views[camera.primary_server_id],
                backup=views.get(camera.backup_server_id) if camera.backup_server_id else None,
                placement=placement.state, in_placement_for=now - placement.since.timestamp(),
                fail_back_now=placement.fail_back_requested,
            )  # fmt: skip
            for server_pk in ingesting_servers(camera_views[camera.pk], self.windows):
                load[server_pk] += 1

        changed = []
        # High-priority cameras claim a full backup's last places first.
        for camera in sorted(cameras, key=lambda c: (PRIORITY_ORDER[c.failover_priority], c.name)):
            view = camera_views[camera.pk]
            backup = view.backup
            room = backup is None or backup.max_cameras is None or load[backup.pk] < backup.max_cameras
            decision = decide(view, self.windows, backup_has_room=room)
            if decision.placement == view.placement:
                continue
            if decision.placement == Placement.TO_BACKUP and backup is not None:
                load[backup.pk] += 1
            placement = placements[camera.pk]
            placement.state, placement.since, placement.reason = decision.placement, _when(now), decision.reason
            changed.append(placement)
            camera_views[camera.pk] = replace(view, placement=decision.placement)
            for kind in decision.events:
                events.append(self._camera_event(kind, camera, view, decision.reason, now))
            log.info("camera=%s event=%s placement=%s reason=%r", camera.pk, ",".join(decision.events) or "moved",
                     decision.placement, decision.reason)  # fmt: skip
        events += self._stream_events(cameras, camera_views, now)
        events += self._refused_connections(cameras, camera_views, now)
        events += self._frame_rate_drops(cameras, camera_views, now)
        by_pk = {server.pk: server for server in servers}
        for event in events:  # the outbox: the mail worker sends these, the pass goes on
            if notifications.wants_mail(event, by_pk):
                event.mail_state = MailState.PENDING

        with transaction.atomic():
            # Only the engine's own fields: an operator's drain or fail-back made meanwhile must survive.
            CameraPlacement.objects.bulk_update(changed, ["state", "since", "reason"])
            CameraPlacement.objects.filter(
                pk__in=[p.pk for p in changed if p.state == Placement.ON_PRIMARY], fail_back_requested=True
            ).update(fail_back_requested=False)
            for state in self._dirty:
                state.save(update_fields=["status", "status_since", "healthy_since", "failures", "hold_down_seconds",
                                          "storage_error"])  # fmt: skip
            Event.objects.bulk_create(events)

        desired = self._desired_sets(servers, cameras, camera_views)
        for server in servers:
            if desired[server.name] != previous_desired.get(server.name):
                live.write_desired(self.redis, server.name, desired[server.name])
                self.notify_agent(server.name)
        for server in servers:
            if server.name in seen.leaving and not any(
                camera_views[c.pk].placement == Placement.TO_BACKUP for c in cameras if c.primary_server_id == server.pk
            ):
                live.mark_handed_over(self.redis, server.name)
        live.mark_engine_ticked(self.redis)
        if events:
            transaction.on_commit(lambda: notifications.push(events))
        if any(event.mail_state == MailState.PENDING for event in events):
            transaction.on_commit(self.wake_mailer)
        return TickResult(ran=True, events=events, desired=desired)

    def _witness_outage(self, seen, previous_pass: float | None, now: float) -> None:
        """After a gap in its passes in which no server was heard at all, the engine reports the
        gap as an outage of Redis itself: agents report theirs only once they reach Redis again."""
        if previous_pass is None or now - previous_pass <= OUTAGE_GAP or not seen.last_seen:
            return
        last_heard = max(seen.last_seen.values())
        if now - last_heard > OUTAGE_GAP and last_heard <= previous_pass + 1.0:
            live.report_outage(self.redis, ENGINE_WITNESS, last_heard, now)
            log.warning("event=redis_outage_seen silent_for=%.1fs", now - last_heard)

    # -- servers ----------------------------------------------------------------------------

    def _server_states(self, servers, now) -> dict[int, ServerState]:
        states = {state.pk: state for state in ServerState.objects.filter(server__in=servers)}
        missing = [ServerState(server=s, status_since=_when(now)) for s in servers if s.pk not in states]
        ServerState.objects.bulk_create(missing, ignore_conflicts=True)
        states.update({state.server_id: state for state in missing})
        return states

    def _server_status(self, server, state, age, leaving, down_window, now) -> list[Event]:
        status = server_status(age, leaving, state.draining, down_window, self.windows)
        events = []
        recent = [t for t in state.failures if now - t < FAILURE_MEMORY]
        if recent != state.failures:  # old failures no longer lengthen the hold-down
            state.failures = recent
            state.hold_down_seconds = hold_down_for(len(recent), self.base_hold_down, self.longest_hold_down)
            self._dirty.add(state)
        healthy = status in (ServerStatus.UP, ServerStatus.DRAINING)
        if healthy and state.healthy_since is None:
            state.healthy_since = _when(now)
            self._dirty.add(state)
        elif not healthy and state.healthy_since is not None:
            state.healthy_since = None
            self._dirty.add(state)
        if status == state.status:
            return events
        previous = state.status
        state.status, state.status_since = status, _when(now)
        self._dirty.add(state)
        if status == ServerStatus.DOWN:
            planned = previous == ServerStatus.LEAVING
            text = f"{server.name} stopped after a planned shutdown" if planned else (
                f"{server.name} is down: no heartbeat for {age:.1f} s"
            )  # fmt: skip
            events.append(self._server_event(EventKind.SERVER_DOWN, server, text, now))
            if not planned:
                events += self._count_failure(server, state, now)
        elif status == ServerStatus.LEAVING:
            events.append(self._server_event(EventKind.SERVER_LEAVING, server,
                                             f"{server.name} announced a shutdown", now))  # fmt: skip
        elif status == ServerStatus.UP and previous in (ServerStatus.DOWN, ServerStatus.UNKNOWN):
            events.append(self._server_event(EventKind.SERVER_UP, server, f"{server.name} is up", now))
        return events

    def _count_failure(self, server, state, now) -> list[Event]:
        state.failures = [t for t in state.failures if now - t < FAILURE_MEMORY] + [now]
        before = state.hold_down_seconds
        state.hold_down_seconds = hold_down_for(len(state.failures), self.base_hold_down, self.longest_hold_down)
        if len(state.failures) > 1 and state.hold_down_seconds > before:
            return [self._server_event(
                EventKind.FLAP_DAMPED, server,
                f"{server.name} failed {len(state.failures)} times within the hour: its cameras return only "
                f"after {state.hold_down_seconds:.0f} s of good health", now,
            )]  # fmt: skip
        return []

    # -- cameras ----------------------------------------------------------------------------

    def _placements(self, cameras, now) -> dict[int, CameraPlacement]:
        placements = {p.pk: p for p in CameraPlacement.objects.filter(camera__in=cameras)}
        missing = [CameraPlacement(camera=c, state=Placement.ON_PRIMARY, since=_when(now))
                   for c in cameras if c.pk not in placements]  # fmt: skip
        CameraPlacement.objects.bulk_create(missing, ignore_conflicts=True)
        placements.update({p.camera_id: p for p in missing})
        return placements

    def _stream_events(self, cameras, views, now) -> list[Event]:
        """Lost and restored streams on the server that records each camera now."""
        watched = []
        for camera in cameras:
            view = views[camera.pk]
            active = active_server(view)
            if active is not None and active.alive(self.windows.for_mode(view.mode)):
                state = active.streams.get(camera.pk)
                if state in ("streaming", "lost"):
                    watched.append((camera, view, active, f"{active.pk}:{state}"))
        if not watched:
            return []
        keys = [live.key("stream-state", camera.pk) for camera, *_ in watched]
        before = self.redis.mget(keys)
        self.redis.mset({key: seen for key, (*_, seen) in zip(keys, watched, strict=True)})
        events = []
        for (camera, view, active, seen), old in zip(watched, before, strict=True):
            old = old.decode() if old else None
            # Only a change seen on the same server counts: a move to another server is its own event.
            if old and old != seen and old.split(":")[0] == str(active.pk):
                lost = seen.endswith(":lost")
                events.append(Event(
                    at=_when(now), kind=EventKind.CAMERA_LOST if lost else EventKind.CAMERA_RESTORED,
                    camera=camera, server_id=active.pk, mode=view.mode,
                    message=f"{active.name} {'lost' if lost else 'has again'} the stream of {camera.name}",
                ))  # fmt: skip
        return events

    def _episodes(self, name: str, holding: dict[str, Callable[[], Event]], over: set[str]) -> list[Event]:
        """One event per episode of a condition, whose members are kept in the Redis set ``name`` between passes.
        ``holding`` maps each member whose condition holds now to the maker of the event its start is; ``over``
        are those whose condition has ended. A member in neither is left as it is (not known either way yet)."""
        known = {member.decode() for member in self.redis.smembers(live.key(name))}
        started = [member for member in holding if member not in known]
        ended = [member for member in over if member in known]
        if started:
            self.redis.sadd(live.key(name), *started)
        if ended:
            self.redis.srem(live.key(name), *ended)
        return [holding[member]() for member in started]

    def _refused_connections(self, cameras, views, now) -> list[Event]:
        """A camera that turns a server's connection away (most often: no more RTSP sessions at once, as the
        second connection of constant mode asks) is an event once, until that server reads it again."""
        holding, over = {}, set()
        for camera in cameras:
            view = views[camera.pk]
            for server in (view.primary, view.backup):
                if server is None:
                    continue
                report = self._health.get(server.name, {}).get(camera.pk, {})
                member = f"{camera.pk}:{server.pk}"
                if report.get("state") == "lost" and str(report.get("reason", "")).startswith(REFUSED):
                    holding[member] = partial(self._refusal_event, camera, view, server, report["reason"], now)
                elif report.get("state") in ("streaming", None):  # reads it, or no longer tries
                    over.add(member)
        return self._episodes("refused", holding, over)

    def _refusal_event(self, camera, view, server, reason, now) -> Event:
        role = "backup" if server is view.backup else "primary"
        text = f"{camera.name} refuses the connection of its {role} {server.name}: {reason.removeprefix(REFUSED)}"
        if view.mode == RedundancyMode.CONSTANT and server is view.backup:
            text += "; constant redundancy needs a second session"
        log.warning("camera=%s event=connection_refused server=%s", camera.pk, server.name)
        return Event(at=_when(now), kind=EventKind.CONNECTION_REFUSED, camera=camera, server_id=server.pk,
                     mode=view.mode, message=text[:500])  # fmt: skip

    def _frame_rate_drops(self, cameras, views, now) -> list[Event]:
        """A camera whose frame rate drops while its primary and its backup both read it (some cameras slow
        down for each extra viewer; constant mode keeps two) is an event once per episode. The episode ends
        when both measure at least FRAME_RATE_BACK_FROM of its fps again, or one of them no longer reads it."""
        holding, over = {}, set()
        for camera in cameras:
            view = views[camera.pk]
            measured = self._settled_fps(camera.pk, (view.primary, view.backup), now)
            if drop := frame_rate_drop(camera, measured):
                holding[str(camera.pk)] = partial(self._frame_rate_event, camera, view, drop, now)
            elif frame_rate_drop(camera, measured, below=FRAME_RATE_BACK_FROM) is None:
                over.add(str(camera.pk))
        return self._episodes("frame-rate-dropped", holding, over)

    def _settled_fps(self, camera_pk, servers, now) -> list[tuple[str, float]]:
        """(server name, fps) of each of ``servers`` that has streamed the camera long enough to have measured it."""
        measured = []
        for server in servers:
            report = self._health.get(server.name, {}).get(camera_pk, {}) if server else {}
            if report.get("state") == "streaming" and now - report.get("since", now) >= FPS_SETTLED_AFTER:
                measured.append((server.name, float(report.get("fps") or 0)))
        return measured

    def _frame_rate_event(self, camera, view, drop: FrameRateDrop, now) -> Event:
        log.warning("camera=%s event=frame_rate_dropped expected_fps=%s measured=%s", camera.pk, drop.expected_fps,
                    ",".join(f"{server}:{fps:.1f}" for server, fps in drop.measured))  # fmt: skip
        return Event(at=_when(now), kind=EventKind.FRAME_RATE_DROPPED, camera=camera, server_id=view.backup.pk,
                     mode=view.mode, message=drop.warning()[:500])  # fmt: skip

    def _desired_sets(self, servers, cameras, views) -> dict[str, set[int]]:
        by_pk = {server.pk: server.name for server in servers}
        desired = {server.name: set() for server in servers}
        for camera in cameras:
            for server_pk in ingesting_servers(views[camera.pk], self.windows):
                desired[by_pk[server_pk]].add(camera.pk)
        return desired

    # -- events -----------------------------------------------------------------------------

    def _storage(self, server, state, storage_errors, now) -> list[Event]:
        """A server whose agent cannot write its recordings (disk full, path gone): an event each way.
        Its cameras are reported lost by the agent, so fast mode moves them to their backups."""
        if server.name not in storage_errors:
            return []  # not heard this pass: nothing new about its storage
        error = (storage_errors[server.name] or "")[:200]
        if error == state.storage_error:
            return []
        state.storage_error = error
        self._dirty.add(state)
        if error:
            text = f"{server.name} cannot write its recordings: {error}"
            return [self._server_event(EventKind.STORAGE_FAILED, server, text, now)]
        text = f"{server.name} writes its recordings again"
        return [self._server_event(EventKind.STORAGE_RESTORED, server, text, now)]

    def _agent_conflicts(self, servers, now) -> list[Event]:
        """Two agents claimed one video server's name (a second start, a cloned host): each report once."""
        by_name = {server.name: server for server in servers}
        events = []
        for report in live.take_agent_conflicts(self.redis):
            server = by_name.get(report.get("server"))
            if server is None:
                continue
            holder, agent = describe(report.get("holder", {})), describe(report.get("agent", {}))
            text = (f"A second agent for {server.name} ({agent}) was refused: {holder} runs it" if report.get("refused")
                    else f"Two agents report for {server.name}: {holder} holds it, {agent} lost it")  # fmt: skip
            events.append(self._server_event(EventKind.AGENT_CONFLICT, server, text, now))
        return events

    def _server_event(self, kind, server, message, now) -> Event:
        warned = (EventKind.SERVER_DOWN, EventKind.STORAGE_FAILED, EventKind.AGENT_CONFLICT)
        level = logging.WARNING if kind in warned else logging.INFO
        log.log(level, "server=%s event=%s message=%r", server.name, kind, message)
        return Event(at=_when(now), kind=kind, server=server, message=message)

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
            text += takeover_figures(self._health.get(target.name, {}).get(camera.pk, {}))
        return Event(at=_when(now), kind=kind, camera=camera, mode=view.mode, message=text[:500],
                     server_id=source.pk if source else None, to_server_id=target.pk if target else None)  # fmt: skip
