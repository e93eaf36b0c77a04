"""Settings for the plugin execution engine.

Every value an operator may change comes from an environment variable with a
safe default; `.env.example` lists them all.
"""

import os
import secrets
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))


def env_str(name, default=""):
    return os.environ.get(name, default)


def env_bool(name, default=False):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name, default):
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_list(name, default=""):
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)


def _persistent_secret_key():
    """A random key kept in VAR_DIR, so every process of one node shares it
    without an operator having to invent one; set SECRET_KEY for several nodes."""
    key_file = VAR_DIR / "secret_key"
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return key_file.read_text().strip()
    key = secrets.token_urlsafe(50)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


SECRET_KEY = env_str("SECRET_KEY") or _persistent_secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")

INSTALLED_APPS = [
    "observability.apps.EngineAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_prometheus",
    # The project's apps, each depending only on those above it.
    "core",
    "audit",
    "quotas",
    "plugins",
    "executions",
    "observability",
    # After executions, whose `qcluster` command (the engine's cluster) takes
    # precedence over django-q2's own.
    "django_q",
]

MIDDLEWARE = [
    # First and last, so that django-prometheus times the whole request.
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "core.middleware.TolerateTrailingSlash",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "quotas.middleware.RateLimitHeadersMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "executor_project.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

WSGI_APPLICATION = "executor_project.wsgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}",
        conn_max_age=60,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web and cluster processes write concurrently: WAL lets readers run beside
    # the writer, IMMEDIATE makes writers queue for `timeout` seconds instead
    # of failing with "database is locked" on lock upgrade. Connections are
    # kept (per thread) rather than reopened, with their PRAGMAs, per request.
    DATABASES["default"]["CONN_MAX_AGE"] = None
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000; "
        f"PRAGMA wal_autocheckpoint={env_int('SQLITE_WAL_AUTOCHECKPOINT', 1000)};",
    }
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
# Seconds a connection is kept after a request ends (empty: for ever). The
# gevent web sets 0 (gunicorn.conf.py): its connections belong to a
# request's greenlet and must be closed when it ends, not left to the
# garbage collector, which let them pile up, open, by the hundred.
if env_str("DB_CONN_MAX_AGE"):
    DATABASES["default"]["CONN_MAX_AGE"] = env_int("DB_CONN_MAX_AGE", 0)
# PostgreSQL connections a process keeps in a pool, at most (0: none, a
# connection per request or per process); gunicorn.conf.py sets it for the
# web, whose requests then take one while they work and give it back while
# they wait for a run (docs/operations.md#several-nodes, the connection budget).
POSTGRES_CONNECTION_POOL = env_int("POSTGRES_CONNECTION_POOL", 0)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and POSTGRES_CONNECTION_POOL:
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1, "max_size": POSTGRES_CONNECTION_POOL, "timeout": 10,
    }
# django-prometheus's drop-in backends count queries, errors and their latency;
# SQLite's is wrapped once more, to pool a gevent web's connections.
DATABASES["default"]["ENGINE"] = DATABASES["default"]["ENGINE"].replace(
    "django.db.backends.", "django_prometheus.db.backends."
).replace("django_prometheus.db.backends.sqlite3", "executor_project.pooled_sqlite3")
# Connections a process keeps for its next requests (0: none); only for a
# process that never forks (gunicorn.conf.py sets it for the web).
SQLITE_CONNECTION_POOL = env_int("SQLITE_CONNECTION_POOL", 0)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# Times in the admin to the second with their zone (core/formats/en/formats.py).
FORMAT_MODULE_PATH = ["core.formats"]

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    # The embedded default needs a cache every process sees without a server.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["quotas.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "core.envelope.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "core.openapi.EnvelopeAutoSchema",
    "UNAUTHENTICATED_USER": None,
}

