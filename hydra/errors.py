"""Hydra's errors: one root, a branch per subsystem, each mapped once to the protocols.

Each class says how it is answered: ``http_status`` (REST), ``grpc_code`` (the name of a
``google.rpc.Code``), ``retry_after`` (seconds a caller should wait before trying again, or
None) and ``answer_doc`` (the OpenAPI description of its HTTP answer). ``api/errors.py``,
``hydra/rpc/errors.py``, ``api/docs.py`` and the client (``hydra/client/errors.py``, whose
errors are subclasses of these) read them from here; a subclass inherits its parent's.

::

    HydraError
     +-- InvalidJob            a job body or task message fails validation (-> 422)
     +-- InvalidRequest        any other request's fields fail validation (-> 422)
     +-- NotAuthenticated      no credentials, or credentials that prove nothing (-> 401)
     +-- Forbidden             a known caller without the right for this (-> 403)
     +-- NotFound              no job / run with that id, or none the caller may see (-> 404)
     +-- Conflict              the thing exists but its state forbids the verb (-> 409)
     |    +-- Duplicate            a record with that id exists already (a unique insert lost its race)
     |    +-- KeyReused            an idempotency key sent again with another job body
     |    +-- KeyInFlight          the first request with that key is still being served (gRPC: ABORTED)
     +-- Unavailable           a server Hydra needs is down (-> 503, Retry-After)
     |    +-- StoreUnavailable     MongoDB
     |    +-- BrokerUnavailable    Redis
     |    +-- CredentialsRefused   a server refused our credentials (Store..., Broker... for each)
     +-- RunEnded              the attempt already has a recorded end (fencing; internal: -> 500)
     +-- CommandError          raised by the task so Celery and Flower see the outcome
          +-- CommandFailed        non-zero exit, or the command could not start
          +-- CommandTimedOut      killed after its timeout
          +-- CommandCancelled     killed on request
          +-- Refused              this worker may not run this job (checked again on the worker)

``CommandError`` carries the run's outcome (a JSON-able dict) as its second argument,
so the result backend can record stdout, stderr and exit code of a failed run. Which error
stands for which run status is said once, here (:func:`command_error_for`); the task raises
it, the backend decodes it by name (:func:`command_error_named`).
"""

from __future__ import annotations

#: Seconds a caller should wait before trying again when a server Hydra needs is down (REST:
#: the Retry-After header; gRPC: RetryInfo).
RETRY_AFTER_SECONDS = 5


class HydraError(Exception):
    """Root of every error Hydra raises on purpose. One that reaches a caller without a
    class of its own below is a bug: HTTP 500, gRPC INTERNAL (logged)."""

    #: The HTTP status that answers it.
    http_status: int = 500
    #: The gRPC status code that answers it (a ``google.rpc.Code`` name).
    grpc_code: str = "INTERNAL"
    #: Seconds the caller should wait before trying again (None: trying again will not help).
    retry_after: int | None = None
    #: What its HTTP answer means, for the OpenAPI text.
    answer_doc: str = "Unexpected server error (logged with its traceback)."


class InvalidJob(HydraError):
    """A job body failed validation.

    ``errors`` maps a field name (dotted for nested fields) to a list of messages.
    """

    http_status, grpc_code = 422, "INVALID_ARGUMENT"
    answer_doc = "A field is invalid: `errors` names each, by location (`json`, `query`, `path`)."
    location = "json"

    def __init__(self, errors: dict):
        self.errors = errors
        super().__init__(f"invalid job: {errors}")


class InvalidRequest(HydraError):
    """Fields of a request other than a job body fail validation (a token's roles, a namespace
    in a path). ``errors`` maps each field to its messages; ``location`` says where the fields
    are: ``json`` (the body) or ``path``."""

    http_status, grpc_code = 422, "INVALID_ARGUMENT"
    answer_doc = InvalidJob.answer_doc

    def __init__(self, errors: dict, *, location: str = "json"):
        self.errors, self.location = errors, location
        super().__init__(f"invalid request: {errors}")


class NotAuthenticated(HydraError):
    """The request carries no credentials, or ones that do not authenticate anybody."""

    http_status, grpc_code = 401, "UNAUTHENTICATED"
    answer_doc = "No credentials, or credentials that prove nothing (`WWW-Authenticate` says how to send them)."


