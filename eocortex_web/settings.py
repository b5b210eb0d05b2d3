"""Settings for the camera redundancy web application.

Every knob is read from the environment here, once. ``DJANGO_ENV=development`` (the
default) works out of the box: SQLite and generated secrets under ``var/``.
``DJANGO_ENV=production`` refuses to start without the secrets an operator must set.
"""

import secrets
from datetime import timedelta
from pathlib import Path

import environ
from cryptography.fernet import Fernet
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from eocortex_web import redis_settings

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

VAR_DIR = Path(env("VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DJANGO_ENV = env("DJANGO_ENV", default="development")
if DJANGO_ENV not in ("development", "production"):
    raise ImproperlyConfigured(f"DJANGO_ENV must be 'development' or 'production', not {DJANGO_ENV!r}")
PRODUCTION = DJANGO_ENV == "production"


def _development_secret(name: str, make) -> str:
    """A secret kept under var/ so restarts of a development site keep sessions and data readable."""
    path = VAR_DIR / name
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


def _required_in_production(name: str, dev_file: str, make) -> str:
    value = env(name, default="")
    if value:
        return value
    if PRODUCTION:
        raise ImproperlyConfigured(f"{name} must be set in the environment when DJANGO_ENV=production")
    return _development_secret(dev_file, make)


SECRET_KEY = _required_in_production("SECRET_KEY", "secret_key", lambda: secrets.token_urlsafe(50))

# Fernet keys for camera credentials at rest, comma separated, newest first (rotation).
CREDENTIALS_KEYS = _required_in_production(
    "CREDENTIALS_KEYS", "credentials.key", lambda: Fernet.generate_key().decode()
).split(",")

DEBUG = env.bool("DEBUG", default=not PRODUCTION)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[] if PRODUCTION else ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# HTTPS. Production assumes the site is served over TLS (directly or behind a proxy that sets
# X-Forwarded-Proto when SECURE_PROXY_SSL_HEADER is on); each knob can be turned off explicitly.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=PRODUCTION)
SECURE_REDIRECT_EXEMPT = [r"^health/(live|ready)$", r"^metrics$"]  # probes and scrapes of the local network
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=PRODUCTION)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=PRODUCTION)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=PRODUCTION)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=PRODUCTION)
if env.bool("SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# Content-Security-Policy (django-csp) on every response, static files included. Pages load
# only their own scripts and styles: no inline code, handlers or style attributes (templates use
# data- attributes read by static/js/). The one exception is the Swagger UI page (/api/docs/),
# whose template (templates/drf_spectacular/swagger_ui.html) marks its inline init script and
# style with the request's nonce; NONCE is dropped from the header of every page that uses none.
# connect-src 'self' covers the live page's ws:/wss: socket to the same host (CSP Level 3).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, NONCE],
        "img-src": [SELF, "data:", "blob:"],
        "connect-src": [SELF],
        "frame-ancestors": [NONE],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
    }
}

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=12 * 3600)  # an operator's shift

INSTALLED_APPS = [
    "daphne",
    "eocortex_web.admin_site.SiteAdminConfig",  # django.contrib.admin, for unlimited users only
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "utilities",  # its template tags (moments)
    "channels",
    "axes",
    "csp",
    "django_prometheus",  # the web tier's request metrics at /metrics
    "servers",
    "cameras",
    "recording",
    "redundancy",
    "capacity",
    "playback",
    "reports",
    "simulation",  # development and test tools: simulated cameras, frame identity, the demo site
    "accounts",  # last: its roles are built from every other app's permissions
]

MIDDLEWARE = [
    # First and (but for django-axes) last: every request counted and timed by view and status (/metrics).
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",  # before WhiteNoise, so static files carry the policy too
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.audit.AuditMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its lockout response.
    "axes.middleware.AxesMiddleware",
]

# Login throttling (django-axes): after AXES_FAILURE_LIMIT wrong passwords for one user name
# from one address, that pair is locked out for AXES_COOLOFF_MINUTES.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_IPWARE_PROXY_COUNT = env.int("AXES_PROXY_COUNT", default=0)

ROOT_URLCONF = "eocortex_web.urls"
WSGI_APPLICATION = "eocortex_web.wsgi.application"
ASGI_APPLICATION = "eocortex_web.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Agents and the web app write concurrently; wait for the lock instead of failing at once.
    # WAL lets readers work beside the writer; IMMEDIATE avoids lock upgrades that fail at once.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
    # Tests run agents in threads and processes of their own: they need a file, not memory.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
