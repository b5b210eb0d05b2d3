"""The project's own commands as child processes of tests and benchmarks: where the checkout is, a Procfile
line as a command of this interpreter, and a stop that always ends the process."""

import shlex
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the checkout: manage.py and the Procfile


def procfile_command(name: str) -> list[str]:
    """A Procfile line as a command of this interpreter (``celery`` is ``python -m celery``)."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            words = shlex.split(line.split(":", 1)[1])
            if words[0] == "python":
                return [sys.executable, *words[1:]]
            return [sys.executable, "-m", *words] if words[0] == "celery" else words
    raise LookupError(name)


def stop_process(process: subprocess.Popen, grace: float = 20.0) -> None:
    """SIGTERM, then SIGKILL if it has not ended within ``grace`` seconds; a stopped (SIGSTOP) one is woken first."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGCONT)
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
