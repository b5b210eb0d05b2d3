"""Cameras imported from a CSV file: read, each row checked exactly as the Add camera page checks a camera
(``CameraForm`` and ``Camera.clean``: rules 1 and 2, the stream URLs, the names), created all or none.

Reading is pure (``read_csv``, ``read_text``), and so is checking: a row is judged with the rows before it
counted in memory (the license channels they take, through ``_WithEarlierRows``, and the names they hold), so
a preview writes nothing and holds no write lock. Create checks the same way, then, in one short
transaction, locks the primary servers, checks again what may have changed meanwhile (their licenses, the
backups' licenses; a name taken meanwhile is refused by the database) and saves every camera, or none.

An error names the line and the column and says what the column takes; it never repeats a cell (a cell may
hold a password that a comma in an earlier cell pushed under another column).
"""

import csv
import io
import logging
import re
from dataclasses import dataclass, field
from types import SimpleNamespace

from django.db import IntegrityError, transaction
from django.utils import timezone

from cameras.forms import CameraForm
from cameras.models import AnalyticsModule, Camera, Codec, FailoverPriority, RtspTransport, StreamQuality
from cameras.rules import backup_problems, channel_problems
from servers.models import Server

log = logging.getLogger(__name__)

MAX_BYTES = 1_000_000
MAX_ROWS = 2000


@dataclass(frozen=True)
class Column:
    field: str  # the camera form's field (or "resolution", which gives width and height)
    label: str  # as the template and the page write it
    aliases: tuple[str, ...] = ()
    required: bool = False
    help: str = ""


COLUMNS = (
    Column("name", "name", ("camera", "camera name"), True, "unique among all cameras"),
    Column("stream_url", "stream URL", ("stream", "url", "main stream", "main stream url", "rtsp url",
                                        "stream address"), True, "rtsp://, http:// or https://"),  # fmt: skip
    Column("sub_stream_url", "sub stream URL", ("sub stream", "substream", "second stream", "sub url"),
           help="optional"),
    Column("onvif_url", "ONVIF address", ("onvif", "onvif url", "onvif media service url", "onvif media url",
                                          "onvif service"), help="optional, http:// or https://"),  # fmt: skip
    Column("username", "user", ("user name", "username", "login"), help="optional"),
    Column("password", "password", ("pass", "pwd"), help="optional; never shown back"),
    Column("codec", "codec", ("video codec", "video", "encoding"), help="H.264 (default), H.265 or MJPEG"),
    Column("rtsp_transport", "RTSP transport", ("transport",), help="TCP (default) or UDP"),
    Column("resolution", "resolution", (), help="as 1920x1080, or width and height columns"),
    Column("width", "width", (), help="default 1920"),
    Column("height", "height", (), help="default 1080"),
    Column("fps", "fps", ("frames per second", "frame rate", "framerate"), help="default 25"),
    Column("quality", "quality", ("stream quality",), help="Low, Medium (default) or High"),
    Column("expected_bitrate_kbps", "expected bitrate (kbit/s)", ("expected bitrate", "bitrate", "bitrate kbps",
           "bitrate kbit s", "kbps"), help="optional"),  # fmt: skip
    Column("primary_server", "primary server", ("primary", "server"), True, "a server's name"),
    Column("backup_server", "backup server", ("backup",), help="optional, a server of the primary's system"),
    Column("failover_priority", "failover priority", ("priority",), help="High, Normal (default), Low or Never"),
    Column("analytics", "analytics", ("analytics modules", "analytics module"),
           help="optional: Motion detection, Tampering detection, separated by |"),  # fmt: skip
    Column("enabled", "enabled", ("active", "enable"), help="yes (default) or no"),
)
BY_FIELD = {column.field: column for column in COLUMNS}
TRUE = {"yes", "y", "true", "1", "on", "enabled", "x"}
FALSE = {"no", "n", "false", "0", "off", "disabled"}
CHOICES = {"codec": Codec, "rtsp_transport": RtspTransport, "quality": StreamQuality,
           "failover_priority": FailoverPriority}  # fmt: skip
