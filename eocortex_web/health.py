"""The web tier's health, for a load balancer and an orchestrator: ``/health/live`` answers 200 while the process
answers at all (it touches neither the database nor Redis: a restart would not bring those back), and
``/health/ready`` answers 200 when this process can serve pages, 503 when it cannot: the database answers
``SELECT 1`` and Redis (the master, when Sentinels name it) answers PING.

Each check opens a connection of its own and closes it (a pooled connection that is already open would answer
from a file moved away, or over a link cut since), with driver timeouts of CHECK_TIMEOUT, and both run side by side
on threads of their own, waited for at most CHECK_TIMEOUT: a probe never hangs on an unreachable host. A check
still running from an earlier probe is waited for again, not started twice.

``metrics`` is django-prometheus's page of the process's registry, asking for ``METRICS_TOKEN`` as a bearer token
when it is set (``utilities.bearer``), and in production served only then; the health checks never ask for one.

Neither health endpoint needs a sign-in or a CSRF token; all three take GET and HEAD only. Their bodies name each
check and say, in words and exception type names only, why it failed: no address, user name or password, which a
database's or Redis's error text may carry.
"""

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db import connections
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe
from django_prometheus.exports import ExportToDjangoView
from redis.backoff import NoBackoff
from redis.retry import Retry

from protocol.connections import redis_client
from utilities import bearer

log = logging.getLogger(__name__)

CHECK_TIMEOUT = 2.0  # seconds each check may take; a load balancer's probe usually waits 5 s

_checks = ThreadPoolExecutor(max_workers=4, thread_name_prefix="health")
_running: dict[str, Future] = {}
_running_lock = threading.Lock()


def database_answers() -> None:
    """``SELECT 1`` over a new connection to the default database, closed at once."""
    wrapper = connections["default"]
    params = wrapper.get_connection_params()
    if wrapper.vendor == "sqlite":
        # mode=rw: a database file that is gone is an error, not a new empty database made in its place.
        params.update(database=f"file:{quote(str(Path(params['database']).absolute()))}?mode=rw", uri=True,
                      timeout=CHECK_TIMEOUT)  # fmt: skip
    elif wrapper.vendor == "postgresql":
        params.setdefault("connect_timeout", max(2, round(CHECK_TIMEOUT)))  # libpq's least is 2 s
        params.setdefault("options", f"-c statement_timeout={int(CHECK_TIMEOUT * 1000)}")
    raw = wrapper.Database.connect(**params)
    try:
        cursor = raw.cursor()
        cursor.execute("SELECT 1")
        cursor.fetchone()
    finally:
        raw.close()


def redis_answers() -> None:
    """PING over a new client of the configured Redis (through the Sentinels, if any), closed at once."""
    client = redis_client(socket_timeout=CHECK_TIMEOUT, socket_connect_timeout=CHECK_TIMEOUT,
                          retry=Retry(NoBackoff(), 0))  # fmt: skip
    try:
        client.ping()
    finally:
        client.close()


CHECKS = {"database": database_answers, "redis": redis_answers}


def _started(name: str) -> Future:
    with _running_lock:
        future = _running.get(name)
        if future is None or future.done():
            future = _running[name] = _checks.submit(CHECKS[name])
        return future


def _outcome(future: Future, timeout: float) -> dict:
    try:
        future.result(timeout=max(0.0, timeout))
    except FutureTimeout:
        return {"ok": False, "detail": f"no answer within {CHECK_TIMEOUT:g} s"}
    except Exception as error:  # the type only: the text may name the host, the user or the password
        return {"ok": False, "detail": f"failed: {type(error).__name__}"}
    return {"ok": True, "detail": "answered"}


def run_checks() -> dict[str, dict]:
    """Every check's outcome, ``{"ok": bool, "detail": str}`` by name, within about CHECK_TIMEOUT in all."""
    started = {name: _started(name) for name in CHECKS}
    deadline = time.monotonic() + CHECK_TIMEOUT
    return {name: _outcome(future, deadline - time.monotonic()) for name, future in started.items()}


@csrf_exempt
@require_safe
@never_cache
def live(request):
    """200 while the process answers: nothing it depends on is asked."""
    return JsonResponse({"live": True})


@csrf_exempt
@require_safe
@never_cache
def ready(request):
    """200 when every check answered, else 503; the body names each check and its outcome."""
    checks = run_checks()
    failed = sorted(name for name, check in checks.items() if not check["ok"])
    if failed:
        log.warning("event=not_ready failed=%s %s", ",".join(failed),
                    " ".join(f"{name}={checks[name]['detail'].replace(' ', '_')}" for name in failed))  # fmt: skip
    response = JsonResponse({"ready": not failed, "checks": checks}, status=503 if failed else 200)
    # Its own line above says why; not Django's "Service Unavailable" error too, at every probe of an outage.
    response._has_been_logged = True
    return response


@csrf_exempt
@require_safe
@never_cache
def metrics(request):
    """django-prometheus's page of the process's registry; with ``METRICS_TOKEN`` set, for its bearer only. In
    production the web tier's port is the users' too: without a token its metrics (every system's server names)
    are not served at all."""
    if settings.PRODUCTION and not settings.METRICS_TOKEN:
        return HttpResponse("Not served: set METRICS_TOKEN to scrape the web tier's metrics in production.\n",
                            status=404, content_type="text/plain")  # fmt: skip
    if not bearer.allows(request.headers.get("Authorization"), settings.METRICS_TOKEN):
        response = HttpResponse("The metrics ask for the scrape token (METRICS_TOKEN) as a bearer token.\n",
                                status=401, content_type="text/plain")  # fmt: skip
        response["WWW-Authenticate"] = bearer.CHALLENGE
        return response
    return ExportToDjangoView(request)
