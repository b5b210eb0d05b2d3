"""Simulated RTSP cameras (H.264, H.265): GStreamer's RTSP server, run by Debian's Python.

    /usr/bin/python3 -m simulation.rtsp_server CONFIG.json

The camera simulator (``simulation.simulator``) starts this process for its RTSP cameras and
drives it over stdin and stdout, one JSON object a line. CONFIG lists the cameras: number,
host, port, codec, fps, start time, the loop file (``simulation.loops``), the most viewers
the camera accepts at once and the share of its frame rate it loses for each session beyond the
first (as some real cameras do: frames come later, none is dropped, the counter goes on). Each
camera is an RTSP server of its own on its own port, at
``rtsp://host:port/stream``, over TCP (interleaved) or UDP as the client asks.

Like a real camera, each one streams all the time, watched or not: frame n is due at
start + n / fps, whoever watches. One shared media per camera serves all its viewers; as with a
real camera, a session's video starts at once with whatever frame is next, mid-GOP most often
(its parameter sets go first, as a camera's SDP would carry them), and a viewer has to wait for
the next keyframe (at most one GOP) to show anything. Before each picture goes an SEI message
with the frame counter and capture time (``simulation.sei``).

Commands: ``{"camera": n, "state": "streaming|stopped|stalled|garbage"}`` answers the camera's
description; ``{"camera": n, "keyframe": true}`` makes its next frame a keyframe (what ONVIF's
SetSynchronizationPoint asks of a camera's encoder: the replay jumps to the start of the loop's
next GOP, the frame counter goes on); ``{"describe": true}`` answers all of them. Standard
library and GStreamer only.
"""

import heapq
import json
import os
import sys
import threading
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

from simulation.loops import read_loop  # noqa: E402
from simulation.pacing import Pace, viewer_rate  # noqa: E402
from simulation.sei import sei_nal  # noqa: E402

STATES = ("streaming", "stopped", "stalled", "garbage")
PIPELINE = (
    '( appsrc name=src is-live=true do-timestamp=true format=time caps="video/x-{codec},stream-format=byte-stream,'
    'alignment=au" ! {codec}parse ! rtp{codec}pay name=pay0 pt=96 )'
)


