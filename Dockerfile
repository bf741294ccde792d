# The application image: web (gunicorn), Celery workers and beat, and the one-off migrate service
# all run it (docker-compose.yml). One stage: every pinned dependency installs from a wheel, so no
# compiler ever enters the image and a build stage would only copy the same files across.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MEDIA_ROOT=/data/media \
    CELERY_QUEUE_DIR=/data/celery

# A user without a login shell or home; the code stays root's and read-only to it. /data holds
# what it writes (uploads, beat's schedule): volumes mounted there inherit this ownership.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin app \
    && mkdir -p /data/media /data/celery \
    && chown app:app /data/media /data/celery

WORKDIR /app
COPY requirements.txt .
RUN pip install --no-compile -r requirements.txt
COPY . .
# DEBUG off at build time too: the served storage (hashed, compressed) needs its manifest.
RUN DEBUG=false SECRET_KEY=collectstatic-only-not-used-at-runtime python manage.py collectstatic --no-input -v0

USER 10001:10001
EXPOSE 8000
CMD ["gunicorn", "--config", "partnerinsights/gunicorn.conf.py", "partnerinsights.wsgi"]
