"""Schemathesis hooks for tests/integration/test_openapi.py (loaded via SCHEMATHESIS_HOOKS).

* Generated job bodies must not run arbitrary commands on the test machine: every body
  sent to ``/jobs...`` or ``/schedule...`` with POST, PUT or PATCH (a new job, or an update of one) gets the tag
  :data:`MARKER`, which no worker has, in its ``affinity.tags`` when that is a usable list
  (or absent), so valid jobs wait in ``hydra.pending`` (the test cancels them afterwards).
  Bodies stay as valid or invalid as they were generated.
* ``GET /runs/{id}/output?wait=`` holds a request up to 10 s while a run has no new output,
  and the probe jobs never run: ``wait`` is capped at :data:`MAX_WAIT` to keep the run short
  (tests/integration/test_live_output.py covers the long-poll itself).
* Random ids only ever reach "404 not found": half of the generated ``job_id`` / ``run_id``
  path parameters of GET requests are replaced by a real job and run (``HYDRA_ST_JOB_ID``
  / ``HYDRA_ST_RUN_ID``), so real documents are checked against the response schemas too
  (never for a verb that changes something).
"""

import os
import zlib

import schemathesis

MARKER = "schemathesis-probe"
MAX_TAGS = 32
MAX_WAIT = 0.5
REAL_IDS = {"job_id": os.environ.get("HYDRA_ST_JOB_ID"), "run_id": os.environ.get("HYDRA_ST_RUN_ID")}


def _mark(body: dict) -> None:
    affinity = body.get("affinity")
    if "affinity" not in body:
        body["affinity"] = {"tags": [MARKER]}
    elif isinstance(affinity, dict):
        tags = affinity.get("tags")
        if "tags" not in affinity:
            affinity["tags"] = [MARKER]
        elif isinstance(tags, list) and len(tags) < MAX_TAGS:
            affinity["tags"] = [*tags, MARKER]
        elif isinstance(tags, list) and len(tags) == MAX_TAGS:
            affinity["tags"] = [*tags[:-1], MARKER]  # still the most allowed
        # more than MAX_TAGS: invalid as generated, stays invalid (and never runs)


@schemathesis.hook
def map_case(context, case):
    method = case.operation.method.upper()
    body_of_a_job = case.operation.path.startswith(("/jobs", "/schedule"))
    if method in ("POST", "PUT", "PATCH") and body_of_a_job and isinstance(case.body, dict):
        _mark(case.body)
    wait = (case.query or {}).get("wait")
    if isinstance(wait, (int, float)) and not isinstance(wait, bool) and wait > MAX_WAIT:
        case.query["wait"] = MAX_WAIT
    for name, real in REAL_IDS.items():
        value = (case.path_parameters or {}).get(name)
        if method == "GET" and real and isinstance(value, str) and zlib.crc32(value.encode()) % 2 == 0:
            case.path_parameters[name] = real
    return case
