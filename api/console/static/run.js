// A run's live output (server-sent events from the console's output/events) and its state.
(function () {
  "use strict";
  var box = document.getElementById("run-state");
  if (!box) return;
  var out = document.getElementById("output");
  var note = document.getElementById("follow-note");
  var after = -1;
  var renderedStatus = box.dataset.status;
  var terminal = ["succeeded", "failed", "timed_out", "cancelled", "lost", "dead_letter"];
  var symbols = window.hydra.glyphs;

  function showStatus(word) {
    if (!word || box.dataset.status === word) return;
    box.dataset.status = word;
    var cell = document.getElementById("run-status");
    cell.innerHTML = "";
    var span = document.createElement("span");
    span.className = "status status-" + word;
    span.dataset.status = word;
    var sym = document.createElement("span");
    sym.setAttribute("aria-hidden", "true");
    sym.textContent = symbols[word] || "•";
    span.appendChild(sym);
    span.appendChild(document.createTextNode(" " + word));
    cell.appendChild(span);
  }
  function seconds(a, b) {
    if (!a || !b) return "—";
    return window.hydra.duration((Date.parse(b) - Date.parse(a)) / 1000);
  }
  function refreshState() {
    return fetch(box.dataset.stateUrl, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (s) {
        if (!s) return;
        showStatus(s.status);
        document.getElementById("run-returncode").textContent = s.returncode === null ? "—" : String(s.returncode);
        document.getElementById("run-worker").textContent = s.worker_id || "—";
        document.getElementById("run-waited").textContent = seconds(s.queued_at, s.started_at);
        document.getElementById("run-duration").textContent = window.hydra.duration(s.duration);
        if (terminal.indexOf(s.status) >= 0 && terminal.indexOf(renderedStatus) < 0 && !box.dataset.settled) {
          box.dataset.settled = "1";
          redrawParts(["run-actions", "timeline"]);
        }
      });
  }
  // Once the run ended, its actions (retry instead of cancel) and attempt timeline come from a fresh copy of the page.
  function redrawParts(ids) {
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html");
        ids.forEach(function (id) {
          var now = document.getElementById(id), then = fresh.getElementById(id);
          if (now && then) { now.innerHTML = then.innerHTML; window.hydra.times(now); }
        });
      })
      .catch(function () {});
  }
  function append(chunks) {
    chunks.forEach(function (c) {
      var span = document.createElement("span");
      if (c.stream === "stderr") span.className = "stderr";
      if (c.cut) span.className += " notice";
      span.textContent = c.text;
      out.appendChild(span);
    });
    if (chunks.length) out.scrollTop = out.scrollHeight;
  }
  // Server-sent events: the stored output, then live chunks and status changes, the last
  // page with `ended`. The browser reconnects by itself, from the last page (Last-Event-ID).
  function follow() {
    note.textContent = "(following)";
    var source = new EventSource(box.dataset.eventsUrl + "?after=" + after, { withCredentials: true });
    source.addEventListener("page", function (e) {
      var a = JSON.parse(e.data);
      note.textContent = "(following)";
      append(a.chunks || []);
      after = a.next;
      if (a.status) showStatus(a.status);
      if (a.ended) {
        source.close();
        note.textContent = "(complete)";
        refreshState();
        return;
      }
      if (terminal.indexOf(a.status) >= 0 || (a.chunks || []).length === 0) refreshState();
    });
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) {  // refused (a 404, say): ask again later
        note.textContent = "(connection lost; retrying)";
        setTimeout(follow, 2000);
      } else {
        note.textContent = "(connection lost; reconnecting)";
      }
    };
  }
  refreshState();
  follow();
})();
