"""Hydra: a distributed command-job platform built on Celery.

``celery -A hydra worker -Q os.linux,tag.gpu`` starts a worker; ``run_command`` is the task
Python users publish with ``apply_async``; ``app`` is the Celery application.
"""
from hydra.celery import app
from hydra.tasks import run_command

__all__ = ["app", "run_command"]
__version__ = "0.1.0"
