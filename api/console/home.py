"""The console's home page (``/ui/``): what matters now - failing jobs, runs ended per outcome
over the last day, dead letters, workers online and offline, queue depth - each linking to
its list. Its numbers come from what Redis keeps (``hydra.control.overview``): loading it
costs the same whatever the history."""

from __future__ import annotations

from flask import render_template

from api.console.blueprint import bp
from api.console.pages import reader
from api.schemas.jobs import JobSchema
from hydra.control import overview


@bp.get("/")
def home():
    seen = overview.overview(reader())
    ended = seen.ended or {}
    total = sum(ended.values())
    return render_template(
        "console/home.html",
        seen=seen,
        failing=[(job, seen.summaries[job["id"]]) for job in JobSchema(many=True).dump(seen.failing)],
        ended=sorted(ended.items(), key=lambda item: (-item[1], item[0])),
        total=total,
        succeeded=ended.get("succeeded", 0),
        widest=max(ended.values(), default=0),
        day=overview.DAY,
    )