class Camera:
    def __init__(self, config: dict, loops: dict):
        self.number = config["number"]
        self.host, self.port = config["host"], config["port"]
        self.codec, self.fps = config["codec"], float(config["fps"])
        self.started = float(config["started"])
        self.max_viewers = int(config.get("max_viewers") or 0)  # 0: no limit
        self.fps_drop = float(config.get("fps_drop_per_viewer") or 0) / 100  # of the rate, per session beyond one
        self.pace = Pace(self.started, self.fps)
        self.units = loops[config["loop"]]
        keyframes = [i for i, (keyframe, _, _) in enumerate(self.units) if keyframe]
        self.gop = keyframes[1] if len(keyframes) > 1 else len(self.units)
        self.parameter_sets = parameter_sets(self.codec, self.units[0][1])
        self._shift = 0  # loop frames skipped by forced keyframes
        self._keyframe_asked = False
        self.keyframes_forced = 0
        self.state = "streaming"
        self.frames_sent = 0
        self.viewers: set = set()  # clients connected
        self.sessions: set = set()  # clients that set up a stream
        self.refused = 0
        self._sinks: dict = {}  # appsrc -> joined (has had its first keyframe)
        self._lock = threading.Lock()
        self._source = None
        self.server = GstRtspServer.RTSPServer()
        self.server.set_address(self.host)
        self.server.set_service(str(self.port))
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(PIPELINE.format(codec=self.codec))
        factory.set_shared(True)
        factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP | GstRtsp.RTSPLowerTrans.UDP)
        factory.connect("media-configure", self._media_configure)
        self.server.get_mount_points().add_factory("/stream", factory)
        self.server.connect("client-connected", self._client_connected)

    @property
    def url(self) -> str:
        return f"rtsp://{self.host}:{self.port}/stream"

    # -- serving --------------------------------------------------------------------------------

    def listen(self) -> None:
        if self._source is None:
            self._source = self.server.attach(None)

    def close(self) -> None:
        """Stop listening and cut every viewer."""
        if self._source is not None:
            GLib.source_remove(self._source)
            self._source = None
        self.cut_viewers()

    def cut_viewers(self) -> None:
        self.server.client_filter(lambda server, client, *data: GstRtspServer.RTSPFilterResult.REMOVE)

    def _client_connected(self, server, client) -> None:
        self.viewers.add(client)
        client.connect("closed", self._client_closed)
        client.connect("pre-setup-request", self._pre_setup)

    def _client_closed(self, client) -> None:
        self.viewers.discard(client)
        self.sessions.discard(client)
        self.pace.change_rate(viewer_rate(self.fps, self.fps_drop, len(self.sessions)), time.time())

    def _pre_setup(self, client, context):
        if self.max_viewers and client not in self.sessions and len(self.sessions) >= self.max_viewers:
            self.refused += 1
            return GstRtsp.RTSPStatusCode.NOT_ENOUGH_BANDWIDTH  # 453: what cameras answer a viewer too many
        self.sessions.add(client)
        self.pace.change_rate(viewer_rate(self.fps, self.fps_drop, len(self.sessions)), time.time())
        return GstRtsp.RTSPStatusCode.OK

    def _media_configure(self, factory, media) -> None:
        source = media.get_element().get_by_name("src")
        with self._lock:
            self._sinks[source] = False
        source.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, _running_time_stamp)
        media.connect("unprepared", lambda *_: self._forget(source))

    def _forget(self, source) -> None:
        with self._lock:
            self._sinks.pop(source, None)

    # -- the stream -----------------------------------------------------------------------------

    def push(self, counter: int) -> None:
        """Frame ``counter`` to every viewer; a new viewer gets the parameter sets before its first frame."""
        if self.state in ("stopped", "stalled"):
            return
        if self._keyframe_asked:  # a forced IDR: the encoder starts a GOP now, the counter goes on
            self._keyframe_asked = False
            late = (counter + self._shift) % self.gop
            if late:
                self._shift += self.gop - late
                self.keyframes_forced += 1
        keyframe, head, picture = self.units[(counter + self._shift) % len(self.units)]
        if self.state == "garbage":
            data = os.urandom(len(head) + len(picture))
        else:
            captured_ms = int(self.pace.due(counter) * 1000)
            data = head + sei_nal(self.codec, counter, captured_ms) + picture
        with self._lock:
            for source, joined in list(self._sinks.items()):
                # A new session starts mid-GOP, its parameter sets first (again while its media drops them).
                buffer = Gst.Buffer.new_wrapped(data if joined or keyframe else self.parameter_sets + data)
                buffer.duration = int(Gst.SECOND / self.pace.rate)
                self._sinks[source] = source.emit("push-buffer", buffer) == Gst.FlowReturn.OK
        self.frames_sent += 1

    def ask_keyframe(self) -> None:
        """The next frame is a keyframe (the produce thread applies it, between two frames)."""
        self._keyframe_asked = True

    def set_state(self, state: str) -> None:
        self.state = state
        if state == "stopped":
            self.close()
        else:
            self.cut_viewers()  # viewers of the old behaviour reconnect into the new one
            self.listen()

    def describe(self) -> dict:
        return {"number": self.number, "port": self.port, "url": self.url, "state": self.state, "codec": self.codec,
                "fps": self.fps, "fps_now": self.pace.rate, "viewers": len(self.viewers),
                "sessions": len(self.sessions),
                "refused": self.refused, "frames_sent": self.frames_sent,
                "keyframes_forced": self.keyframes_forced}  # fmt: skip


