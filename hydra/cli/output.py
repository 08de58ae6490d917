"""``hydra logs``: a run's output::

    hydra logs RUN                      all of it (a long stream: its head, what was omitted, its tail)
    hydra logs --tail 50 RUN            the last 50 lines        hydra logs --head 20 RUN
    hydra logs -f [--tail 10] RUN       follow it until the run ends
    hydra logs -o run.txt RUN           save it as a file (GET /runs/{id}/output.txt: the full
                                        output when the installation keeps it; '-': stdout)

stdout goes to stdout and stderr to stderr, in the order the command wrote them; lines count
across both.
"""

from __future__ import annotations

import itertools
import json
import sys

import click

from hydra.cli.helpers import api_command
from hydra.client import Client, first_lines


def _show(chunk, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"seq": chunk.seq, "stream": chunk.stream, "text": chunk.text, "cut": chunk.cut}))
        return
    out = sys.stdout if chunk.stream == "stdout" else sys.stderr
    out.write(chunk.text)
    out.flush()


def _lines(value: int | None, name: str) -> int | None:
    if value is not None and value < 0:
        raise click.BadParameter("give a number of lines, 0 or more", param_hint=name)
    return value


@click.command()
@click.argument("run_id", metavar="RUN")
@click.option("-f", "--follow", is_flag=True, help="Keep streaming until the run ends.")
@click.option("--head", type=int, metavar="N", help="Only the first N lines.")
@click.option("--tail", type=int, metavar="N", help="Only the last N lines (with -f: then follow).")
@click.option(
    "-o",
    "--output",
    "save_to",
    type=click.Path(dir_okay=False, allow_dash=True),
    metavar="FILE",
    help="Save the output as a text file ('-': print it): the full output when the installation keeps it.",
)
@api_command
def logs(client: Client, as_json: bool, run_id, follow, head, tail, save_to):
    """Print the output of RUN (stdout to stdout, stderr to stderr, in the order written)."""
    head, tail = _lines(head, "--head"), _lines(tail, "--tail")
    if head is not None and tail is not None:
        raise click.BadParameter("give --head or --tail, not both", param_hint="--head")
    if save_to is not None:
        if follow or head is not None or tail is not None:
            raise click.BadParameter("--output saves the whole output: drop -f, --head and --tail", param_hint="-o")
        text = client.download_output(run_id)
        with click.open_file(save_to, "w", encoding="utf-8") as out:
            out.write(text)
        if save_to != "-":
            click.echo(f"saved the output of run {run_id} to {save_to}", err=True)
        return
    if follow:
        shown = client.log(run_id, tail=tail) if tail is not None else []
        chunks = itertools.chain(shown, client.follow(run_id, after=shown[-1].seq if shown else -1))
        for chunk in first_lines(chunks, head) if head is not None else chunks:
            _show(chunk, as_json)
        return
    shown = client.log(run_id, head=head, tail=tail)
    if shown or head == 0 or tail == 0:
        for chunk in shown:
            _show(chunk, as_json)
        return
    # No live output recorded (e.g. a run from before live output): the run's record.
    run = client.run(run_id)
    for stream in ("stdout", "stderr"):
        text = getattr(run, stream) or ""
        if as_json and text:
            click.echo(json.dumps({"seq": None, "stream": stream, "text": text}))
        elif text:
            (sys.stdout if stream == "stdout" else sys.stderr).write(text)


COMMANDS = (logs,)
