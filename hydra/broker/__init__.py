"""Redis beyond the Celery broker: what Hydra's processes share there. Never the record of
truth - everything here is rebuilt from MongoDB or from the workers' next heartbeats.

* ``redis``     - this process's client, and Redis errors raised as ``BrokerUnavailable``;
* ``registry``  - the live worker registry (profiles, liveness, load) the router reads;
* ``lease``     - the leader lease (the controller's, the cron scheduler's);
* ``due``       - the due index of delayed runs;
* ``schedules`` - the change feed of cron schedules;
* ``stops``     - the flags asking a worker to stop a run;
* ``metrics``   - Prometheus counters counted in Redis, and the collector that reads them;
* ``index``     - the stores' secondary indexes (what the listings and sweeps read).
"""
