from django.apps import AppConfig


class SimulationConfig(AppConfig):
    """Tools for development, tests and benchmarks, never part of a real site: the simulated cameras (MJPEG over
    HTTP, RTSP with H.264 and H.265, ONVIF) whose every frame carries its identity, the readers of that identity
    in recorded files, and the demo site (``load_demo``)."""

    name = "simulation"
    verbose_name = "Simulation"
