from django.apps import AppConfig


class RedundancyConfig(AppConfig):
    name = "redundancy"
    verbose_name = "Redundancy"

    def ready(self):
        from django.db.models.signals import post_delete, post_save

        from redundancy import config

        # What the engine's configuration is made of (redundancy.config.load): a change is read at the next pass.
        for label in ("servers.MultiserverSystem", "servers.Server", "servers.RedundancySettings", "cameras.Camera"):
            post_save.connect(config.bump, sender=label, dispatch_uid=f"config-version-{label}-save")
            post_delete.connect(config.bump, sender=label, dispatch_uid=f"config-version-{label}-delete")