class Forbidden(HydraError):
    """The caller is known but lacks the right for this action."""

    http_status, grpc_code = 403, "PERMISSION_DENIED"
    answer_doc = "The caller's roles do not allow this in the namespace concerned."


class NotFound(HydraError):
    """No such job, run, ... or none the caller may see."""

    http_status, grpc_code = 404, "NOT_FOUND"
    answer_doc = "Nothing with that id."

    def __init__(self, kind: str, ident: str):
        self.kind, self.ident = kind, ident
        super().__init__(f"{kind} {ident!r} not found")


class Conflict(HydraError):
    """The thing exists but its state forbids the verb."""

    http_status, grpc_code = 409, "FAILED_PRECONDITION"
    answer_doc = "The state of what the request names forbids it."


class Duplicate(Conflict):
    """A write-once record with that id exists already: the insert lost its race."""


class KeyReused(Conflict):
    """An ``Idempotency-Key`` sent again, within its 24 hours, with another job body."""


class KeyInFlight(Conflict):
    """The first request with this ``Idempotency-Key`` is still being served: send it again."""

    grpc_code = "ABORTED"


class Unavailable(HydraError):
    """A server Hydra depends on did not answer; ``service`` names it."""

    http_status, grpc_code, retry_after = 503, "UNAVAILABLE", RETRY_AFTER_SECONDS
    answer_doc = "A service Hydra needs (MongoDB or Redis) is unavailable; try again after `Retry-After` seconds."
    service = "dependency"


class StoreUnavailable(Unavailable):
    service = "mongodb"


class BrokerUnavailable(Unavailable):
    service = "redis"


class CredentialsRefused(Unavailable):
    """A server refused this process's credentials (none given, or wrong ones). Its message
    is one line naming the setting and what to do; ``setting`` is that variable."""

    setting = ""
    #: What to do, said after what was refused.
    ADVICE = (
        "put the right user and password in it, or point HYDRA_CONFIG at the settings file "
        "`hydra worker-config` or `hydra client-config` wrote on the control machine"
    )

    @classmethod
    def because(cls, server: str, detail: str, *, anonymous: bool) -> CredentialsRefused:
        """The error for ``server``'s refusal (``detail``: its words); ``anonymous``: the URL
        carries no user name."""
        what = "requires credentials and the URL has none" if anonymous else f"refused the credentials ({detail})"
        return cls(f"{cls.setting}: {server} {what}: {cls.ADVICE}")


class StoreCredentialsRefused(StoreUnavailable, CredentialsRefused):
    setting = "HYDRA_MONGO_URL"


class BrokerCredentialsRefused(BrokerUnavailable, CredentialsRefused):
    setting = "HYDRA_BROKER_URL"


class RunEnded(HydraError):
    """The run attempt's end is already recorded; the caller lost the race."""


class CommandError(HydraError):
    """Base of the errors a run's task raises; ``outcome`` is the recorded result."""

    status = "failed"

    def __init__(self, message: str, outcome: dict | None = None):
        super().__init__(message, outcome or {})

    @property
    def outcome(self) -> dict:
        return self.args[1]

    def __str__(self) -> str:
        return str(self.args[0])


class CommandFailed(CommandError):
    status = "failed"


class CommandTimedOut(CommandError):
    status = "timed_out"


class CommandCancelled(CommandError):
    status = "cancelled"


class Refused(CommandError):
    status = "failed"


#: The error a task raises for an attempt that ended with each of these statuses.
_BY_STATUS: dict[str, type[CommandError]] = {
    cls.status: cls for cls in (CommandFailed, CommandTimedOut, CommandCancelled)
}
_BY_NAME: dict[str, type[CommandError]] = {
    cls.__name__: cls for cls in (CommandError, CommandFailed, CommandTimedOut, CommandCancelled, Refused)
}


def command_error_for(status: str) -> type[CommandError]:
    """The error for a run that did not succeed with ``status`` (failed for any other status)."""
    return _BY_STATUS.get(status, CommandFailed)


def command_error_named(name: str) -> type[CommandError] | None:
    """The CommandError class called ``name`` (as Celery encodes an exception), or None."""
    return _BY_NAME.get(name)
