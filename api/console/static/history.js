// A job's run history on its page: one point per ended run (when it ended, UTC; how long it ran),
// one series per outcome, drawn with the vendored uPlot; the table beside it has the same numbers.
(function () {
  "use strict";
  var root = document.getElementById("history");
  if (!root || typeof uPlot === "undefined") return;
  var h = window.hydra, plot = null;
  var order = ["succeeded", "failed", "timed_out", "cancelled", "lost", "retrying", "dead_letter"];
  function table(runs) {
    var t = document.getElementById("table-history");
    t.innerHTML = "";
    var head = t.createTHead().insertRow();
    ["ended (UTC)", "run", "attempt", "outcome", "took"].forEach(function (label) {
      var th = document.createElement("th"); th.scope = "col"; th.textContent = label; head.appendChild(th);
    });
    var body = t.createTBody();
    runs.slice().reverse().forEach(function (r) {
      var tr = body.insertRow();
      tr.insertCell().textContent = h.utcText(r.ended);
      var link = document.createElement("a");
      link.href = root.dataset.runUrl.replace("RUN", encodeURIComponent(r.id));
      link.textContent = r.id.slice(0, 13);
      tr.insertCell().appendChild(link);
      tr.insertCell().textContent = r.attempt;
      tr.insertCell().textContent = (h.glyphs[r.status] || "•") + " " + r.status;
      tr.insertCell().textContent = r.duration === null ? "never ran" : h.duration(r.duration);
    });
    if (!runs.length) body.insertRow().insertCell().textContent = "No run has ended yet.";
  }
  function draw(runs) {
    var el = document.getElementById("chart-history");
    var seen = order.filter(function (s) { return runs.some(function (r) { return r.status === s; }); });
    runs.forEach(function (r) { if (seen.indexOf(r.status) < 0) seen.push(r.status); });
    var xs = runs.map(function (r) { return r.ended; });
    var data = [xs].concat(seen.map(function (s) {
      return runs.map(function (r) { return r.status === s ? (r.duration === null ? 0 : r.duration) : null; });
    }));
    var series = [{ value: h.utc.legend }].concat(seen.map(function (s) {
      var colour = h.palette[s] || "#57606a";
      return {
        label: (h.glyphs[s] || "•") + " " + s, stroke: colour, paths: function () { return null; },
        points: { show: true, size: 9, width: 2, stroke: colour, fill: s === "succeeded" ? colour + "55" : colour },
        value: function (u, v) { return v === null ? "" : h.duration(v); }
      };
    }));
    if (!runs.length) {  // nothing to draw: say so instead of an empty chart
      el.textContent = "No run has ended yet.";
      el.classList.add("empty");
      return;
    }
    if (plot) plot.destroy();
    // At least a minute wide, centred on the runs, with some room at both ends.
    var middle = (xs[0] + xs[xs.length - 1]) / 2, half = Math.max(30, (xs[xs.length - 1] - xs[0]) * 0.55);
    plot = new uPlot({
      width: Math.max(320, el.clientWidth || 800), height: 240, tzDate: h.utc.tzDate, series: series,
      scales: {
        x: { range: function () { return [middle - half, middle + half]; } },
        y: { range: function (u, min, max) { return [0, Math.max(1, (max || 0) * 1.15)]; } }
      },
      axes: [
        { values: h.utc.values, label: "ended (UTC)" },
        { label: "took", size: 70, values: function (u, ticks) { return ticks.map(function (v) { return h.duration(v); }); } }
      ],
      cursor: { points: { size: 11 } }
    }, data, el);
  }
  fetch(root.dataset.url, { credentials: "same-origin" })
    .then(function (r) { return r.ok ? r.json() : []; })
    .then(function (runs) { draw(runs); table(runs); });
})();
