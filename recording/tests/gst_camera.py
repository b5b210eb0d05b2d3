"""RTSP cameras the simulator does not offer, for the tests of Test connection: one that sends VP8 (a codec not
recorded here) and one that asks for a user name and password (RTSP Basic). GStreamer's RTSP server, run by
Debian's Python as the simulator's is (``/usr/bin/python3 recording/tests/gst_camera.py PORT KIND``); the
tests start it with ``GstCamera``.
"""

import subprocess
import sys
from pathlib import Path

USERNAME, PASSWORD = "admin", "rtsp-s3cret"
PIPELINES = {
    "vp8": "vp8enc deadline=1 ! rtpvp8pay name=pay0 pt=96",
    "h264-password": "openh264enc gop-size=5 ! rtph264pay name=pay0 pt=96",
}


class GstCamera:
    """``rtsp://127.0.0.1:<port>/stream`` of the given kind, in a process of its own until ``close``."""

    def __init__(self, kind: str):
        from utilities.ports import free_ports  # not at the top: Debian's Python runs this file without the project

        self.port = free_ports(1)[0]
        self.process = subprocess.Popen(["/usr/bin/python3", str(Path(__file__)), str(self.port), kind],
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
        if self.process.stdout.readline().strip() != "ready":
            self.close()
            raise RuntimeError(f"the {kind} RTSP camera did not start")

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/stream"

    def close(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


def main(port: str, kind: str) -> None:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(f"( videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=5/1 ! "
                       f"{PIPELINES[kind]} )")  # fmt: skip
    factory.set_shared(True)
    if kind.endswith("-password"):
        auth, token = GstRtspServer.RTSPAuth(), GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "user")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(USERNAME, PASSWORD), token)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_permission_for_role("user", "media.factory.access", True)
        permissions.add_permission_for_role("user", "media.factory.construct", True)
        factory.set_permissions(permissions)
    server.get_mount_points().add_factory("/stream", factory)
    server.attach(None)
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main(*sys.argv[1:3])
