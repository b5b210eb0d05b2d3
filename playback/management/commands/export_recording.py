"""Export a camera's recordings over a range as one MP4 file, with its JSON manifest beside it.

    python manage.py export_recording --camera gate --since 2026-12-01T10:00:00Z --until 2026-12-01T11:00:00Z \\
        --out gate.mp4

The file is stitched by stream copy from whichever servers recorded the range (read from their agents);
``gate.json`` beside it names the spans each server contributed, the gaps, and the file's SHA-256.
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from cameras.models import Camera
from playback import export
from playback.models import range_problems
from recording import remote

EXAMPLE = "2026-12-01T10:00:00Z"


def _time(name: str, value: str):
    moment = None
    try:
        moment = parse_datetime(value)
    except ValueError:
        pass
    if moment is None:
        raise CommandError(f"--{name}: {value!r} is not a time (ISO 8601, e.g. {EXAMPLE}).")
    if moment.tzinfo is None:
        raise CommandError(f"--{name}: {value!r} has no time zone (add Z for UTC, e.g. {EXAMPLE}).")
    return moment


class Command(BaseCommand):
    help = "Export a camera's recordings over a time range as one MP4 file (stream copy) and its JSON manifest."

    def add_arguments(self, parser):
        parser.add_argument("--camera", required=True, help="The camera's name or id.")
        parser.add_argument("--since", required=True, help=f"The start of the range, ISO 8601 ({EXAMPLE}).")
        parser.add_argument("--until", required=True, help="The end of the range, ISO 8601.")
        parser.add_argument("--out", required=True, type=Path, help="The MP4 file to write; its manifest goes "
                            "beside it, with .json for .mp4.")  # fmt: skip

    def handle(self, *args, camera, since, until, out, **options):
        found = Camera.objects.filter(name=camera).select_related("primary_server").first()
        if found is None and camera.isdigit():
            found = Camera.objects.filter(pk=int(camera)).select_related("primary_server").first()
        if found is None:
            raise CommandError(f"No camera named or numbered {camera!r}.")
        since, until = _time("since", since), _time("until", until)
        problems = range_problems(since, until)
        if problems:
            raise CommandError({"The end of the range must come after its start.": "--until must come after --since."}
                               .get(problems["until"], problems["until"]))  # fmt: skip
        if not out.parent.is_dir():
            raise CommandError(f"--out: the directory {out.parent} does not exist.")
        try:
            manifest = export.export(found, since, until, out)
        except (export.NothingRecorded, export.NoRoom) as exc:
            raise CommandError(str(exc)) from None
        except remote.Unreachable as exc:
            raise CommandError(f"A server that holds part of the range cannot be read: {exc}.") from None
        self.stdout.write(summary(manifest, out))


def summary(manifest: dict, out: Path) -> str:
    lines = [f"{out} ({manifest['file']['size'] / 1e6:.1f} MB, {manifest['frames']} frames, {manifest['codec']})",
             f"  sha256 {manifest['file']['sha256']}",
             f"  manifest {export.manifest_path(out)}"]  # fmt: skip
    for span in manifest["spans"]:
        by = "" if span["recorded_by"] == span["server"] else f" (recorded by {span['recorded_by']})"
        lines.append(f"  {span['from']} - {span['to']}  {span['server']}{by}: {span['frames']} frames")
    for gap in manifest["gaps"]:
        lines.append(f"  {gap['from']} - {gap['to']}  gap of {gap['seconds']:g} s: nothing recorded")
    return "\n".join(lines)
