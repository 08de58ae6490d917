"""Hydra: a distributed command-job platform built on Celery.

``celery -A hydra worker -Q os.linux,tag.gpu`` starts a worker; ``run_command`` is the task
Python users publish with ``apply_async``; ``app`` is the Celery application.

Both are loaded on first use, so that importing a part of Hydra (``hydra.model``,
``hydra.client``) does not configure Celery before the caller has set ``HYDRA_*``.
"""

__all__ = ["app", "run_command"]
from hydra import names

__version__ = names.VERSION


def __getattr__(name):
    if name in ("app", "run_command"):
        from hydra.celery import app as module

        return getattr(module, name)
    raise AttributeError(f"module 'hydra' has no attribute {name!r}")
