"""The Celery side: the app, the one task, the result backend, and the worker's own checks.

* ``app``      - ``Hydra(Celery)``: ``send_task`` of ``hydra.run_command`` goes through the
  dispatch pipeline; the worker bootstep, its ``--allowed-users`` option and the task;
* ``task``     - ``hydra.run_command``: admit, execute, report;
* ``backend``  - the result backend: a task's end is the attempt's end (``hydra.dispatch.attempts``);
* ``worker``   - the worker's profile (from ``-Q``), ``hydra_profile``, and ``admit``;
* ``orphans``  - the worker making sure no command outlives its attempt;
* ``watchdog`` - stopping a command whose attempt was ended elsewhere.
"""
