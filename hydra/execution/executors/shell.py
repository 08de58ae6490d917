"""The ``shell`` executor: a command (under a shell) or an argument list (no shell).

A thin adapter over :func:`hydra.execution.process.execute`, which kills the whole process
tree on timeout or cancel and caps the output; the environment is
:func:`hydra.execution.command.job_environment` (the job's ``env`` on a scrubbed base: the
worker's broker and database URLs never reach it) with the run's parameters
(``HYDRA_PARAM_<NAME>``, or arguments: ``hydra.model.params``), and with the worker's ``ctx.confinement``
the command runs as the job's OS user in its own directory, cgroup and sandbox
(``hydra.execution.isolation``), within the job's resource limits (a run the OOM killer
ended: ``out of memory (limit N MB)``).
"""

from __future__ import annotations

import os
import shutil

from hydra.execution.command import build_argv, job_environment
from hydra.execution.executors.base import Context, register
from hydra.execution.process import execute
from hydra.model import params
from hydra.model.outcome import Outcome
from hydra.model.resources import oom_reason
from hydra.model.status import RunStatus


@register("shell")
def run_shell(job: dict, ctx: Context) -> Outcome:
    try:
        argv = build_argv(
            command=job.get("command"),
            args=job.get("args"),
            shell=job.get("shell"),
            os_name=ctx.os_name,
            extra=params.arguments(job),
        )
    except ValueError as exc:
        return Outcome(status=RunStatus.FAILED, error=str(exc))
    env = job_environment(job.get("env"))
    env.update(params.environment(job))  # after the job's env: a trigger's value wins
    cwd = job.get("cwd")
    confinement = ctx.confinement
    if confinement is not None:
        # The command starts behind the confinement's own programs (sh, bwrap, setpriv), so a
        # program that is not there would only show as exit status 127: say so up front.
        program = argv[0]
        if os.sep in program:
            found = os.path.exists(os.path.join(cwd or confinement.cwd, program))
        else:
            found = shutil.which(program, path=env.get("PATH")) is not None
        if not found:
            return Outcome(status=RunStatus.FAILED, error=f"command not found: {program}")
        argv, env, cwd = confinement.argv(argv), confinement.environment(env), confinement.cwd
    env.update(ctx.env)
    outcome = execute(
        argv,
        env=env,
        cwd=cwd,
        timeout=job.get("timeout") or ctx.default_timeout,
        output_limit=ctx.output_limit,
        on_output=ctx.on_output,
        cancel=ctx.cancel,
        kill_grace=ctx.kill_grace,
        on_start=ctx.on_start,
        confinement=confinement,
    )
    if confinement is not None and outcome.status == "failed" and confinement.out_of_memory():
        # the kernel killed it for its memory limit: say so, not "killed by signal 9"
        outcome.error = oom_reason(confinement.limits.memory_mb if confinement.limits else None)
    return outcome