# Redis under Sentinel (three Sentinels, quorum 2): their addresses (host:port, comma separated), the name they
# monitor the master by, and their own password if they require one. With Sentinels set, REDIS_URL gives only
# the database number and the master's password: its host and port are ignored, the Sentinels name the master.
# Every use of Redis follows them: the live state (protocol/connections.py), Celery's broker, Channels, the cache.
REDIS_SENTINELS = redis_settings.parse_sentinels(env.list("REDIS_SENTINELS", default=[]))
REDIS_SENTINEL_MASTER = env("REDIS_SENTINEL_MASTER", default="eocortex")
REDIS_SENTINEL_PASSWORD = env("REDIS_SENTINEL_PASSWORD", default="")
redis_deployment = (REDIS_URL, REDIS_SENTINELS, REDIS_SENTINEL_MASTER, REDIS_SENTINEL_PASSWORD)
# Namespace of the live state (heartbeats, stream health, snapshots) in Redis.
LIVE_KEY_PREFIX = env("LIVE_KEY_PREFIX", default="cr")

CACHES = {"default": redis_settings.cache(*redis_deployment)}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # Live pages renew their group membership every minute; a dead one drops out in ten. Its host's read
        # timeout outlasts channels-redis's blocking reads (redis_settings.CHANNELS_SOCKET_TIMEOUT says why).
        "CONFIG": {
            "hosts": [redis_settings.channel_layer_host(*redis_deployment)],
            "group_expiry": 600,
            "capacity": 500,
        },
    },
}

# The target policy (utilities/targets.py): no stream or SMTP host on this machine or on
# link-local addresses, and recordings under one root. Development keeps the demo's loopback cameras.
DENY_LOCAL_TARGETS = env.bool("DENY_LOCAL_TARGETS", default=PRODUCTION)
RECORDINGS_ROOT = env("RECORDINGS_ROOT", default=str(VAR_DIR / "recordings") if PRODUCTION else "")

# Live pages one user may keep open at once (each socket reads and sends the whole status when it opens or falls
# behind, and computes it every second while nothing is published).
LIVE_SOCKETS_PER_USER = env.int("LIVE_SOCKETS_PER_USER", default=20)

# An explicit CELERY_BROKER_URL wins; a sentinel:// one takes the master's name and the Sentinels' password above.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="") or redis_settings.broker_url(REDIS_URL, REDIS_SENTINELS)
CELERY_BROKER_TRANSPORT_OPTIONS = redis_settings.broker_transport_options(
    CELERY_BROKER_URL, REDIS_SENTINEL_MASTER, REDIS_SENTINEL_PASSWORD
)
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"

# Video-server agents (python manage.py run_video_server --server NAME).
AGENT_HEARTBEAT_SECONDS = env.float("AGENT_HEARTBEAT_SECONDS", default=0.5)
AGENT_HANDOVER_TIMEOUT_SECONDS = env.float("AGENT_HANDOVER_TIMEOUT_SECONDS", default=20.0)
AGENT_SWEEP_SECONDS = env.float("AGENT_SWEEP_SECONDS", default=5.0)
AGENT_OPEN_TIMEOUT_SECONDS = env.float("AGENT_OPEN_TIMEOUT_SECONDS", default=2.0)
AGENT_READ_TIMEOUT_SECONDS = env.float("AGENT_READ_TIMEOUT_SECONDS", default=2.0)
AGENT_SEGMENT_SECONDS = env.float("AGENT_SEGMENT_SECONDS", default=10.0)
# Backup readiness (recording/readiness.py): each backup opens every camera it backs up and reads a keyframe, once
# per period, each camera at its own moment within it, and at once when asked (polled this often); an open and the
# first keyframe may take this long.
BACKUP_CHECK_HOURS = env.float("BACKUP_CHECK_HOURS", default=24.0)
BACKUP_CHECK_TIMEOUT_SECONDS = env.float("BACKUP_CHECK_TIMEOUT_SECONDS", default=10.0)
BACKUP_CHECK_POLL_SECONDS = env.float("BACKUP_CHECK_POLL_SECONDS", default=2.0)