# Optional JWT bearer tokens, for deployments that already issue them. Set
# JWT_KEY (the HMAC secret, or the PEM public key for RS*/ES*/EdDSA) to enable.
JWT_KEY = env_str("JWT_KEY").replace("\\n", "\n")
JWT_ALGORITHMS = env_list("JWT_ALGORITHMS", "HS256")
JWT_ISSUER = env_str("JWT_ISSUER")
JWT_AUDIENCE = env_str("JWT_AUDIENCE")
JWT_ORGANIZATION_CLAIM = env_str("JWT_ORGANIZATION_CLAIM", "org")
JWT_ACTOR_CLAIM = env_str("JWT_ACTOR_CLAIM", "sub")
JWT_STAFF_CLAIM = env_str("JWT_STAFF_CLAIM", "staff")
AUTH_FAILURES_PER_MINUTE = env_int("AUTH_FAILURES_PER_MINUTE", 30)
# Reverse proxies (addresses or CIDR networks) whose X-Forwarded-For is
# believed for the client address (core.client_address); empty: none.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES")

# Execution limits (docs/operations.md).
PORT = env_int("PORT", 3000)
MIN_WORKERS = env_int("MIN_WORKERS", 2)
MAX_WORKERS = env_int("MAX_WORKERS", 10)
MAX_MEMORY_MB = env_int("MAX_MEMORY_MB", 512)
DEFAULT_TIMEOUT_MS = env_int("DEFAULT_TIMEOUT_MS", 30000)
MAX_TIMEOUT_MS = 300000
QUEUE_LIMIT = env_int("QUEUE_LIMIT", 100)
# Each priority's queue has its own limit (default QUEUE_LIMIT), so that a
# flood of one tier cannot fill the queue another tier's runs need.
QUEUE_LIMITS = {
    "high": env_int("QUEUE_LIMIT_HIGH", QUEUE_LIMIT),
    "medium": env_int("QUEUE_LIMIT_MEDIUM", QUEUE_LIMIT),
    "low": env_int("QUEUE_LIMIT_LOW", QUEUE_LIMIT),
}
# An action that declares a timeoutMs above LONG_RUN_MS is a long one: long
# runs may hold every worker of a priority but SHORT_RUN_WORKERS, and queue
# against a limit of their own, so trivial calls never wait behind them.
LONG_RUN_MS = env_int("LONG_RUN_MS", 10000)
SHORT_RUN_WORKERS = env_int("SHORT_RUN_WORKERS", 1)
# What the memory limits of the runs on this node may add up to; a run that
# would go over waits in the queue for room (default: 3/4 of the host's RAM).
SANDBOX_MEMORY_BUDGET_MB = env_int(
    "SANDBOX_MEMORY_BUDGET_MB", os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 3 // 4 // (1 << 20)
)
WORKER_RECYCLE = env_int("WORKER_RECYCLE", 100)
# How much lower than the web's the clusters' CPU priority is (nice(2); their
# workers and sandboxed children inherit it).
CLUSTER_NICENESS = env_int("CLUSTER_NICENESS", 5)
ALLOWED_DOMAINS = env_list("ALLOWED_DOMAINS")
# Result cache (executions.cache): fresh for CACHE_TTL ms, then kept as a
# possible stale fallback for CACHE_STALE_SECONDS more, at most
# CACHE_MAX_ENTRIES entries; results over the threshold are stored zlib'd.
CACHE_ENABLED = env_bool("CACHE_ENABLED", True)
CACHE_TTL_MS = env_int("CACHE_TTL", 300000)
CACHE_MAX_ENTRIES = env_int("CACHE_MAX_ENTRIES", 1000)
CACHE_STALE_SECONDS = env_int("CACHE_STALE_SECONDS", 3600)
CACHE_COMPRESS_THRESHOLD_BYTES = env_int("CACHE_COMPRESS_THRESHOLD_BYTES", 4096)

