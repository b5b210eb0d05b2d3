"""The admin site: for administrators of the whole site only.

The admin edits every object of every system, so a user limited to some multiserver systems
(accounts.SystemAccess) may not use it, whatever their staff flag and permissions say.
"""

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig


class SiteAdmin(admin.AdminSite):
    def has_permission(self, request):
        from accounts.querysets import allowed_systems  # models: not importable while the admin app loads

        return super().has_permission(request) and allowed_systems(request.user) is None


class SiteAdminConfig(AdminConfig):
    default_site = "eocortex_web.admin_site.SiteAdmin"
