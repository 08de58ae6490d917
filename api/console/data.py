"""The console's JSON (GET, read-only): a run's live output (a page, or followed as server-sent
events) and state, and the charts' data.
Every answer is bounded: output in pages of at most 256 chunks (the REST endpoint's reader),
charts over a window of at most a day in at most 120 buckets, a job's history in its last
HISTORY runs (one page of the runs-of-a-job index)."""

from __future__ import annotations

from flask import jsonify, request

from api.console.blueprint import bp
from api.console.pages import HISTORY, reader
from api.output import ChunkSchema, event_stream, last_event_id
from api.schemas.runs import RunSchema
from hydra.control import charts
from hydra.control.output import follow_output, read_output
from hydra.model.queries import MAX_WAIT

#: How long the console's follower waits for new output per request (seconds).
FOLLOW_WAIT = 5.0


@bp.get("/runs/<run_id>/output.json")
def output(run_id: str):
    after = max(-1, request.args.get("after", -1, type=int))
    wait = min(max(0.0, request.args.get("wait", FOLLOW_WAIT, type=float)), MAX_WAIT)
    answer = read_output(reader(), run_id, after, wait, 256)
    answer["chunks"] = ChunkSchema(many=True).dump(answer["chunks"])
    return jsonify(answer)


@bp.get("/runs/<run_id>/output/events")
def output_events(run_id: str):
    """The run's output as server-sent events (``GET /runs/<id>/output/events``), for the
    session's principal: what the run page follows."""
    after = max(-1, min(request.args.get("after", -1, type=int), 10**8), last_event_id())
    return event_stream(follow_output(reader(), run_id, after))


@bp.get("/runs/<run_id>/state.json")
def state(run_id: str):
    run = RunSchema().dump(reader().run(run_id))
    return jsonify({key: run.get(key) for key in STATE_FIELDS})


STATE_FIELDS = (
    "id",
    "status",
    "outcome",
    "returncode",
    "worker_id",
    "pending_reason",
    "queued_at",
    "placed_at",
    "started_at",
    "finished_at",
    "duration",
    "error",
    "decision",
    "retried_by",
)


@bp.get("/charts/runs.json")
def chart_runs():
    return jsonify(charts.runs(reader(), request.args.get("minutes", 60, type=int)))


@bp.get("/charts/queues.json")
def chart_queues():
    return jsonify(charts.depths(reader()))


@bp.get("/jobs/<job_id>/history.json")
def job_history(job_id: str):
    """The job's last HISTORY runs that ended, oldest first: when each ended (epoch seconds),
    how it ended and how long it ran (None: it never started)."""
    runs, _ = reader().runs_of(job_id, limit=HISTORY, cursor=None)
    ended = sorted((r for r in runs if r.finished_at is not None), key=lambda r: (r.finished_at, r.id))
    return jsonify(
        [
            {
                "id": r.id,
                "attempt": r.attempt,
                "status": r.status,
                "ended": r.finished_at.timestamp() if r.finished_at else None,
                "duration": r.duration,
            }
            for r in ended
        ]
    )
