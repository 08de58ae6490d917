"""Whole logs on the real stack: the end of a long output in hydra logs, the client and the
console; --head and --tail; the download (the full output kept in HYDRA_OUTPUT_DIR, or what is
stored), its permissions and its deletion with the run; stdout and stderr in the order written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hydra.auth import tokens
from hydra.cli import main
from hydra.client import Client
from hydra.model.access import Role
from hydra.settings import get_settings
from hydra.store.output_dir import OutputDir
from hydra.store.retention import Retention
from hydra.store.tokens import TokenStore
from tests.helpers import job_body, submit, unique, wait_run
from tests.integration.test_console import browser

#: Two short lines, 400 KB on one line, then the line that matters.
LONG = "echo first; echo second; head -c 400000 /dev/zero | tr '\\0' x; echo; echo FINAL-ERROR-LINE"
LONG_BYTES = len("first\nsecond\n") + 400000 + 1 + len("FINAL-ERROR-LINE\n")

#: Writes stdout and stderr in turn; before each switch it waits until the worker has read the
#: pipe it wrote to (FIONREAD: nothing left unread), so the order it wrote in is the order read.
ALTERNATE = """python3 - <<'EOF'
import fcntl, os, struct, termios, time
def drained(fd):
    while struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"    "))[0]:
        time.sleep(0.005)
    time.sleep(0.05)
for i in range(3):
    os.write(1, b"out%d\\n" % i); drained(1)
    os.write(2, b"err%d\\n" % i); drained(2)
