"""Every Redis key of the live protocol has one home: ``protocol.live`` declares it, and nothing in the tree
uses a name it does not declare."""

import re
from pathlib import Path

from protocol import live

ROOT = Path(__file__).resolve().parents[2]
USE = re.compile(r"""\bkey\(\s*["']([a-z-]+)["']""")


def test_every_key_used_in_the_tree_is_declared_in_the_protocol():
    used: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        if {".venv", "node_modules"} & set(path.parts):
            continue
        for name in USE.findall(path.read_text(encoding="utf-8")):
            used.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    assert used, "the search finds the keys the code uses"
    undeclared = {name: sorted(paths) for name, paths in used.items() if name not in live.KEYS}
    assert undeclared == {}, undeclared
    doc = live.__doc__
    assert all(f"``{name}" in doc for name in live.KEYS), [n for n in live.KEYS if f"``{n}" not in doc]


def test_a_key_is_under_the_site_s_prefix(settings):
    settings.LIVE_KEY_PREFIX = "site-7"
    assert live.key("heartbeat", "srv-a") == "site-7:heartbeat:srv-a"
