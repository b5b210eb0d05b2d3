from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "reports"
    verbose_name = "Reports"

    def ready(self):
        from prometheus_client import REGISTRY

        from reports.metrics import NAME, VideoLostCollector

        if NAME not in getattr(REGISTRY, "_names_to_collectors", {}):  # once per process
            REGISTRY.register(VideoLostCollector())
