"""The REST API's answer, body and query-string schemas, by resource (the job body itself is
``hydra.model.spec.JobSpecSchema``; the query arguments shared with gRPC, ``hydra.model.queries``):

* ``common``  - what every answer shares: unrenderable records (``Tolerant``), the listing and
  idempotency headers, secrets shown redacted;
* ``jobs``    - a job, a submission's answer, a trigger, a PATCH, a one-off task, a fan-out;
* ``runs``    - a run, its refusals and its notifications;
* ``workers`` - a worker, a drain, the service's health.
"""
