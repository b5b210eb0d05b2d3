from rest_framework import serializers

from playback.timeline import when


class EpochField(serializers.DateTimeField):
    """A time the timeline keeps as seconds since the epoch, given as ISO 8601 in UTC."""

    def to_representation(self, value):
        return super().to_representation(when(value))


class SpanSerializer(serializers.Serializer):
    started_at = EpochField()
    ended_at = EpochField()
    frames = serializers.IntegerField()
    recorded_by = serializers.CharField(help_text="The server that recorded it (another one's, for a copy merged "
                                        "back after a failback).")  # fmt: skip


class GapSerializer(serializers.Serializer):
    started_at = EpochField()
    ended_at = EpochField()
    seconds = serializers.FloatField()


class SourceSerializer(serializers.Serializer):
    server = serializers.CharField()
    started_at = EpochField()
    ended_at = EpochField()


class ServerRoleSerializer(serializers.Serializer):
    name = serializers.CharField()
    role = serializers.ChoiceField(choices=["primary", "backup", "former"])


class EventMarkSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    kind = serializers.CharField()
    message = serializers.CharField()


class RecordingsSerializer(serializers.Serializer):
    camera = serializers.IntegerField(source="camera.pk")
    codec = serializers.CharField(source="camera.codec")
    since = serializers.SerializerMethodField()
    until = serializers.SerializerMethodField()
    servers = serializers.SerializerMethodField()
    lanes = serializers.SerializerMethodField()
    gaps = GapSerializer(source="line.gaps", many=True)
    sources = SourceSerializer(source="line.sources", many=True)
    events = EventMarkSerializer(many=True)

    def get_since(self, data) -> str:
        return EpochField().to_representation(data["line"].since)

    def get_until(self, data) -> str:
        return EpochField().to_representation(data["line"].until)

    def get_servers(self, data) -> list[dict]:
        camera = data["camera"]
        roles = {camera.primary_server.name: "primary"}
        if camera.backup_server is not None:
            roles[camera.backup_server.name] = "backup"
        for server in data["line"].lanes:
            roles.setdefault(server, "former")  # a backup since replaced still has what it recorded
        return ServerRoleSerializer([{"name": name, "role": role} for name, role in roles.items()], many=True).data

    def get_lanes(self, data) -> dict[str, list[dict]]:
        return {server: SpanSerializer(spans, many=True).data for server, spans in data["line"].lanes.items()}


class ExportRequestSerializer(serializers.Serializer):
    since = serializers.DateTimeField(help_text="ISO 8601: the start of the range to export.")
    until = serializers.DateTimeField(help_text="ISO 8601: its end; at most 24 hours after the start.")

    def validate(self, data):
        from playback.models import range_problems

        problems = range_problems(data["since"], data["until"])
        if problems:
            raise serializers.ValidationError(problems)
        return data


class ExportLinksSerializer(serializers.Serializer):
    self = serializers.CharField()
    download = serializers.CharField(help_text="The MP4 (409 until the export is done).")
    manifest = serializers.CharField(help_text="The manifest as JSON (409 until the export is done).")


class ExportSerializer(serializers.ModelSerializer):
    links = serializers.SerializerMethodField()

    class Meta:
        from playback.models import Export

        model = Export
        fields = ["id", "camera", "since", "until", "state", "progress", "error", "size_bytes", "sha256",
                  "created_at", "finished_at", "links"]  # fmt: skip
        read_only_fields = fields

    def get_links(self, job) -> ExportLinksSerializer:
        from django.urls import reverse

        request = self.context.get("request")
        links = {name: reverse(f"camera-export{suffix}", args=[job.camera_id, job.pk])
                 for name, suffix in (("self", ""), ("download", "-download"), ("manifest", "-manifest"))}  # fmt: skip
        return {name: request.build_absolute_uri(url) if request else url for name, url in links.items()}
