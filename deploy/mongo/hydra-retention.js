// Hydra retention: delete runs that ended more than N days ago, with their fences and live output.
//
//   HYDRA_RETENTION_DAYS=30 mongosh "$HYDRA_MONGO_URL" --quiet --file hydra-retention.js
//
// Hydra keeps job_runs, run_fences and run_output forever: it creates no TTL index, by
// design (FerretDB has none). Run this daily (cron: deploy/README.md, "Retention").
// Environment:
//   HYDRA_RETENTION_DAYS     keep this many days (default 30; at least 1 - see below)
//   HYDRA_MONGO_DB           the database (default hydra)
//   HYDRA_RETENTION_DRY_RUN  1: only count what would be deleted
//
// For every run that ended (succeeded, failed, timed_out, cancelled, lost, retrying,
// dead_letter) and was queued and finished before the cutoff, it deletes:
//   run_fences  <run_id>/start and <run_id>/end - a fence decides who may start or end a run
//               while the run is active; once it has ended it is only history;
//   run_output  <run_id>/<seq> chunks and <run_id>/eof;
//   job_runs    the run record itself, last (an interrupted pass is finished by the next).
// Runs still pending, queued or running keep everything, however old. Every delete is by
// exact _id, the one filter FerretDB indexes (docs/ARCHITECTURE.md); only the selection of
// old runs reads job_runs by (status, queued_at), an index on MongoDB.
// job_definitions stay (a job's last_run_id may then name a deleted run); remove
// "dead_letter" from ENDED to keep the dead-letter list longer.
//
// Keep at least a few days: a run's fences also stop a stale copy of its message (Redis
// hands unacknowledged messages out again after HYDRA_VISIBILITY_TIMEOUT, 1 h) from
// starting it a second time.

const days = Number(process.env.HYDRA_RETENTION_DAYS || 30);
if (!(days >= 1)) {
  throw new Error(`HYDRA_RETENTION_DAYS must be a number >= 1, got ${process.env.HYDRA_RETENTION_DAYS}`);
}
const dryRun = ["1", "true", "yes"].includes(String(process.env.HYDRA_RETENTION_DRY_RUN || "").toLowerCase());
const hydra = db.getSiblingDB(process.env.HYDRA_MONGO_DB || "hydra");
const cutoff = new Date(Date.now() - days * 24 * 3600 * 1000);

const ENDED = ["succeeded", "failed", "timed_out", "cancelled", "lost", "retrying", "dead_letter"];
const BATCH = 500;      // runs per pass
const ID_SLICE = 1000;  // _ids per delete

const runs = hydra.getCollection("job_runs");
const fences = hydra.getCollection("run_fences");
const output = hydra.getCollection("run_output");
const totals = { job_runs: 0, run_fences: 0, run_output: 0 };

const chunkId = (runId, seq) => `${runId}/${String(seq).padStart(8, "0")}`;  // hydra.names.output_chunk_id

function removeIds(collection, ids) {
  let count = 0;
  for (let i = 0; i < ids.length; i += ID_SLICE) {
    const filter = { _id: { $in: ids.slice(i, i + ID_SLICE) } };
    count += dryRun ? collection.countDocuments(filter) : collection.deleteMany(filter).deletedCount;
  }
  return count;
}

// The live-output documents of these runs: the eof record says how many chunks there are;
// without one (the writer died, or the run never started) probe <run_id>/00000000, ... by
// _id until one is missing, as GET /runs/<id>/output reads them.
function outputIds(runIds) {
  const ids = [];
  const eofs = output.find({ _id: { $in: runIds.map((id) => `${id}/eof`) } }, { _id: 1, run_id: 1, chunks: 1 }).toArray();
  const complete = new Set();
  for (const eof of eofs) {
    complete.add(eof.run_id);
    ids.push(eof._id);
    for (let seq = 0; seq < (eof.chunks || 0); seq++) ids.push(chunkId(eof.run_id, seq));
  }
  for (const runId of runIds) {
    if (complete.has(runId)) continue;
    for (let seq = 0; output.findOne({ _id: chunkId(runId, seq) }, { _id: 1 }) !== null; seq++) {
      ids.push(chunkId(runId, seq));
    }
  }
  return ids;
}

function purge(runIds) {
  totals.run_fences += removeIds(fences, runIds.flatMap((id) => [`${id}/start`, `${id}/end`]));
  totals.run_output += removeIds(output, outputIds(runIds));
  totals.job_runs += removeIds(runs, runIds);
}

print(`hydra retention: ${dryRun ? "dry run, " : ""}runs ended before ${cutoff.toISOString()} (${days} days)`);
const cursor = runs.find(
  { status: { $in: ENDED }, queued_at: { $lt: cutoff }, finished_at: { $lt: cutoff } },
  { _id: 1 },
).batchSize(BATCH);
let batch = [];
while (cursor.hasNext()) {
  batch.push(cursor.next()._id);
  if (batch.length === BATCH) {
    purge(batch);
    batch = [];
  }
}
if (batch.length) purge(batch);
for (const [name, count] of Object.entries(totals)) {
  print(`${name}: ${dryRun ? "would delete" : "deleted"} ${count} document(s)`);
}
