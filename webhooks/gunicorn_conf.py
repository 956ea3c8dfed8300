"""gunicorn settings for the Procfile's web process (`gunicorn -c python:webhooks.gunicorn_conf`)."""

import os

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
# Requests are short (parse, one Redis round trip); sync workers, two per core, keep both cores busy.
workers = int(os.environ.get("WEB_CONCURRENCY") or 2 * (os.cpu_count() or 1))
worker_class = "sync"
timeout = 30
graceful_timeout = 20
# gunicorn 27 opens a control socket under ~/.gunicorn by default; two servers on one
# machine (bench, tests) would fight over it, and nothing here uses it.
control_socket_disable = True
# Access log only on request, and never with the query string: it carries ?token=.
if os.environ.get("ACCESS_LOG", "").lower() in ("1", "true", "yes"):
    accesslog = "-"
    access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms'
errorlog = "-"