def _running_time_stamp(pad, info):
    """A buffer stamped before its pipeline had a base time leaves stamped now (or not at all) instead.

    do-timestamp gives a buffer the clock's absolute time while a new media's pipeline has its clock but not yet its
    base time (now and then, as it prerolls): gst-rtsp-server's TCP sink, which syncs, would hold that buffer, and the
    stream behind it, for as long as the machine has been up; the new viewer got no video at all.
    """
    element = pad.get_parent_element()
    clock = element.get_clock()
    if clock is not None:
        buffer = info.get_buffer()
        base = element.get_base_time()
        now = clock.get_time() - base if base else Gst.CLOCK_TIME_NONE
        if any(t != Gst.CLOCK_TIME_NONE and (not base or t > now + Gst.SECOND) for t in (buffer.pts, buffer.dts)):
            buffer.pts = buffer.dts = now
    return Gst.PadProbeReturn.OK


def parameter_sets(codec: str, head: bytes) -> bytes:
    """The SPS and PPS (H.265: VPS too) NAL units of a keyframe's head, start codes included."""
    kinds = (7, 8) if codec == "h264" else (32, 33, 34)
    starts = [i for i in range(len(head) - 3) if head[i : i + 3] == b"\x00\x00\x01"] + [len(head)]
    out = b""
    for start, end in zip(starts, starts[1:], strict=False):
        nal = head[start + 3]
        kind = nal & 0x1F if codec == "h264" else (nal >> 1) & 0x3F
        if kind in kinds:
            out += b"\x00" + head[start:end]  # a 4-byte start code
    return out


def produce(cameras: list[Camera], stop: threading.Event) -> None:
    """One thread paces every camera: frame n of a camera is due at its start + n / fps (later while it has
    more viewers than one and loses frame rate for them: ``Camera.pace``)."""
    now = time.time()
    due = []
    for index, camera in enumerate(cameras):
        counter = camera.pace.counter_at(now)
        heapq.heappush(due, (camera.pace.due(counter), index, counter))
    while not stop.is_set():
        at, index, counter = heapq.heappop(due)
        delay = at - time.time()
        if delay > 0:
            stop.wait(delay)
        camera = cameras[index]
        camera.push(counter)
        heapq.heappush(due, (camera.pace.due(counter + 1), index, counter + 1))


def answer(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main(config_path: str) -> None:
    Gst.init(None)
    with open(config_path) as handle:
        config = json.load(handle)
    loops = {path: read_loop(path)[1] for path in {camera["loop"] for camera in config["cameras"]}}
    cameras = {c["number"]: Camera(c, loops) for c in config["cameras"]}
    for camera in cameras.values():
        camera.listen()
    loop = GLib.MainLoop()
    stop = threading.Event()
    threading.Thread(target=produce, args=(list(cameras.values()), stop), daemon=True).start()

    def command(line: str) -> bool:
        try:
            request = json.loads(line)
            if request.get("describe"):
                answer({"cameras": [c.describe() for c in cameras.values()]})
            elif request.get("camera") not in cameras:
                answer({"error": f"no camera {request.get('camera')}"})
            elif request.get("keyframe"):
                cameras[request["camera"]].ask_keyframe()
                answer({"camera": request["camera"], "keyframe": "asked"})
            elif request.get("state") not in STATES:
                answer({"error": f"state must be one of {', '.join(STATES)}"})
            else:
                camera = cameras[request["camera"]]
                camera.set_state(request["state"])
                answer(camera.describe())
        except (ValueError, TypeError, AttributeError) as exc:
            answer({"error": f"bad command: {exc}"})
        return False

    def read_commands() -> None:
        for line in sys.stdin:
            GLib.idle_add(command, line)
        GLib.idle_add(loop.quit)  # the simulator went away: so do its cameras

    threading.Thread(target=read_commands, daemon=True).start()
    answer({"ready": [c.describe() for c in cameras.values()]})
    try:
        loop.run()
    finally:
        stop.set()
        for camera in cameras.values():
            camera.close()


if __name__ == "__main__":
    main(sys.argv[1])
