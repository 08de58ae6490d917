"""Control: what decides what runs, and what happens to runs nobody else ends.

* ``verbs``      - submit, update, delete, pause, resume, trigger, retry;
* ``cancel``     - cancelling a run, decided by its fences;
* ``controller`` - the controller process: Celery events into the registry, offline
  detection, placing pending work, sweeps; one leads (a lease), the others stand by;
* ``lease``      - the controller's leader lease, renewed by a thread of its own;
* ``failover``   - lost workers' attempts, draining their queues, reconciling after Redis loss;
* ``scheduler``  - the cron scheduler, a controller thread with a lease of its own.
"""
