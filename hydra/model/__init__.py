"""The model: what jobs, runs, workers and their rules are. Pure: no I/O, no Celery, no stores.

* ``status``    - the run statuses and their groups;
* ``platform``  - operating systems and shells Hydra knows;
* ``spec``      - the job body and the task message (marshmallow schemas);
* ``records``   - the typed records stores hand out: ``Job``, ``Run``, ``Chain``, ``Dispatched``;
* ``outcome``   - how one execution went, the same for every executor;
* ``lifecycle`` - what follows an attempt's end (retry, failover, dead letter);
* ``affinity``  - which workers may run a job, and which should;
* ``priority``  - job priority onto broker levels, and the queue keys they make;
* ``cron``      - ticks of a cron expression in a time zone;
* ``cursor``    - the opaque keyset cursors of listings.
"""
