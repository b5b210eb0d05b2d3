from django.contrib import admin
from django.db.models import Count

from servers.models import License, MailSettings, MultiserverSystem, RedundancySettings, Server


class ServerInline(admin.TabularInline):
    model = Server
    fields = ("name", "address", "api_port")
    extra = 0
    show_change_link = True


class MailSettingsInline(admin.StackedInline):
    model = MailSettings
    can_delete = False
    max_num = 1
    exclude = ("password",)  # never shown; set it on the mail settings page


@admin.register(MultiserverSystem)
class MultiserverSystemAdmin(admin.ModelAdmin):
    list_display = ("name", "server_count")
    search_fields = ("name", "description")
    inlines = [ServerInline, MailSettingsInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(server_total=Count("servers"))

    @admin.display(description="servers", ordering="server_total")
    def server_count(self, obj):
        return obj.server_total


class LicenseInline(admin.TabularInline):
    model = License
    extra = 0


class RedundancySettingsInline(admin.StackedInline):
    model = RedundancySettings
    can_delete = False
    max_num = 1
    min_num = 1


@admin.register(Server)
class ServerAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "system",
        "address",
        "api_port",
        "max_cameras",
        "max_inbound_mbps",
        "fast_redundancy",
        "constant_redundancy",
    )
    list_filter = (
        "system",
        "redundancy__fast_redundancy",
        "redundancy__constant_redundancy",
        "redundancy__email_notifications",
        "merge_back",
    )
    list_select_related = ("system", "redundancy")
    search_fields = ("name", "address")
    inlines = [RedundancySettingsInline, LicenseInline]

    @admin.display(boolean=True, description="fast")
    def fast_redundancy(self, obj):
        return obj.redundancy.fast_redundancy

    @admin.display(boolean=True, description="constant")
    def constant_redundancy(self, obj):
        return obj.redundancy.constant_redundancy


class ActiveFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("inactive", "Expired or not yet valid")]

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.active()
        if self.value() == "inactive":
            return queryset.exclude(pk__in=License.objects.active().values("pk"))
        return queryset


@admin.register(License)
class LicenseAdmin(admin.ModelAdmin):
    list_display = (
        "key",
        "server",
        "ip_camera_channels",
        "analytics_channels",
        "valid_from",
        "valid_until",
        "is_active",
    )
    list_filter = (ActiveFilter, "server__system", "server")
    list_select_related = ("server",)
    search_fields = ("key", "server__name")
    date_hierarchy = "valid_until"


@admin.register(RedundancySettings)
class RedundancySettingsAdmin(admin.ModelAdmin):
    list_display = ("server", "email_notifications", "constant_redundancy", "fast_redundancy")
    list_filter = ("email_notifications", "constant_redundancy", "fast_redundancy", "server__system")
    list_select_related = ("server",)
    search_fields = ("server__name",)


@admin.register(MailSettings)
class MailSettingsAdmin(admin.ModelAdmin):
    list_display = ("system", "smtp_host", "from_email")
    exclude = ("password",)
    search_fields = ("system__name", "smtp_host")
