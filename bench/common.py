"""What the benchmarks share: a scratch site directory, Django set up on it, child processes.

Import this module first: it points Django at a scratch VAR_DIR (SQLite database, recordings)
and a Redis key prefix of its own, so a benchmark never touches a real site's data.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SCRATCH = Path(tempfile.mkdtemp(prefix="bench-"))
os.environ.update({"VAR_DIR": str(SCRATCH), "DJANGO_SETTINGS_MODULE": "eocortex_web.settings",
                   "LIVE_KEY_PREFIX": f"bench-{os.getpid()}"})  # fmt: skip

import django  # noqa: E402

django.setup()


from simulation.identity import recorded_stamps  # noqa: E402,F401 (the benchmarks' reader of recordings)
from utilities.ports import free_port, free_port_block  # noqa: E402,F401 (a video server's API port, cameras')

OUT = ROOT / "bench" / "out"


def start(args: list[str], name: str, manage: bool = True, **env) -> subprocess.Popen:
    """A child process with its output in the scratch directory."""
    log = open(SCRATCH / f"{name}.log", "ab")  # noqa: SIM115 (inherited by the child)
    command = [sys.executable, str(ROOT / "manage.py"), *args] if manage else args
    return subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, **{k: str(v) for k, v in env.items()}})  # fmt: skip


def stop(process: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 40) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def empty_site() -> None:
    """A fresh scratch database and no live state of an earlier run under this prefix."""
    from django.core.management import call_command

    from protocol import live

    call_command("flush", interactive=False, verbosity=0)
    r = live.client()
    stale = list(r.scan_iter(live.key("*"), count=1000))
    for at in range(0, len(stale), 1000):
        r.delete(*stale[at : at + 1000])


def wait(condition, timeout: float, what: str) -> float:
    """Seconds until ``condition()`` held; a benchmark that waits longer than ``timeout`` stops and says for what."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if condition():
            return time.monotonic() - began
        time.sleep(0.1)
    raise SystemExit(f"bench: timed out after {timeout:.0f} s waiting for {what}")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]
