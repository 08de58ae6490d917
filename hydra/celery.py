"""The Celery application (``celery -A hydra ...`` finds it as ``hydra.app``).

Configuration comes from the top-level ``celeryconfig`` module, which maps Hydra's settings
onto Celery's names. Importing this module wires Hydra into Celery: message validation on
publish, the publish hook, the worker bootstep with its ``--allowed-users`` option, and the task.
"""
from __future__ import annotations

from celery import Celery

from hydra import names


class Hydra(Celery):
    """Celery, with ``hydra.run_command`` messages validated before they are routed."""

    def send_task(self, name, args=None, kwargs=None, **options):
        if name == names.TASK_RUN_COMMAND:
            from hydra.publish import prepare

            kwargs, args = prepare(args, kwargs), ()
        return super().send_task(name, args, kwargs, **options)


app = Hydra("hydra")
app.config_from_object("celeryconfig")

from hydra import logs, publish, worker  # noqa: E402,F401  (log format; publish hook; worker bootstep)

app.steps["worker"].add(worker.HydraProfile)
app.user_options["worker"].add(worker.ALLOWED_USERS_OPTION)

from hydra import tasks  # noqa: E402,F401  (registers hydra.run_command)

__all__ = ["app", "publish"]
