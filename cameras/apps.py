from django.apps import AppConfig


class CamerasConfig(AppConfig):
    name = "cameras"
    verbose_name = "Cameras"

    def ready(self):
        from accounts import audit

        audit.track(self.get_model("Camera"))
