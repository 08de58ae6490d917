"""The console's pages (GET): each reads one bounded page through the control layer."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import redirect, render_template, request, url_for

from api.console import session as sessions
from api.console.blueprint import bp, require_submitter
from api.console.forms import FIELDS
from api.console.present import sort_rows
from api.schemas.jobs import FanoutSchema, JobSchema
from api.schemas.runs import RunSchema
from api.schemas.workers import WorkerSchema
from hydra import clock
from hydra.broker.index_entries import RECENT_ENDS
from hydra.control import charts, fanout, overview, related
from hydra.control.access import Reader
from hydra.errors import NotFound, Unavailable
from hydra.model import cursor as cursors
from hydra.model.cron import next_fire
from hydra.model.fanout import fans_out
from hydra.model.records import Job, Run
from hydra.model.redaction import without_secrets
from hydra.model.status import FILTER_WORDS, parse_status
from hydra.settings import get_settings

PAGE = 25
#: Jobs a search looks through per request (pages of the listing), before it offers "more".
SEARCH_PAGES, SEARCH_PAGE = 5, 100
#: Attempts of a chain the run page follows back, and the job's runs it looks through for later ones.
CHAIN_BACK, CHAIN_AROUND = 20, 50
FIRE_TIMES = 5
#: Runs the job page's history chart shows (one page of the runs-of-a-job index).
HISTORY = 100


def reader() -> Reader:
    principal = sessions.current()
    assert principal is not None  # the guard signed the caller in
    return Reader(principal)


def _cursor(name: str = "cursor") -> str | None:
    value = request.args.get(name) or None
    if value is None:
        return None
    try:
        cursors.decode(value)
    except cursors.BadCursor:
        return None
    return value


@bp.get("/login")
def login():
    if sessions.current() is not None:
        return redirect(url_for("console.home"))
    return render_template(
        "console/login.html",
        oidc=get_settings().oidc_issuer,
        oidc_flow=sessions.oidc_enabled(),
        next=request.args.get("next", ""),
    )


def _search(rd: Reader, q: str, **filters) -> tuple[list[Job], str | None, int]:
    """Jobs whose name contains ``q`` (or whose id starts with it), looking through at most
    SEARCH_PAGES pages of the listing from ``cursor``: (matches, where to go on, jobs looked at)."""
    needle = q.lower()
    found: list[Job] = []
    cursor, seen = filters.pop("cursor"), 0
    for _ in range(SEARCH_PAGES):
        page, cursor = rd.jobs_page(limit=SEARCH_PAGE, cursor=cursor, **filters)
        seen += len(page)
        found += [j for j in page if needle in j.name.lower() or j.id.startswith(q)]
        if cursor is None or len(found) >= PAGE:
            break
    return found, cursor, seen


@bp.get("/jobs")
def jobs():
    rd = reader()
    args = request.args
    status_word = args.get("status") or ""
    errors: dict[str, str] = {}
    status = None
    if status_word:
        try:
            status = parse_status(status_word)
        except ValueError:
            errors["status"] = f"unknown status {status_word!r}"
    namespace = args.get("namespace") or None
    user = args.get("user") or None
    q = (args.get("q") or "").strip()
    filters = {"status": status, "user": user, "namespace": namespace, "cursor": _cursor()}
    seen = None
    if q:
        for kind, read in (("job", rd.job), ("run", rd.run)):
            try:
                read(q)
            except NotFound:
                continue
            return redirect(url_for(f"console.{kind}", **{f"{kind}_id": q}))
        items, next_cursor, seen = _search(rd, q, **filters)
    else:
        items, next_cursor = rd.jobs_page(limit=PAGE, **filters)
    known = overview.summaries(rd, items)
    # Each row rendered as the REST listing renders it: a stored job this version cannot render
    # is skipped (and flagged), never a 409 for the whole page.
    rows = [{"job": job, "summary": known[job["id"]]} for job in JobSchema(many=True).dump(items)]
    rows, sort, order = sort_rows(rows, args.get("sort"), args.get("order"))
    return render_template(
        "console/jobs.html",
        rows=rows,
        sort=sort,
        order=order,
        recent=RECENT_ENDS,
        next_cursor=next_cursor,
        statuses=FILTER_WORDS,
        filters={"status": status_word, "user": user or "", "namespace": namespace or "", "q": q},
        errors=errors,
        seen=seen,
    )


def fire_times(job: Job, count: int = FIRE_TIMES) -> list[dict]:
    """The next ``count`` ticks of a cron job, in its time zone (``2026-12-08 03:00:00 +01:00``)
    and in UTC (none for a stored schedule that never fires: :meth:`Job.next_run_at`)."""
    moment = job.next_run_at()
    if moment is None:
        return []
    zone = job.timezone or "UTC"
    found: list[dict] = []
    for number in range(count):
        if number:
            moment = next_fire(job.schedule, zone, moment)
        local = moment.astimezone(ZoneInfo(zone))
        found.append({"local": f"{local:%Y-%m-%d %H:%M:%S} {local.isoformat()[-6:]}", "utc": moment.isoformat()})
    return found


@bp.get("/jobs/<job_id>")
def job(job_id: str):
    rd = reader()
    record = rd.job(job_id)
    runs, next_cursor = rd.runs_of(job_id, limit=PAGE, cursor=_cursor())
    return render_template(
        "console/job.html",
        job=JobSchema().dump(record),
        summary=overview.summaries(rd, [record])[record.id],
        history=HISTORY,
        spec=record.spec(),
        fires=fire_times(record),
        runs=RunSchema(many=True).dump(runs),
        next_cursor=next_cursor,
        deps=related.as_dict(related.dependencies(rd.actor, job_id, runs=rd.runs)),
        fanout=_latest_fanout(rd, record),
    )


def _latest_fanout(rd: Reader, record: Job) -> dict | None:
    """The job's latest fan-out as the page shows it (None: it does not fan out, or never did)."""
    if not fans_out(record.placement):
        return None
    try:
        return FanoutSchema().dump(fanout.summary(rd.actor, record.id))
    except NotFound:
        return None