CHOICE_ALIASES = {"codec": {"avc": "h264", "hevc": "h265", "mjpg": "mjpeg"},
                  "analytics": {"motion": "motion_detection", "tamper": "tamper_detection",
                                "tampering": "tamper_detection"}}  # fmt: skip
DEFAULTS = ("codec", "width", "height", "fps", "quality", "failover_priority")  # the model's, when a cell is empty
# The camera form's notes for a person re-typing a refused form; a refused file row is simply not created.
_RETYPE_NOTES = ("was not stored; type it again.",
                 "but not stored, as the form was refused: type them in their fields.")  # fmt: skip


def _key(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", text.lower())


HEADERS = {_key(name): column.field for column in COLUMNS for name in (column.field, column.label, *column.aliases)}


class RowForm(CameraForm):
    """The Add camera form for a row of a file: every field and rule the same; no drop-down is shown, so its
    offer of valid backups is not worked out (2000 times) — the chosen backup is judged by Camera.clean()."""

    def _offer_valid_backups(self):
        pass


class ImportFileError(Exception):
    """The file cannot be read as a list of cameras; the message says why in the operator's words."""


@dataclass
class Row:
    line: int  # where the row starts in the file (the header is line 1)
    cells: dict[str, str]  # field → the cell as written
    problems: list[str] = field(default_factory=list)  # what was wrong with the row's shape


@dataclass
class CameraFile:
    text: str
    columns: dict[str, str]  # field → the header as written
    rows: list[Row]


def read_csv(raw: bytes) -> CameraFile:
    """An uploaded file: UTF-8, with or without a byte order mark."""
    if len(raw) > MAX_BYTES:
        raise ImportFileError(f"The file is larger than {MAX_BYTES // 1_000_000} MB: split it into files of at most "
                              f"{MAX_ROWS} cameras.")  # fmt: skip
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ImportFileError(f"The file is not UTF-8 text (line {line} holds a byte UTF-8 does not allow): "
                              "save it as \"CSV UTF-8\" and upload it again.") from None  # fmt: skip
    return read_text(text)


def read_text(text: str) -> CameraFile:
    """The header and the rows of a CSV text, comma- or semicolon-separated."""
    text = text.removeprefix("\ufeff")
    lines = text.splitlines()
    header_line = next((line for line in lines if line.strip()), "")
    if not header_line:
        raise ImportFileError("The file is empty: its first line names the columns, each next line is a camera.")
    delimiter = ";" if header_line.count(";") > header_line.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
        while not any(cell.strip() for cell in header):
            header = next(reader)
        columns = _columns(header)
        rows = []
        while True:
            line = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                break
            if not any(cell.strip() for cell in cells):
                continue
            if len(rows) == MAX_ROWS:
                raise ImportFileError(f"The file holds more than {MAX_ROWS} cameras: split it into files of at most "
                                      f"{MAX_ROWS}.")  # fmt: skip
            rows.append(_row(line, header, cells, columns))
    except csv.Error as exc:
        raise ImportFileError(f"Line {reader.line_num} cannot be read as CSV ({exc}).") from None
    if not rows:
        raise ImportFileError("The file names its columns but holds no camera: add a line per camera.")
    return CameraFile(text, {f: header[i].strip() for f, i in columns.items()}, rows)


def _columns(header: list[str]) -> dict[str, int]:
    """field → position; unknown, doubled or missing columns refuse the whole file."""
    columns: dict[str, int] = {}
    unknown, doubled = [], []
    for position, name in enumerate(header):
        if not name.strip():
            continue  # an unnamed column (a trailing separator): its cells must stay empty
        found = HEADERS.get(_key(name))
        if found is None:
            unknown.append(f'"{name.strip()}" (column {position + 1})')
        elif found in columns:
            doubled.append(f'"{header[columns[found]].strip()}" and "{name.strip()}"')
        else:
            columns[found] = position
    if "resolution" in columns and ({"width", "height"} & set(columns)):
        doubled.append('"resolution" and "width"/"height"')
    problems = []
    if unknown:
        problems.append(f"Unknown column{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}.")
    if doubled:
        problems.append(f"Columns that say the same: {'; '.join(doubled)}: keep one of each.")
    missing = [column.label for column in COLUMNS if column.required and column.field not in columns]
    if missing:
        problems.append(f"Missing column{'s' if len(missing) > 1 else ''}: {', '.join(missing)}.")
    if problems:
        known = ", ".join(column.label for column in COLUMNS)
        raise ImportFileError(" ".join(problems) + f" The columns are: {known} (the first line of the file names "
                                                   "them, in any order and case).")  # fmt: skip
    return columns


def _row(line: int, header: list[str], cells: list[str], columns: dict[str, int]) -> Row:
    row = Row(line, {f: cells[i].strip() if i < len(cells) else "" for f, i in columns.items()})
    if len(cells) != len(header):  # its values are not under their columns: none of them is judged (or shown)
        row.problems.append(f"line {line} has {len(cells)} values but the header names {len(header)} columns: a "
                            "value holding the separator must be in double quotes, and each line has a value (empty "
                            "if need be) for every column.")  # fmt: skip
        return row
    named = set(columns.values())
    for position, cell in enumerate(cells[: len(header)]):
        if position not in named and cell.strip():
            row.problems.append(f"line {line}, column {position + 1} has a value but no name in the header.")
    return row


@dataclass
class RowResult:
    line: int
    name: str
    errors: list[str]  # each "line 7, backup server: ..."
    camera: Camera | None = None  # what will be created, when the row is good (never saved by a preview)

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass
class ImportCheck:
    rows: list[RowResult]
    created: bool = False
    problem: str = ""  # what stopped the whole file at the last moment

    @property
    def bad(self) -> list[RowResult]:
        return [row for row in self.rows if not row.ok]

    @property
    def ok(self) -> bool:
        return not self.problem and not self.bad


STALE = ("Another change to the cameras was stored while these were created: nothing was created. Upload the file "
         "again to check it against what is stored now.")  # fmt: skip


def check(camera_file: CameraFile, user, create: bool = False) -> ImportCheck:
    """Every row judged as the Add camera page judges a camera, after the rows before it, writing nothing; with
    ``create``, the cameras are stored (and audited, through the models' signals) when every row is good, else
    nothing."""
    result = _check(camera_file, user)
    if not (create and result.ok):
        return result
    try:
        with transaction.atomic():
            if _licenses_changed(result, user):
                transaction.set_rollback(True)
            else:
                for row in result.rows:
                    row.camera.save()
                result.created = True
    except IntegrityError:  # a camera of one of these names was stored by someone else meanwhile
        return ImportCheck([], problem=STALE)
    if not result.created:  # a license changed between the check and the lock: say which rows it refuses now
        result = _check(camera_file, user)
        result.problem = "" if result.bad else STALE
        return result
    names = [row.name for row in result.rows]
    transaction.on_commit(lambda: log.info("event=cameras_imported count=%d user=%s first=%s", len(names),
                                           user.get_username(), names[0]))  # fmt: skip
    return result


class _WithEarlierRows:
    """``server.primary_cameras`` as ``channel_problems`` reads it, with the cameras of the file's earlier good rows
    counted as if stored: how a row is judged after the rows before it without writing them."""

    def __init__(self, stored, earlier: list[Camera]):
        self.stored, self.earlier = stored, earlier

    def exclude(self, pk=None, **lookup):
        if set(lookup) - {"analytics"}:
            raise TypeError(f"_WithEarlierRows cannot exclude by {', '.join(lookup)}")
        earlier = [c for c in self.earlier if "analytics" not in lookup or c.analytics != lookup["analytics"]]
        return _WithEarlierRows(self.stored.exclude(pk=pk, **lookup), earlier)

    def count(self) -> int:
        return self.stored.count() + len(self.earlier)


def _channels_with_earlier_rows(camera: Camera, earlier: list[Camera]) -> dict[str, list[str]]:
    """Rule 2's channels for a new camera, in channel_problems' own words, its primary's earlier rows counted."""
    server = camera.primary_server
    primary = SimpleNamespace(name=server.name, pk=server.pk, licensing=server.licensing,
                              primary_cameras=_WithEarlierRows(server.primary_cameras.all(), earlier))  # fmt: skip
    unsaved = SimpleNamespace(pk=None, name=camera.name, analytics=camera.analytics, primary_server=primary,
                              primary_server_id=camera.primary_server_id)  # fmt: skip
    return channel_problems(unsaved, None)


def _licenses_changed(result: ImportCheck, user) -> bool:
    """With the primary servers locked (no one else adds a camera to them until this commits): does any row now
    break rule 2 (a license removed or ended since the check)? A primary's last row and last row with analytics
    take the most channels, so they stand for the rows before them; each backup's licenses are read once."""
    cameras = [row.camera for row in result.rows]
    primaries = sorted({camera.primary_server_id for camera in cameras})
    list(Server.objects.restrict(user).select_for_update().filter(pk__in=primaries).order_by("pk").values_list("pk"))
    today, licensing = timezone.localdate(), {}

    def licensing_of(server):
        if server.pk not in licensing:
            licensing[server.pk] = server.licensing(today)
        return licensing[server.pk]

    earlier: dict[int, list[Camera]] = {}
    last: dict[tuple[int, bool], int] = {}
    for position, camera in enumerate(cameras):
        last[camera.primary_server_id, False] = position
        if camera.analytics:
            last[camera.primary_server_id, True] = position
    standing_for = set(last.values())
    for position, camera in enumerate(cameras):
        if position in standing_for and _channels_with_earlier_rows(camera, earlier.get(camera.primary_server_id, [])):
            return True
        earlier.setdefault(camera.primary_server_id, []).append(camera)
        if backup_problems(camera.name, camera.primary_server, camera.backup_server, today, licensing_of):
            return True
    return False


def _check(camera_file: CameraFile, user) -> ImportCheck:
    servers = Server.objects.restrict(user)
    by_name = {server.name: server for server in servers}
    first_line: dict[str, int] = {}
    earlier: dict[int, list[Camera]] = {}  # primary server → the cameras of the good rows before this one
    results = []
    for row in camera_file.rows:
        if row.problems:  # its cells are not under their columns, or one is under no column: judged no further
            results.append(RowResult(row.line, "", list(row.problems)))
            continue
        data, errors = _form_data(row, camera_file.columns, by_name)
        name = row.cells.get("name", "")
        form = RowForm(data, user=user)
        valid = form.is_valid()
        unreadable = {f for f, _ in errors}  # the cell could not be read: that says it better than the form
        for field_name, refusals in form.errors.as_data().items():
            for refusal in refusals if field_name not in unreadable else ():
                for message in refusal.messages:
                    if refusal.code == "unique" and field_name == "name":
                        message = f"a camera named {name} already exists."
                    if not message.endswith(_RETYPE_NOTES):
                        errors.append((field_name, message))
        camera = form.instance  # Camera.clean counted the primary's stored cameras; add the file's earlier rows
        if camera.primary_server_id in earlier:
            for field_name, messages in _channels_with_earlier_rows(camera, earlier[camera.primary_server_id]).items():
                errors += [(field_name, m) for m in messages if (field_name, m) not in errors]
        if name and name in first_line:
            errors = [(f, m) for f, m in errors if f != "name"]
            errors.insert(0, ("name", f"camera {name} is also on line {first_line[name]} of this file."))
        first_line.setdefault(name, row.line)
        worded = [_word(row.line, camera_file.columns, f, m) for f, m in errors]
        result = RowResult(row.line, name, worded)
        if valid and not worded:
            result.camera = form.save(commit=False)  # what Create will save; the next rows count it
            result.camera.mode = result.camera.redundancy_mode
            earlier.setdefault(result.camera.primary_server_id, []).append(result.camera)
        results.append(result)
    return ImportCheck(results)


def _word(line: int, columns: dict[str, str], field_name: str, message: str) -> str:
    if field_name == "__all__":
        return f"line {line}: {message}"
    if field_name in ("width", "height") and "resolution" in columns:
        field_name = "resolution"
    column = columns.get(field_name) or BY_FIELD[field_name].label
    return f"line {line}, {column}: {message}"


def _form_data(row: Row, columns: dict[str, str], servers: dict[str, Server]) -> tuple[dict, list[tuple[str, str]]]:
    """What the Add camera form would have received for this row, and the cells that cannot be read."""
    cells, errors = row.cells, []
    data = {name: str(Camera._meta.get_field(name).default) for name in DEFAULTS}
    for name in ("name", "stream_url", "sub_stream_url", "onvif_url", "username", "password", "width", "height",
                 "fps", "expected_bitrate_kbps"):  # fmt: skip
        if cells.get(name):
            data[name] = cells[name]
    if cells.get("resolution"):
        match = re.fullmatch(r"(\d+)\s*[x×*]\s*(\d+)", cells["resolution"], re.IGNORECASE)
        if match:
            data["width"], data["height"] = match.groups()
        else:
            errors.append(("resolution", "write the width and the height, such as 1920x1080."))
    for name, choices in CHOICES.items():
        if cells.get(name):
            value = _choice(name, cells[name], choices)
            if value is None:
                known = ", ".join(choices.labels)
                errors.append((name, f"write one of {known}."))
            else:
                data[name] = value
    for name in ("primary_server", "backup_server"):
        if cells.get(name):
            server = _server(cells[name], servers)
            if server is None:
                errors.append((name, "no server of your systems has this name: write it as the Servers page does."))
            else:
                data[name] = str(server.pk)
    modules = [part.strip() for part in re.split(r"[|,;+/]", cells.get("analytics", "")) if part.strip()]
    data["analytics"] = []
    for module in modules:
        value = _choice("analytics", module, AnalyticsModule)
        if value is None:
            errors.append(("analytics", f"write {' or '.join(AnalyticsModule.labels)}, several separated by |."))
        else:
            data["analytics"].append(value)
    enabled = _key(cells.get("enabled", "")) or "yes"
    if enabled in TRUE:
        data["enabled"] = "on"
    elif enabled not in FALSE:
        errors.append(("enabled", "write yes or no."))
    return data, errors


def _choice(name: str, cell: str, choices) -> str | None:
    key = _key(cell)
    key = _key(CHOICE_ALIASES.get(name, {}).get(key, key))
    return next((value for value, label in choices.choices if key in (_key(value), _key(label))), None)


def _server(cell: str, servers: dict[str, Server]) -> Server | None:
    """A server of the user's systems by its name; another system's server is not named, as one that does not
    exist. A name in another case names the server when it names only one."""
    if cell in servers:
        return servers[cell]
    same = [server for name, server in servers.items() if name.lower() == cell.lower()]
    return same[0] if len(same) == 1 else None


def template_csv(servers) -> str:
    """The header and one example row, on the user's own servers where they have two of one system."""
    servers = list(servers.order_by("system__name", "name"))
    pairs = [(p, b) for p in servers for b in servers if p.system_id == b.system_id and p.pk != b.pk]
    primary, backup = pairs[0] if pairs else (servers[0] if servers else None, None)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([column.label for column in COLUMNS if column.field not in ("width", "height")])
    example = {"name": "Gate 1", "stream_url": "rtsp://192.168.1.10:554/stream1",
               "sub_stream_url": "rtsp://192.168.1.10:554/stream2",
               "onvif_url": "http://192.168.1.10/onvif/media_service", "username": "admin", "password": "change-me",
               "codec": "H.264", "rtsp_transport": "TCP", "resolution": "1920x1080", "fps": "25", "quality": "Medium",
               "expected_bitrate_kbps": "", "primary_server": primary.name if primary else "srv-a",
               "backup_server": backup.name if backup else ("" if primary else "srv-b"), "failover_priority": "Normal",
               "analytics": "Motion detection", "enabled": "yes"}  # fmt: skip
    writer.writerow([example[column.field] for column in COLUMNS if column.field not in ("width", "height")])
    return out.getvalue()
