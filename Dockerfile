# One image for every process of the service: the web (gunicorn, the default
# command) and the django-q2 clusters (docker-compose.yml runs both).
# Written with care but not built on the project's machines, which have no
# Docker engine (docs/operations.md, "Deployment files").
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VAR_DIR=/var/lib/executor \
    PROMETHEUS_MULTIPROC_DIR=/var/lib/executor/prometheus \
    PORT=3000

# libseccomp2: the library the sandbox compiles its system-call filter with;
# nodejs: the runtime of JavaScript plugins.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libseccomp2 nodejs \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .

# Static files (admin, API docs) are collected into the image, served by
# whitenoise; the key given here exists only for this build step.
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput -v 0 \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin executor \
    && mkdir -p /var/lib/executor/prometheus \
    && chown -R executor:executor /var/lib/executor

# The web runs unprivileged. The qcluster containers run as root on purpose:
# the sandbox needs root to give each run its own uid, namespaces and
# cgroups (docs/security.md); docker-compose.yml says so there.
USER executor
EXPOSE 3000

# /health answers 503 when the database, broker, cluster or sandbox is down;
# urlopen raises on it, so the check fails.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:3000/health', timeout=4)"

CMD ["gunicorn", "-c", "executor_project/gunicorn.conf.py", "executor_project.wsgi"]
