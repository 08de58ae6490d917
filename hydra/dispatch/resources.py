"""A job body's resource limits settled against its namespace's defaults and maxima
(``hydra.model.resources.settle``), wherever a job is stored: the API's and gRPC's submit and
update (``hydra.control.verbs``) and a Python user's ``apply_async`` of a new job
(``hydra.dispatch.pipeline``). A body over a maximum is refused (InvalidJob naming
``resources.<field>``), never stored. The namespace's limits are the router's (read with its
quotas and kept briefly: no extra read per submission)."""

from __future__ import annotations

from marshmallow import ValidationError

from hydra.dispatch.router import AffinityRouter
from hydra.errors import InvalidJob
from hydra.model.namespaces import DEFAULT_NAMESPACE
from hydra.model.resources import settle as settle_body


def settle(body: dict, router: AffinityRouter) -> dict:
    """``body`` with its namespace's default limits; raises InvalidJob over a maximum."""
    rules = router.limits(body.get("namespace") or DEFAULT_NAMESPACE).resources
    try:
        return settle_body(body, rules)
    except ValidationError as exc:
        raise InvalidJob(exc.normalized_messages()) from None
