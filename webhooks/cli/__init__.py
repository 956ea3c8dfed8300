"""The `smshooks` commands (`main`) and the processes they run: `run`, `worker`, gunicorn's settings.

Kept free of imports: `gunicorn -c python:webhooks.cli.gunicorn_conf` imports this package first.
"""