@bp.get("/jobs/<job_id>/edit")
def edit(job_id: str):
    record = reader().job(job_id, "update")
    return render_template("console/edit.html", job=JobSchema().dump(record), body=editable(record), errors={})


def editable(record: Job) -> str:
    """The job's body as the edit form shows it: JSON, without its write-only values (``env``,
    a webhook's headers and body: ``hydra.model.redaction``; a change that leaves them out keeps them)."""
    spec = without_secrets(record.spec())
    if isinstance(spec.get("scheduled_at"), datetime):
        spec["scheduled_at"] = spec["scheduled_at"].isoformat()
    return json.dumps(spec, indent=2, default=str)


def chain_of(rd: Reader, run: Run) -> list[Run]:
    """The attempts of ``run``'s chain, oldest first: back along ``retry_of`` (at most
    CHAIN_BACK), forward among the job's newest CHAIN_AROUND runs (failovers, retries)."""
    back: list[Run] = [run]
    while back[0].retry_of and len(back) < CHAIN_BACK:
        try:
            back.insert(0, rd.run(back[0].retry_of))
        except NotFound:
            break
    ids = {r.id for r in back}
    try:
        around, _ = rd.runs_of(run.job_id, limit=CHAIN_AROUND, cursor=None)
    except NotFound:
        around = []
    later = sorted((r for r in around if r.id not in ids), key=lambda r: r.attempt)
    for other in later:
        if other.retry_of in ids:
            back.append(other)
            ids.add(other.id)
    return back


@bp.get("/runs/<run_id>")
def run(run_id: str):
    rd = reader()
    record = rd.run_shown(run_id)
    chain = chain_of(rd, record)
    return render_template(
        "console/run.html",
        run=RunSchema().dump(record),
        chain=RunSchema(many=True).dump(chain),
        job_deleted=_job_deleted(rd, record),
        flow=related.as_dict(related.flow(rd.actor, run_id, runs=rd.runs)),
    )


def _job_deleted(rd: Reader, run: Run) -> bool:
    try:
        return rd.jobs.get(run.job_id).deleted_at is not None
    except NotFound:
        return True


@bp.get("/runs/<run_id>/placement")
def placement(run_id: str):
    record, job_record, verdicts = reader().placement(run_id)
    return render_template(
        "console/placement.html", run=RunSchema().dump(record), job=JobSchema().dump(job_record), verdicts=verdicts
    )


@bp.get("/workers")
def workers():
    rd = reader()
    items = rd.workers_with_load()  # with their drains
    try:
        depth = {d["worker"]: d["depth"] for d in charts.depths(rd)}
    except Unavailable:
        depth = {}
    return render_template(
        "console/workers.html", workers=WorkerSchema(many=True).dump(items), depth=depth, now=clock.utcnow()
    )


@bp.get("/dead-letters")
def dead_letters():
    runs, next_cursor = reader().dead_letters(job_id=None, include_retried=False, limit=PAGE, cursor=_cursor())
    return render_template("console/dead_letters.html", runs=RunSchema(many=True).dump(runs), next_cursor=next_cursor)


@bp.get("/submit")
def submit():
    me = sessions.current()
    assert me is not None  # the guard signed the caller in
    require_submitter(me)
    values = dict.fromkeys(FIELDS, "")
    values.update(namespace=me.home, user=me.user, timezone="UTC")
    return render_template("console/submit.html", values=values, errors={})


@bp.get("/charts")
def charts_page():
    minutes = request.args.get("minutes", type=int) or 60
    if minutes not in charts.WINDOWS:
        minutes = 60
    return render_template("console/charts.html", minutes=minutes, windows=charts.WINDOWS)