# Recovery (executions.recovery, executions.breaker).
RETRY_MAX_RETRIES = env_int("RETRY_MAX_RETRIES", 3)
RETRY_BACKOFF_SECONDS = [float(s) for s in env_list("RETRY_BACKOFF_SECONDS", "1,2,4")]
RETRY_JITTER_FRACTION = float(env_str("RETRY_JITTER_FRACTION", "0.1"))
BREAKER_FAILURE_THRESHOLD = env_int("BREAKER_FAILURE_THRESHOLD", 5)
BREAKER_OPEN_SECONDS = env_int("BREAKER_OPEN_SECONDS", 60)
BREAKER_HALF_OPEN_PROBES = env_int("BREAKER_HALF_OPEN_PROBES", 3)
OWNER_NOTIFY_INTERVAL_SECONDS = env_int("OWNER_NOTIFY_INTERVAL_SECONDS", 600)
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "plugin-engine@localhost")
MAX_REQUEST_BYTES = env_int("MAX_REQUEST_BYTES", 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BYTES
MAX_RESULT_BYTES = 1024 * 1024
MAX_LOG_BYTES = 64 * 1024
# Lines count as well as bytes: a million empty lines weigh nothing in bytes.
MAX_LOG_LINES = env_int("MAX_LOG_LINES", 1000)

# The sandbox (docs/security.md). Required layers default to every layer, so a
# host that lacks one refuses to run plugins until an operator decides.
SANDBOX_REQUIRED_LAYERS = env_list("SANDBOX_REQUIRED_LAYERS", "all")
SANDBOX_UID_BASE = env_int("SANDBOX_UID_BASE", 200000)
SANDBOX_SLOTS = env_int("SANDBOX_SLOTS", 64)
SANDBOX_LOCK_DIR = env_str("SANDBOX_LOCK_DIR", str(VAR_DIR / "run" / "sandbox"))
# The most a manifest's limits.scratchMb may ask for (a run's private tmpfs;
# without it, 16 MiB). What a run stores there counts against its memory.
SANDBOX_MAX_SCRATCH_MB = env_int("SANDBOX_MAX_SCRATCH_MB", 256)
# Plugin dependencies (docs/plugins.md#dependencies). The operator's shared
# packages: a virtualenv (or a site-packages directory) every run may import
# from, mounted read-only; empty for none (`make shared-packages` builds
# var/shared-packages, which `make run` and `make test` use).
SANDBOX_SHARED_PACKAGES = env_str("SANDBOX_SHARED_PACKAGES", "")
# Where each node unpacks the wheels plugin versions vendor, once per version.
PLUGIN_PACKAGES_DIR = env_str("PLUGIN_PACKAGES_DIR", str(VAR_DIR / "plugin-packages"))
# One vendored wheel as uploaded, and all of a version's wheels once unpacked.
PLUGIN_WHEEL_MAX_BYTES = env_int("PLUGIN_WHEEL_MAX_BYTES", 4 * 1024 * 1024)
PLUGIN_VENDOR_MAX_UNPACKED_BYTES = env_int("PLUGIN_VENDOR_MAX_UNPACKED_BYTES", 32 * 1024 * 1024)
EGRESS_RATE_LIMIT_PER_MINUTE = env_int("EGRESS_RATE_LIMIT_PER_MINUTE", 10)
EGRESS_MAX_RESPONSE_BYTES = env_int("EGRESS_MAX_RESPONSE_BYTES", 1024 * 1024)
EGRESS_TIMEOUT_SECONDS = env_int("EGRESS_TIMEOUT_SECONDS", 10)

# Callbacks of asynchronous runs (executions.callbacks): hosts (names or IP
# addresses, as written in the URL) a callbackUrl may name even though they
# are private, loopback or link-local; empty: none. Each attempt is bounded by
# CALLBACK_TIMEOUT_SECONDS; a failed one is tried again after
# CALLBACK_RETRY_BASE_SECONDS, doubling up to CALLBACK_RETRY_MAX_SECONDS, for
# CALLBACK_MAX_ATTEMPTS in all. Each cluster's courier looks for deliveries
# due again every CALLBACK_POLL_SECONDS (new ones wake it at once).
CALLBACK_ALLOWED_HOSTS = env_list("CALLBACK_ALLOWED_HOSTS")
CALLBACK_TIMEOUT_SECONDS = float(env_str("CALLBACK_TIMEOUT_SECONDS", "10"))
CALLBACK_MAX_ATTEMPTS = env_int("CALLBACK_MAX_ATTEMPTS", 8)
CALLBACK_RETRY_BASE_SECONDS = float(env_str("CALLBACK_RETRY_BASE_SECONDS", "10"))
CALLBACK_RETRY_MAX_SECONDS = float(env_str("CALLBACK_RETRY_MAX_SECONDS", "600"))
CALLBACK_POLL_SECONDS = float(env_str("CALLBACK_POLL_SECONDS", "1"))
# POST /execute/batch: at most this many items per request.
EXECUTE_BATCH_MAX_ITEMS = env_int("EXECUTE_BATCH_MAX_ITEMS", 20)

# Plugin signatures (plugins.signing): base64 raw Ed25519 public keys of the
# publishers this operator trusts; when required, unsigned uploads are refused.
PLUGIN_TRUSTED_KEYS = env_list("PLUGIN_TRUSTED_KEYS")
PLUGIN_REQUIRE_SIGNATURE = env_bool("PLUGIN_REQUIRE_SIGNATURE", False)
# Organizations' stored secrets (quotas.secrets): Fernet keys, the first
# encrypts and all decrypt. Empty: one derived from SECRET_KEY.
SECRETS_ENCRYPTION_KEYS = env_list("SECRETS_ENCRYPTION_KEY")

# django-q2 clusters, one per tier priority (one queue, its own workers), so a
# high-priority run never waits behind a low-priority backlog. Every
# `qcluster` process serves the cluster named by its Q_CLUSTER_NAME; its
# workers take runs straight from the executions table
# (executions.queue.cluster), so django-q2's broker carries no task: it only
# holds the clusters' heartbeats (in the cache).
PRIORITY_CLUSTERS = {"high": "executor-high", "medium": "executor-medium", "low": "executor-low"}
PRIORITY_WORKERS = {
    "high": env_int("WORKERS_HIGH", max(1, MAX_WORKERS * 4 // 10)),
    "medium": env_int("WORKERS_MEDIUM", max(1, MAX_WORKERS * 3 // 10)),
    "low": env_int("WORKERS_LOW", max(1, MAX_WORKERS * 3 // 10)),
}
# The elastic pool (executions.queue.scaling): each cluster keeps at least its
# minimum of workers warm (default: its share of MIN_WORKERS, at least one)
# and grows to its maximum above (WORKERS_HIGH/_MEDIUM/_LOW) while its queue
# is deep, its workers busy or its runs waiting; a worker idle for
# WORKER_IDLE_TIMEOUT seconds is let go.
PRIORITY_MIN_WORKERS = {
    priority: min(maximum, env_int(f"WORKERS_MIN_{priority.upper()}", max(1, MIN_WORKERS * share // 10)))
    for (priority, maximum), share in zip(PRIORITY_WORKERS.items(), (4, 3, 3))
}
WORKER_IDLE_TIMEOUT = env_int("WORKER_IDLE_TIMEOUT", 300)
SCALE_UP_QUEUE_DEPTH = env_int("SCALE_UP_QUEUE_DEPTH", 50)
SCALE_UP_UTILIZATION = float(env_str("SCALE_UP_UTILIZATION", "0.8"))
SCALE_UP_WAIT_SECONDS = float(env_str("SCALE_UP_WAIT_SECONDS", "1"))
# Each cluster's sentinel sweeps its queue this often: runs of dead workers,
# expired leases, queued runs past their start deadline (executions.reaper).
REAPER_INTERVAL_SECONDS = float(env_str("REAPER_INTERVAL_SECONDS", "1"))
# On SIGTERM a cluster lets its workers finish their runs for this long, then
# kills them and gives their runs back.
SHUTDOWN_GRACE_SECONDS = env_int("SHUTDOWN_GRACE_SECONDS", 30)
# /health: unhealthy when a queue's oldest run has waited this long while its
# clusters have idle workers; degraded while a process restart is this recent.
HEALTH_STALL_SECONDS = env_int("HEALTH_STALL_SECONDS", 10)
HEALTH_RESTART_WINDOW_SECONDS = env_int("HEALTH_RESTART_WINDOW_SECONDS", 300)
Q_CLUSTER = {
    "name": "executor",
    "orm": "default",
    "workers": MAX_WORKERS,
    "recycle": WORKER_RECYCLE,
    # No task goes through django-q2's broker; these only keep its
    # configuration check quiet (each run is timed by its worker's sentinel).
    "timeout": MAX_TIMEOUT_MS // 1000 + 30,
    "retry": MAX_TIMEOUT_MS // 1000 + 60,
    "catch_up": False,
    "label": "Task queue",
    "ALT_CLUSTERS": {
        cluster: {"workers": PRIORITY_WORKERS[priority]}
        for priority, cluster in PRIORITY_CLUSTERS.items()
    },
}
# Where waiting processes of this node bind their wake-up sockets, and how
# long they wait without one (tasks queued on another node, lost wake-ups).
WAKEUP_DIR = env_str("WAKEUP_DIR", str(VAR_DIR / "run" / "wakeup"))
QUEUE_IDLE_POLL_SECONDS = float(env_str("QUEUE_IDLE_POLL_SECONDS", "0.25"))
EXECUTION_IDLE_POLL_SECONDS = float(env_str("EXECUTION_IDLE_POLL_SECONDS", "1.0"))
# Requests one web process works on at once (a waiting synchronous /execute
# is not counted); the next is refused at once with QUEUE_FULL (0: no limit).
WEB_ACTIVE_REQUEST_LIMIT = env_int("WEB_ACTIVE_REQUEST_LIMIT", 32)
# A gevent web process whose event loop runs this late (milliseconds) on
# average is short of CPU: until it catches up it refuses, at once, each
# request that has waited in its backlog (core.load_shedding; 0: off). At
# 300/s offered: refusals p50 44 ms, p99 390 ms (docs/benchmarks.md).
WEB_MAX_LAG_MS = env_int("WEB_MAX_LAG_MS", 25)

# A run still marked running this long past its timeout lost its worker:
# its concurrency slot is reclaimed and it is closed as WORKER_CRASHED.
EXECUTION_LEASE_GRACE_SECONDS = env_int("EXECUTION_LEASE_GRACE_SECONDS", 30)

# Metrics (docs/operations.md). Every process (gunicorn workers, qcluster workers)
# writes its samples to files in this directory and /metrics merges them; it
# must be set before prometheus_client is first imported, hence here, and it
# is wiped when the service starts (`make run`), not here: settings are
# imported by every process, including ones started while others run.
PROMETHEUS_MULTIPROC_DIR = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(VAR_DIR / "prometheus"))
Path(PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)
# When set, GET /metrics needs `Authorization: Bearer <METRICS_TOKEN>`.
METRICS_TOKEN = env_str("METRICS_TOKEN")

# OpenAPI schema at /schema, Swagger UI at /docs, served from the sidecar's
# static files so the docs work without reaching a CDN.
SPECTACULAR_SETTINGS = {
    "TITLE": "Plugin execution engine",
    "DESCRIPTION": (
        "Runs untrusted plugin actions in a sandbox, on behalf of organizations authenticated by API key. "
        "Every error has the envelope `{success: false, executionId?, error: {type, message, retryable, details?}}`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"validatorUrl": None, "persistAuthorization": True},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
