"""Log lines as JSON, one object a line, for a log collector (``LOG_FORMAT=json``).

The product's lines are ``key=value`` pairs (``camera=12 event=failover_started server=srv-a incident=40``); here
each pair becomes a field of its own beside the time (UTC, ISO 8601), the level and the logger, so a collector
filters on ``camera`` or ``incident`` without a parsing rule of its own. The message stays whole in ``message``.
A value is a number when it reads as one, a quoted value (``reason='no frames'``, as ``%r`` writes it) loses its
quotes. Pairs never replace the standard fields: a pair named like one is kept under ``field_<name>``.
"""

import ast
import json
import logging
import re
from datetime import UTC, datetime

STANDARD = frozenset({"time", "level", "logger", "message", "exception", "process", "thread"})
# key=value, key='quoted value' or key="quoted value"; keys as the product writes them.
PAIR = re.compile(r"""(?:^|\s)([a-z][a-z0-9_]*)=('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\S*)""")
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _value(text: str):
    if text[:1] in ("'", '"') and len(text) > 1 and text[-1] == text[0]:
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text[1:-1]
    if NUMBER.fullmatch(text):
        return float(text) if "." in text else int(text)
    return text


def pairs(message: str) -> dict:
    """The ``key=value`` pairs of a message, in order; a key written twice keeps its last value."""
    return {key: _value(value) for key, value in PAIR.findall(message)}


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
            "process": record.process,
            "thread": record.threadName,
        }
        for key, value in pairs(message).items():
            line[f"field_{key}" if key in STANDARD else key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.stack_info:
            line["exception"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)
