"""The console's trigger: a job without parameters is triggered by its page's button; a job
with parameters by a form built from its declaration (``GET /ui/jobs/<id>/trigger``): a list
for allowed values, a password field for a secret (its value is never shown again), the
pattern and the description as help. The values go through ``verbs.trigger`` like REST's, and
a refused value comes back on the form, named, with the others as typed (secret ones blank)."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for

from api.console.actions import actor
from api.console.blueprint import bp
from api.schemas.jobs import JobSchema
from hydra.control import verbs
from hydra.control.access import Reader
from hydra.errors import InvalidJob

#: The prefix of a parameter's form field (``param.TARGET``).
FIELD = "param."


def given(form, declared: list[dict]) -> dict[str, str]:
    """The values the form gives: each declared parameter's field, unless left empty (then
    the parameter takes its default)."""
    values = {}
    for item in declared:
        value = form.get(FIELD + item["name"])
        if value:
            values[item["name"]] = value
    return values


def _form(job, values: dict[str, str], errors: dict, code: int = 200):
    shown = {name: value for name, value in values.items() if not _secret(job, name)}
    return (
        render_template("console/trigger.html", job=JobSchema().dump(job), values=shown, errors=errors, field=FIELD),
        code,
    )


def _secret(job, name: str) -> bool:
    return any(item["name"] == name and item.get("secret") for item in job.params or ())


@bp.get("/jobs/<job_id>/trigger")
def trigger_form(job_id: str):
    job = Reader(actor()).job(job_id, "trigger")
    return _form(job, {}, {})


@bp.post("/jobs/<job_id>/trigger")
def trigger(job_id: str):
    job = Reader(actor()).job(job_id, "trigger")
    values = given(request.form, job.params or [])
    try:
        placed = verbs.trigger(job_id, actor=actor(), params=values)
    except InvalidJob as exc:
        problems = exc.errors.get("params") if isinstance(exc.errors.get("params"), dict) else {}
        return _form(job, values, problems or {"_form": [str(exc)]}, 422)
    flash("Triggered: a run starts now.", "info")
    return redirect(url_for("console.run", run_id=placed.run_id))
