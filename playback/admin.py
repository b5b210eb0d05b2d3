from django.contrib import admin

from playback.models import Export


@admin.register(Export)
class ExportAdmin(admin.ModelAdmin):
    list_display = ("camera", "since", "until", "state", "progress", "requested_by", "created_at", "finished_at")
    list_filter = ("state",)
    search_fields = ("camera__name", "sha256")
    readonly_fields = [field.name for field in Export._meta.fields]

    def has_add_permission(self, request):
        return False  # an export is made from a camera's timeline, the API or the command, which check the range