EOF"""


@pytest.fixture(scope="module")
def long_run(api, stack) -> str:
    run = wait_run(submit(api, LONG, timeout=60)["run_id"], timeout=60)
    assert run.status == "succeeded" and run.stdout_bytes == LONG_BYTES
    return run.id


def test_live_output_ends_with_the_omitted_count_and_the_tail(api, long_run):
    chunks, after = [], -1
    while True:
        page = api.get(f"/runs/{long_run}/output", query_string={"after": after}).json
        chunks += page["chunks"]
        after = page["next"]
        if page["ended"]:
            break
    text = "".join(c["text"] for c in chunks)
    assert text.startswith("first\nsecond\n")
    omitted = LONG_BYTES - 256 * 1024 - 128 * 1024
    notices = [c["text"] for c in chunks if c["cut"]]
    assert len(notices) == 2 and notices[1] == f"[... hydra: {omitted} bytes of stdout omitted ...]\n"
    assert text.endswith("x\nFINAL-ERROR-LINE\n")


def test_hydra_logs_shows_the_end_and_cuts_to_lines(stack, long_run):
    stack.start_api()
    env = {"HYDRA_API_URL": stack.api_url, "HYDRA_TOKEN": stack.admin_token}
    runner = CliRunner()
    whole = runner.invoke(main, ["logs", long_run], env=env)
    assert whole.exit_code == 0 and whole.stdout.endswith("FINAL-ERROR-LINE\n") and "omitted" in whole.stdout
    assert runner.invoke(main, ["logs", "--tail", "1", long_run], env=env).stdout == "FINAL-ERROR-LINE\n"
    assert runner.invoke(main, ["logs", "--head", "2", long_run], env=env).stdout == "first\nsecond\n"
    followed = runner.invoke(main, ["logs", "-f", "--tail", "1", long_run], env=env)
    assert followed.stdout == "FINAL-ERROR-LINE\n"
    as_json = runner.invoke(main, ["logs", "--tail", "1", "--json", long_run], env=env)
    assert json.loads(as_json.stdout.splitlines()[-1])["text"] == "FINAL-ERROR-LINE\n"
    both = runner.invoke(main, ["logs", "--head", "1", "--tail", "1", long_run], env=env)
    assert both.exit_code == 2 and "not both" in both.output
    with Client(stack.api_url) as client:
        tail = "".join(c.text for c in client.log(long_run, tail=2))  # the end of the x line, and the last
        assert tail.startswith("xxx") and tail.endswith("x\nFINAL-ERROR-LINE\n") and tail.count("\n") == 2
        assert "".join(c.text for c in client.log(long_run, head=1)) == "first\n"


def test_the_download_is_the_full_output_as_an_attachment(api, stack, long_run, tmp_path: Path):
    answer = api.get(f"/runs/{long_run}/output.txt")
    assert answer.status_code == 200 and answer.mimetype == "text/plain"
    assert answer.headers["Content-Disposition"] == f'attachment; filename="{long_run}.txt"'
    assert answer.headers["X-Hydra-Output"] == "full"
    assert len(answer.data) == LONG_BYTES and b"omitted" not in answer.data
    assert answer.data.endswith(b"x\nFINAL-ERROR-LINE\n")
    stack.start_api()
    env = {"HYDRA_API_URL": stack.api_url, "HYDRA_TOKEN": stack.admin_token}
    saved = tmp_path / "run.txt"
    out = CliRunner().invoke(main, ["logs", "-o", str(saved), long_run], env=env)
    assert out.exit_code == 0, out.output
    assert saved.stat().st_size == LONG_BYTES
    with Client(stack.api_url) as client:
        assert client.download_output(long_run).endswith("FINAL-ERROR-LINE\n")


def test_without_the_full_output_the_download_is_what_is_stored(api, stack, long_run):
    kept = OutputDir.configured().path_of(long_run)
    aside = kept.with_name("aside")
    kept.rename(aside)
    try:
        answer = api.get(f"/runs/{long_run}/output.txt")
    finally:
        aside.rename(kept)
    assert answer.headers["X-Hydra-Output"] == "stored"
    text = answer.data.decode()
    assert text.startswith("first\nsecond\n") and "bytes of stdout omitted" in text
    assert text.endswith("x\nFINAL-ERROR-LINE\n")


def test_the_download_needs_the_right_to_read_the_run(api, stack, long_run):
    outsider = tokens.issue(TokenStore(), name=unique("dl"), user=unique("u"), roles={"elsewhere": Role.VIEWER})
    answer = api.get(f"/runs/{long_run}/output.txt", headers={"Authorization": f"Bearer {outsider.secret}"})
    assert answer.status_code == 404
    assert api.get("/runs/no-such-run/output.txt").status_code == 404


def test_the_console_links_the_download_and_serves_it(stack, long_run):
    console = browser(stack.admin_token)
    page = console.get(f"/ui/runs/{long_run}")
    assert f'href="/ui/runs/{long_run}/output.txt"'.encode() in page.data
    download = console.get(f"/ui/runs/{long_run}/output.txt")
    assert download.status_code == 200 and len(download.data) == LONG_BYTES
    assert "attachment" in download.headers["Content-Disposition"]
    assert browser().get(f"/ui/runs/{long_run}/output.txt").status_code == 302  # signed out: to the sign-in form


def test_stdout_and_stderr_read_back_in_the_order_they_were_written(api, stack):
    run = wait_run(submit(api, ALTERNATE)["run_id"])
    assert run.status == "succeeded", run.error or run.stderr
    expected = [(stream, f"{word}{i}\n") for i in range(3) for stream, word in (("stdout", "out"), ("stderr", "err"))]
    page = api.get(f"/runs/{run.id}/output").json
    assert [(c["stream"], c["text"]) for c in page["chunks"]] == expected
    console = browser(stack.admin_token)
    shown = console.get(f"/ui/runs/{run.id}/output.json").json
    assert [(c["stream"], c["text"]) for c in shown["chunks"]] == expected
    assert api.get(f"/runs/{run.id}/output.txt").data == b"".join(text.encode() for _s, text in expected)


def test_retention_deletes_the_full_output_with_its_run(api, stack):
    run = wait_run(submit(api, "echo bye", name=unique("old"))["run_id"])
    kept = OutputDir.configured().path_of(run.id)
    assert kept.read_bytes() == b"bye\n"
    Retention(settings=get_settings())._delete_runs([run])
    assert not kept.exists() and api.get(f"/runs/{run.id}").status_code == 404


def test_a_job_with_parameters_is_triggered_through_the_console_form(api, stack):
    body = job_body(
        'echo "$HYDRA_PARAM_TARGET ${#HYDRA_PARAM_TOKEN}"',
        params=[{"name": "TARGET", "required": True, "allowed": ["a", "b"]}, {"name": "TOKEN", "secret": True}],
    )
    job_id = api.post("/jobs/", json=body).json["job_id"]
    console = browser(stack.admin_token)
    job_page = console.get(f"/ui/jobs/{job_id}")
    assert f'href="/ui/jobs/{job_id}/trigger"'.encode() in job_page.data
    form = console.get(f"/ui/jobs/{job_id}/trigger")
    assert b'<select id="f-param.TARGET"' in form.data and b'type="password"' in form.data
    token = form.data.split(b'name="csrf_token" value="')[1].split(b'"')[0].decode()
    refused = console.post(
        f"/ui/jobs/{job_id}/trigger", data={"csrf_token": token, "param.TARGET": "c", "param.TOKEN": "hush"}
    )
    assert refused.status_code == 422 and b"must be one of: a, b" in refused.data and b"hush" not in refused.data
    done = console.post(
        f"/ui/jobs/{job_id}/trigger", data={"csrf_token": token, "param.TARGET": "b", "param.TOKEN": "hush"}
    )
    assert done.status_code == 302
    run_id = done.headers["Location"].rsplit("/", 1)[1]
    assert wait_run(run_id).stdout == "b 4\n"
    run_page = console.get(f"/ui/runs/{run_id}")
    assert b"TARGET=b" in run_page.data and b"TOKEN=&lt;redacted&gt;" in run_page.data and b"hush" not in run_page.data