# The redundancy engine (python manage.py run_engine: its own loop, woken by events; these are its backstop
# period, windows and hold-downs; workers share the multiserver systems by leases of ENGINE_LEASE_SECONDS).
ENGINE_LEASE_SECONDS = env.float("ENGINE_LEASE_SECONDS", default=3.0)
ENGINE_TICK_SECONDS = env.float("ENGINE_TICK_SECONDS", default=1.0)
ENGINE_NORMAL_WINDOW_SECONDS = env.float("ENGINE_NORMAL_WINDOW_SECONDS", default=30.0)
ENGINE_FAST_WINDOW_SECONDS = env.float("ENGINE_FAST_WINDOW_SECONDS", default=1.5)
ENGINE_HOLD_DOWN_SECONDS = env.float("ENGINE_HOLD_DOWN_SECONDS", default=10.0)
ENGINE_LONGEST_HOLD_DOWN_SECONDS = env.float("ENGINE_LONGEST_HOLD_DOWN_SECONDS", default=1800.0)
# The engine worker's metrics (Prometheus) and health on this address and port (redundancy/metrics.py); each worker of
# one host needs its own port (run_engine --metrics-port); 0: none.
ENGINE_METRICS_ADDRESS = env("ENGINE_METRICS_ADDRESS", default="127.0.0.1")
ENGINE_METRICS_PORT = env.int("ENGINE_METRICS_PORT", default=9108)
MAIL_QUEUE = "mail"  # the mail outbox's worker: slow mail servers never hold up the engine
# An export's MP4 stays on the web application's host this long after it is made, then goes with its job.
EXPORT_KEEP_HOURS = env.float("EXPORT_KEEP_HOURS", default=72.0)
EXPORT_QUEUE = "export"  # recordings stitched into MP4 files: minutes of work that must hold up nobody else
CELERY_TASK_ROUTES = {"redundancy.send_mail": {"queue": MAIL_QUEUE},
                      "playback.export": {"queue": EXPORT_QUEUE}}
# Periodic tasks, sent by the engine worker that holds the schedule's lease (redundancy/schedule.py; there is no
# beat process): name → the task, its period in seconds and the options it is sent with.
PERIODIC_TASKS = {
    # The engine wakes the mail worker when it has mail; this sweep sends retries and lost wake-ups.
    "redundancy-mail": {
        "task": "redundancy.send_mail",
        "schedule": 10.0,
        "options": {"queue": MAIL_QUEUE, "expires": 10},
    },
    "playback-expire-exports": {
        "task": "playback.expire_exports",
        "schedule": 3600.0,
        "options": {"queue": EXPORT_QUEUE, "expires": 3600},
    },
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "servers:list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# Outgoing mail. EMAIL_URL (smtp://user:password@host:587/?tls=True) configures it from the
# environment; otherwise development sites write mail to files under var/mail and the
# mail settings form supplies SMTP per multiserver system.
EMAIL_FROM_ENVIRONMENT = bool(env("EMAIL_URL", default=""))
if EMAIL_FROM_ENVIRONMENT:
    vars().update(env.email_url("EMAIL_URL"))
else:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = VAR_DIR / "mail"
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="redundancy@localhost")
# Seconds an SMTP server may take to answer, on every path (EMAIL_URL and each system's settings).
EMAIL_TIMEOUT = env.float("EMAIL_TIMEOUT", default=10.0)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: an unauthenticated API call then gets 401 with a WWW-Authenticate header.
        "eocortex_web.throttles.ThrottledTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_THROTTLE_CLASSES": [
        "eocortex_web.throttles.UserRateThrottle",
        "eocortex_web.throttles.AnonRateThrottle",
        "eocortex_web.throttles.ScopedRateThrottle",
    ],
    # Requests per second, minute, hour or day; a scope's view names it in ``throttle_scope``.
    "DEFAULT_THROTTLE_RATES": {
        "user": env("API_RATE_USER", default="3000/min"),
        "anon": env("API_RATE_ANON", default="60/min"),
        "failed-token": env("API_RATE_FAILED_TOKEN", default="20/min"),
        "capacity": env("API_RATE_CAPACITY", default="60/min"),
        "capacity-proposal": env("API_RATE_CAPACITY_PROPOSAL", default="10/min"),
    },
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.ModelPermissions"],
    "DEFAULT_FILTER_BACKENDS": [
        "accounts.scope.ScopedFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "eocortex_web.api_classes.Pagination",
    "DEFAULT_PARSER_CLASSES": [
        "eocortex_web.api_classes.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "utilities.serializers.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Camera redundancy API",
    "DESCRIPTION": "Configure primary and backup video servers per camera, licenses and redundancy modes.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "COMPONENT_SPLIT_REQUEST": True,
    # Served from this site: operators' networks often have no way out to a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# When set, every tier's /metrics (the web tier's, each engine worker's, each agent's) asks for it as
# "Authorization: Bearer <token>"; the health checks stay open. Empty: the metrics are open (keep them on the
# monitoring network).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Console lines as text (``key=value`` after the time, level and logger) or, with LOG_FORMAT=json, one JSON object a
# line whose ``key=value`` pairs are fields of their own, for a log collector (utilities/logformat.py).
LOG_FORMAT = env.str("LOG_FORMAT", default="text")
if LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be text or json, not {LOG_FORMAT!r}.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
                   "json": {"()": "utilities.logformat.JsonLines"}},  # fmt: skip
    "handlers": {"console": {"class": "logging.StreamHandler",
                             "formatter": "json" if LOG_FORMAT == "json" else "plain"}},  # fmt: skip
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    # django-axes says hello at every start; its lockouts are warnings and still show.
    "loggers": {"axes": {"level": "WARNING"}},
}
