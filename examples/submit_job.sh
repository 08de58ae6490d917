#!/usr/bin/env bash
# Submit the example job with curl and wait for its run (`bash examples/submit_job.sh`).
# The API is $HYDRA_API_URL (default http://localhost:8000); the token $HYDRA_TOKEN, else the
# one `make up` keeps in .hydra/admin.token. Exits 0 when the run succeeded.
set -euo pipefail
API="${HYDRA_API_URL:-http://localhost:8000}"
API="${API%/}"
TOKEN="${HYDRA_TOKEN:-$(cat "${HYDRA_TOKEN_FILE:-.hydra/admin.token}")}"

created=$(curl -sS -X POST "$API/jobs/" \
  -H "Authorization: Bearer $TOKEN" \
  -H "Content-Type: application/json" \
  -d '{
    "name": "test-echo",
    "user": "rich",
    "affinity": { "os": ["linux"], "tags": [], "allowed_users": ["rich"] },
    "command": "echo '"'"'hello world'"'"'",
    "shell": "bash",
    "retries": 0,
    "timeout": 10
  }')
echo "$created"
job_id=$(printf '%s' "$created" | sed -n 's/.*"job_id": *"\([^"]*\)".*/\1/p')
if [ -z "$job_id" ]; then
  echo "submission failed" >&2
  exit 1
fi

# Poll the job until its latest run has ended, then print the run history.
for _ in $(seq 1 120); do
  status=$(curl -sS -H "Authorization: Bearer $TOKEN" "$API/jobs/$job_id" | sed -n 's/.*"status": *"\([a-z_]*\)".*/\1/p')
  case "$status" in
    succeeded|failed|timed_out|cancelled|lost|dead_letter) break ;;
  esac
  sleep 0.5
done
curl -sS -H "Authorization: Bearer $TOKEN" "$API/jobs/$job_id/runs"
echo "job $job_id: $status"
[ "$status" = "succeeded" ]
