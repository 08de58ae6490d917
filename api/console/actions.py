"""The console's actions (POST, each with the session's CSRF token): the verbs of
``hydra.control.verbs``, as the REST API calls them, with the session's principal. A role
that may not act is refused here exactly as by REST (403 page), whatever the page showed."""

from __future__ import annotations

import json

from flask import flash, redirect, render_template, request, url_for
from marshmallow import ValidationError

from api.console import session as sessions
from api.console.blueprint import bp, require_submitter
from api.console.forms import FIELDS, FORM, body_of, field_errors
from api.schemas.jobs import JobPatchSchema, JobSchema
from hydra.control import drain, verbs
from hydra.control.access import Reader
from hydra.errors import InvalidJob, NotAuthenticated
from hydra.model.spec import JobSpecSchema
from hydra.settings import get_settings


def actor():
    principal = sessions.current()
    assert principal is not None  # the guard signed the caller in
    return principal


def _safe_next(target: str) -> str:
    # Only a path of the console itself (never another site).
    return target if target.startswith("/ui/") and not target.startswith("//") else url_for("console.home")


@bp.post("/login")
def login_post():
    try:
        principal = sessions.sign_in(request.form.get("token", ""))
    except NotAuthenticated as exc:
        return (
            render_template(
                "console/login.html",
                oidc=get_settings().oidc_issuer,
                oidc_flow=sessions.oidc_enabled(),
                next=request.form.get("next", ""),
                error=str(exc),
            ),
            401,
        )
    flash(f"Signed in as {principal.user}.", "info")
    return redirect(_safe_next(request.form.get("next", "")))


@bp.get("/login/oidc")
def login_oidc():
    if not sessions.oidc_enabled():
        return redirect(url_for("console.login"))
    target = sessions.begin_oidc(url_for("console.login_oidc_callback", _external=True), request.args.get("next", ""))
    return redirect(target)


@bp.get("/login/oidc/callback")
def login_oidc_callback():
    if request.args.get("error"):
        raise NotAuthenticated(f"the issuer refused the sign-in: {request.args.get('error')}")
    principal, next_path = sessions.finish_oidc(request.args.get("code", ""), request.args.get("state", ""))
    flash(f"Signed in as {principal.user} through OIDC.", "info")
    return redirect(_safe_next(next_path))


@bp.post("/logout")
def logout():
    sessions.sign_out()
    flash("Signed out.", "info")
    return redirect(url_for("console.login"))


@bp.post("/submit")
def submit_post():
    require_submitter(actor())
    values = {name: request.form.get(name, "") for name in FIELDS}
    body, problems = body_of(request.form)
    errors: dict[str, list[str]] = dict(problems)
    if not errors:
        try:
            spec = JobSpecSchema().load(body)
            job, run, _starts = verbs.submit(spec, actor=actor())
        except ValidationError as exc:
            errors = field_errors(exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages})
        except InvalidJob as exc:
            errors = field_errors(exc.errors)
        else:
            flash(f"Submitted {job.name}.", "info")
            if run is not None:
                return redirect(url_for("console.run", run_id=run.run_id))
            return redirect(url_for("console.job", job_id=job.id))
    return render_template("console/submit.html", values=values, errors=errors, form_error=FORM), 422


@bp.post("/jobs/<job_id>/edit")
def edit_post(job_id: str):
    text = request.form.get("body", "")
    errors: dict[str, list[str]] = {}
    try:
        patch = json.loads(text)
    except ValueError as exc:
        errors = {FORM: [f"not JSON: {exc}"]}
    else:
        try:
            verbs.update(job_id, actor=actor(), patch=JobPatchSchema(partial=True).load(patch))
        except ValidationError as exc:
            errors = field_errors(exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages})
        except InvalidJob as exc:
            errors = field_errors(exc.errors)
        else:
            flash("Saved; the job's next runs use it.", "info")
            return redirect(url_for("console.job", job_id=job_id))
    record = Reader(actor()).job(job_id)
    return render_template("console/edit.html", job=JobSchema().dump(record), body=text, errors=errors), 422


@bp.post("/jobs/<job_id>/pause")
def pause(job_id: str):
    verbs.pause(job_id, actor=actor())
    flash("Paused: its schedule does not fire until resumed.", "info")
    return redirect(url_for("console.job", job_id=job_id))


@bp.post("/jobs/<job_id>/resume")
def resume(job_id: str):
    verbs.resume(job_id, actor=actor())
    flash("Resumed.", "info")
    return redirect(url_for("console.job", job_id=job_id))


@bp.post("/jobs/<job_id>/delete")
def delete(job_id: str):
    verbs.delete(job_id, actor=actor())
    flash("Deleted: its schedule stopped and runs not started were cancelled; its history is kept.", "info")
    return redirect(url_for("console.jobs"))


@bp.post("/runs/<run_id>/cancel")
def cancel(run_id: str):
    _run, ended = verbs.cancel(run_id, actor=actor())
    flash("Cancelled." if ended else "Cancelling: the worker kills its process tree within 2 s.", "info")
    return redirect(url_for("console.run", run_id=run_id))


@bp.post("/runs/<run_id>/retry")
def retry(run_id: str):
    _job_id, placed = verbs.retry(run_id, actor=actor())
    flash("Retried: a new attempt starts.", "info")
    return redirect(url_for("console.run", run_id=placed.run_id))


@bp.post("/workers/<worker_id>/drain")
def drain_worker(worker_id: str):
    drain.drain(actor(), worker_id, reason=request.form.get("reason") or None)
    flash(f"Drained {worker_id}: it takes no new runs; what runs there finishes, its queue goes elsewhere.", "info")
    return redirect(url_for("console.workers"))


@bp.post("/workers/<worker_id>/undrain")
def undrain_worker(worker_id: str):
    drain.undrain(actor(), worker_id)
    flash(f"Undrained {worker_id}: it takes new runs again.", "info")
    return redirect(url_for("console.workers"))
