"""The Celery application (``celery -A hydra ...`` finds it as ``hydra.app``).

Configuration comes from ``celeryconfig``, which maps Hydra's settings
onto Celery's names. ``Hydra.send_task`` sends every ``hydra.run_command`` - a Python user's
``apply_async`` or ``send_task`` included - through the dispatch pipeline
(``hydra.dispatch.pipeline``), which validates, places, records and then sends it with
:meth:`Hydra.publish` (Celery's own ``send_task``); in a process configured as an API client
(a token, no signing key), through the API instead (``hydra.celery.remote``).
"""

from __future__ import annotations

from functools import cached_property

from celery import Celery

from hydra import logs, names
from hydra.celery import remote, task, worker
from hydra.dispatch import continuation
from hydra.dispatch.pipeline import Pipeline
from hydra.errors import HydraError, InvalidJob


class Hydra(Celery):
    """Celery, with ``hydra.run_command`` messages dispatched by Hydra's pipeline."""

    amqp_cls = "hydra.celery.amqp:HydraAMQP"  # the task-sent event names the attempt

    def send_task(self, name, args=None, kwargs=None, **options):
        if name == names.TASK_RUN_COMMAND:
            if remote.enabled():  # a process configured as an API client: the API publishes it
                if args:
                    raise InvalidJob({"args": ["hydra.run_command takes keyword arguments only"]})
                return self.AsyncResult(remote.Api().submit(kwargs, options))
            try:
                return self.pipeline.accept(args, kwargs, options)
            except HydraError:
                continuation.refused_part(options, self.pipeline)  # a chord's header task: its part ends refused
                raise
        return super().send_task(name, args, kwargs, **options)

    def publish(self, name: str, kwargs: dict, **options):
        """Send a message as it is (the pipeline's last step)."""
        return super().send_task(name, (), kwargs, **options)

    @cached_property
    def pipeline(self) -> Pipeline:
        return Pipeline(self)


app = Hydra("hydra")
app.config_from_object("celeryconfig")
app.steps["worker"].add(worker.HydraProfile)
for _option in worker.OPTIONS:
    app.user_options["worker"].add(_option)
#: The one task; Python users publish it with ``apply_async(kwargs={...})``.
run_command = app.task(base=task.CommandTask, bind=True, name=names.TASK_RUN_COMMAND)(task.run_command)


def current_pipeline(given: Pipeline | None = None) -> Pipeline:
    """The dispatch pipeline to use: ``given`` (the controller's, a unit test's on in-memory
    stores), else this process's (``app.pipeline``). The one way code gets a pipeline, and
    with it the run and job stores (``.runs``, ``.jobs``, ``.flows``)."""
    return given if given is not None else app.pipeline


__all__ = ["Hydra", "app", "current_pipeline", "logs", "run_command"]
