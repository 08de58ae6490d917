"""Hydra: a distributed command-job platform built on Celery.

``celery -A hydra worker -Q os.linux,tag.gpu`` starts a worker; ``run_command`` is the task
Python users publish with ``apply_async``; ``app`` is the Celery application.

Both are loaded on first use, so that importing a part of Hydra (``hydra.executor``,
``hydra.stack``) does not configure Celery before the caller has set ``HYDRA_*``.
"""
__all__ = ["app", "run_command"]
__version__ = "0.1.0"


def __getattr__(name):
    if name == "app":
        from hydra.celery import app

        return app
    if name == "run_command":
        from hydra.tasks import run_command

        return run_command
    raise AttributeError(f"module 'hydra' has no attribute {name!r}")
