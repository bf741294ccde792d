"""gunicorn's configuration of the web service, as the image runs it behind nginx (docker-compose.yml):

    gunicorn --config partnerinsights/gunicorn.conf.py partnerinsights.wsgi

Options on the command line win over this file; the environment tunes the counts and the timeout.
"""

import os
import re

from gunicorn.glogging import Logger

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")

# Sync workers: nginx buffers whole requests and responses, so a worker waits only on the database,
# never on a client; pages are short CPU and database work, imports run in a Celery task.
worker_class = "sync"
workers = int(os.environ.get("WEB_CONCURRENCY", str(2 * (os.cpu_count() or 1) + 1)))

# A request running longer is killed (502 at the proxy): the slowest pages and CSV exports take
# seconds; uploads arrive already buffered by nginx and are only stored here.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 30  # on SIGTERM (a rollout), running requests get this long to finish
max_requests = 1000  # a worker is replaced after this many requests, bounding any slow leak;
max_requests_jitter = 100  # the jitter keeps workers from being replaced all at once

# The heartbeat file on memory: a container's overlay file system can stall it into false timeouts.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108
control_socket_disable = True  # no control socket in $HOME: the image's user has none to write

# Only the proxy may set X-Forwarded-Proto: its address or network (compose: the private network).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

accesslog = "-"  # stdout: the container's log
errorlog = "-"
# The client's address as the proxy saw it (X-Forwarded-For), then the request, status, bytes, time.
access_log_format = '%({x-forwarded-for}i)s %(h)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s"'
PASSWORD_LINK = re.compile(r"(/accounts/(?:reset|invitation)/)\S*")


class RedactingLogger(Logger):  # type: ignore[misc]  # gunicorn has no type hints
    """Access lines without query strings and without the tokens of password links (live
    credentials until used), as core.observability redacts the application's own logs."""

    def atoms(self, resp, req, environ, request_time):  # type: ignore[no-untyped-def]  # gunicorn's API
        atoms = super().atoms(resp, req, environ, request_time)
        path = PASSWORD_LINK.sub(r"\1[redacted]", atoms["U"])
        atoms.update(r=f"{atoms['m']} {path} {atoms['H']}", U=path, q="")
        return atoms


logger_class = RedactingLogger
