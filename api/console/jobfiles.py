"""The console's job files: a job's file as a download (``GET /ui/jobs/<id>/export``, JSON or
``?format=yaml``) and cloning a job (``/ui/jobs/<id>/clone``: its file, renamed, in an editor,
submitted as a new job). ``hydra.model.jobfile`` says what a file holds.

A clone keeps the write-only values the file references (``{"secret": true}``) only for a
caller who may update the source job: one who could not change its command could otherwise
read its secrets through a copy whose command prints them. Anyone else gives the values.
"""

from __future__ import annotations

import json

import yaml
from flask import Response, flash, redirect, render_template, request, url_for

from api.console.actions import actor
from api.console.blueprint import bp, require_submitter
from api.console.forms import FORM, field_errors
from api.schemas.jobs import JobSchema
from hydra.control import verbs
from hydra.control.access import Reader
from hydra.errors import InvalidJob
from hydra.model.jobfile import exported, resolve
from hydra.model.spec import load_job


def _file_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:100] or "job"


@bp.get("/jobs/<job_id>/export")
def export_job(job_id: str):
    record = Reader(actor()).job(job_id)
    file = exported(JobSchema().dump(record))  # from the answer: every write-only value redacted
    if request.args.get("format") == "yaml":
        text = yaml.safe_dump(file, sort_keys=False, allow_unicode=True)
        mimetype, suffix = "application/yaml", "yaml"
    else:
        text, mimetype, suffix = json.dumps(file, indent=2, ensure_ascii=False) + "\n", "application/json", "json"
    response = Response(text, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{_file_name(record.name)}.{suffix}"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _clone_page(record, body: str, errors: dict, code: int = 200):
    keeps = actor().can("update", record.namespace)
    page = render_template("console/clone.html", job=JobSchema().dump(record), body=body, errors=errors, keeps=keeps)
    return page, code


@bp.get("/jobs/<job_id>/clone")
def clone(job_id: str):
    require_submitter(actor())
    record = Reader(actor()).job(job_id)
    file = exported(JobSchema().dump(record))
    file["name"] = f"{record.name} copy"[:200]
    return _clone_page(record, json.dumps(file, indent=2, ensure_ascii=False), {})


@bp.post("/jobs/<job_id>/clone")
def clone_post(job_id: str):
    require_submitter(actor())
    record = Reader(actor()).job(job_id)
    text = request.form.get("body", "")
    try:
        body = json.loads(text)
    except ValueError as exc:
        return _clone_page(record, text, {FORM: [f"not JSON: {exc}"]}, 422)
    if not isinstance(body, dict):
        return _clone_page(record, text, {FORM: ["a job is a JSON object"]}, 422)
    try:
        source = record.spec() if actor().can("update", record.namespace) else None
        filled, missing = resolve(body, source)
        if missing:
            raise InvalidJob(missing)
        job, run, _starts = verbs.submit(load_job(filled), actor=actor())
    except InvalidJob as exc:
        return _clone_page(record, text, field_errors(exc.errors), 422)
    flash(f"Submitted {job.name}, a copy of {record.name}.", "info")
    if run is not None:
        return redirect(url_for("console.run", run_id=run.run_id))
    return redirect(url_for("console.job", job_id=job.id))
