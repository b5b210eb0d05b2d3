from django.apps import AppConfig


class ServersConfig(AppConfig):
    name = "servers"
    verbose_name = "Video servers"

    def ready(self):
        from accounts import audit

        for name in ("MultiserverSystem", "Server", "License", "RedundancySettings", "MailSettings"):
            audit.track(self.get_model(name))
