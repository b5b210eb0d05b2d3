"""LOG_FORMAT=json: one JSON object a line, the product's key=value pairs as fields of their own."""

import json
import logging
import subprocess
import sys
from pathlib import Path

from utilities.logformat import JsonLines, pairs

ROOT = Path(__file__).resolve().parents[2]


def _line(message, *args, exc_info=None):
    record = logging.LogRecord("redundancy.engine", logging.INFO, __file__, 1, message, args, exc_info)
    return json.loads(JsonLines().format(record))


def test_pairs_become_fields_beside_the_whole_message():
    line = _line("camera=%s event=%s incident=%s primary=%s reason=%r", 12, "failover_started", 40, "srv-a",
                 "no frames for 1.6 s")  # fmt: skip
    assert line["camera"] == 12 and line["incident"] == 40
    assert line["event"] == "failover_started" and line["primary"] == "srv-a"
    assert line["reason"] == "no frames for 1.6 s"  # %r's quotes gone
    assert line["message"].startswith("camera=12 event=failover_started")
    assert line["level"] == "INFO" and line["logger"] == "redundancy.engine"
    assert line["time"].endswith("+00:00")


def test_numbers_read_as_numbers_and_the_rest_as_text():
    assert pairs("tick=1.50s passes=3 open_seconds=0.412 worker=engine-1 empty=") == {
        "tick": "1.50s", "passes": 3, "open_seconds": 0.412, "worker": "engine-1", "empty": ""}  # fmt: skip


def test_a_pair_named_like_a_standard_field_does_not_replace_it():
    line = _line("event=x message=hello level=9")
    assert line["level"] == "INFO" and line["field_level"] == 9
    assert line["field_message"] == "hello" and line["message"] == "event=x message=hello level=9"


def test_words_without_pairs_and_an_exception_stay_whole():
    try:
        raise ValueError("boom")
    except ValueError:
        line = _line("the supervisor stopped", exc_info=sys.exc_info())
    assert line["message"] == "the supervisor stopped"
    assert "ValueError: boom" in line["exception"]


def test_a_quoted_value_with_spaces_and_quotes_inside_is_one_field():
    assert pairs("""camera=3 reason="it's gone" note='a b' after=1""") == {
        "camera": 3, "reason": "it's gone", "note": "a b", "after": 1}  # fmt: skip


def _run(env_format: str | None, code: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "VAR_DIR": str(ROOT / "var" / "test-logformat"), "DJANGO_SETTINGS_MODULE":
           "eocortex_web.settings"}  # fmt: skip
    if env_format is not None:
        env["LOG_FORMAT"] = env_format
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


LOG_ONE_LINE = ("import django; django.setup(); import logging; "
                "logging.getLogger('x').warning('server=%s event=y', 'srv-a')")


def test_the_setting_chooses_json_and_text_stays_the_default():
    text = _run(None, LOG_ONE_LINE)
    assert text.returncode == 0, text.stderr
    assert text.stderr.strip().endswith("WARNING x server=srv-a event=y")
    as_json = _run("json", LOG_ONE_LINE)
    assert as_json.returncode == 0, as_json.stderr
    line = json.loads(as_json.stderr.strip().splitlines()[-1])
    assert line["server"] == "srv-a" and line["event"] == "y" and line["level"] == "WARNING"


def test_an_unknown_format_is_refused_by_name():
    result = _run("xml", "import django; django.setup()")
    assert result.returncode != 0
    assert "LOG_FORMAT must be text or json, not 'xml'" in result.stderr
