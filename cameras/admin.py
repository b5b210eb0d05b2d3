from django.contrib import admin, messages

from cameras.forms import CameraForm
from cameras.models import Camera
from cameras.modes import RedundancyMode
from cameras.services import BackupAssignment, BackupAssignmentError, assign_backups


class ModeFilter(admin.SimpleListFilter):
    title = "redundancy mode"
    parameter_name = "mode"

    def lookups(self, request, model_admin):
        return RedundancyMode.choices

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        ids = [c.pk for c in queryset.with_servers() if c.redundancy_mode == self.value()]
        return queryset.filter(pk__in=ids)


@admin.register(Camera)
class CameraAdmin(admin.ModelAdmin):
    form = CameraForm  # the pages' form: write-only credentials, only valid backups offered
    list_display = (
        "name",
        "primary_server",
        "backup_server",
        "redundancy_mode",
        "failover_priority",
        "codec",
        "resolution",
        "fps",
        "enabled",
    )
    list_filter = ("enabled", ModeFilter, "failover_priority", "codec", "primary_server", "backup_server")
    search_fields = ("name", "stream_url")
    actions = ["remove_backup"]

    def get_queryset(self, request):
        return super().get_queryset(request).with_servers()

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        # A new camera has no stored credentials to clear (the form drops that box too).
        return fields if obj is not None else [name for name in fields if name != "clear_credentials"]

    @admin.display(description="mode")
    def redundancy_mode(self, obj):
        return RedundancyMode(obj.redundancy_mode).label

    @admin.action(description="Remove the backup server of the selected cameras", permissions=["change"])
    def remove_backup(self, request, queryset):
        try:
            changed = assign_backups([BackupAssignment(c.pk, None) for c in queryset])
        except BackupAssignmentError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(request, f"Backup removed from {len(changed)} camera(s).", messages.SUCCESS)
