from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Roles and audit log"

    def ready(self):
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group

        from accounts import audit
        from accounts.roles import ensure_roles

        # Listed last in INSTALLED_APPS, so every other app's permissions exist by now.
        post_migrate.connect(ensure_roles, sender=self, dispatch_uid="accounts-ensure-roles")
        audit.track(get_user_model())
        audit.track(Group)
        audit.track_roles(get_user_model())
        audit.track(self.get_model("SystemAccess"))
