from rest_framework import serializers

from redundancy.models import Event


class EventSerializer(serializers.ModelSerializer):
    camera_name = serializers.CharField(source="camera.name", read_only=True, default=None)
    server_name = serializers.CharField(source="server.name", read_only=True, default=None)
    to_server_name = serializers.CharField(source="to_server.name", read_only=True, default=None)

    class Meta:
        model = Event
        fields = ["id", "at", "kind", "camera", "camera_name", "server", "server_name", "to_server",
                  "to_server_name", "mode", "message", "acknowledged_at", "acknowledged_by_username",
                  "acknowledgement_note"]  # fmt: skip
        read_only_fields = ["acknowledged_at", "acknowledged_by_username", "acknowledgement_note"]


class AcknowledgeSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=500, default="",
                                 help_text="Why it needs no more attention, or what was done; optional.")  # fmt: skip


class ServerHealthSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    system = serializers.CharField(help_text="The name of its multiserver system.")
    system_id = serializers.IntegerField(help_text="Its multiserver system.")
    status = serializers.CharField()
    status_since = serializers.DateTimeField(allow_null=True)
    heartbeat_age = serializers.FloatField(
        allow_null=True, help_text="Seconds since the last heartbeat, by Redis's clock when read; null if never heard."
    )
    last_heard = serializers.FloatField(
        allow_null=True,
        help_text="When it was last heard (epoch seconds, Redis's clock) once it has been silent longer than the "
        "fast window; null while it heartbeats, or if never heard. It stays still while the server is silent: "
        "its age is the status's at minus it.",
    )
    draining = serializers.BooleanField()
    leaving = serializers.BooleanField()
    hold_down_seconds = serializers.FloatField()
    ingesting = serializers.IntegerField(help_text="Cameras the server ingests now.")
    own_cameras = serializers.IntegerField(help_text="Cameras it is the primary server of.")
    max_cameras = serializers.IntegerField(allow_null=True)
    storage_error = serializers.CharField(
        allow_blank=True, help_text="Why the server cannot write its recordings; empty when it can."
    )
    cameras_away = serializers.IntegerField(help_text="Its own cameras on or moving to their backups.")


class CameraStatusSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    enabled = serializers.BooleanField()
    mode = serializers.CharField()
    recording_on = serializers.ChoiceField(
        choices=["primary", "backup", "both", "nobody"], help_text="Which servers report its stream streaming now."
    )
    fps = serializers.FloatField(
        help_text="Frames per second measured by the recording server, to a tenth; the published status gives it "
        "again only when it moved by 1 fps or 10 %."
    )
    primary_server = serializers.IntegerField()
    backup_server = serializers.IntegerField(allow_null=True)
    placement = serializers.CharField()
    since = serializers.DateTimeField(allow_null=True)
    reason = serializers.CharField()
    active_server = serializers.IntegerField(allow_null=True, help_text="The server whose recording counts now.")
    ingesting_servers = serializers.ListField(child=serializers.IntegerField())
    streams = serializers.DictField(
        child=serializers.CharField(), help_text="Its primary's and backup's server id → stream state each reports."
    )


class StatusSerializer(serializers.Serializer):
    at = serializers.FloatField(help_text="When it was read (epoch seconds; Redis's clock for a published status).")
    live = serializers.BooleanField(help_text="False when Redis could not be read: heartbeats and streams missing.")
    versions = serializers.DictField(
        child=serializers.IntegerField(),
        help_text="System id → the version of its published status this holds (the live socket's deltas go on "
        "from it); empty when the status was computed on the spot.",
    )
    servers = ServerHealthSerializer(many=True)
    cameras = CameraStatusSerializer(many=True)


class ActionResultSerializer(serializers.Serializer):
    detail = serializers.CharField()
