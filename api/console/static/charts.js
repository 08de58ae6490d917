// The console's charts, drawn with the vendored uPlot 1.6.32 (static/vendor/uplot, MIT).
// Each chart has its numbers in a table beside it; series differ by dash pattern as well as colour.
(function () {
  "use strict";
  var root = document.getElementById("charts");
  if (!root || typeof uPlot === "undefined") return;
  var palette = window.hydra.palette, utc = window.hydra.utc;
  var dashes = [[], [6, 3], [2, 2], [8, 3, 2, 3], [1, 4], [10, 5], [4, 1]];
  function width(el) { return Math.max(320, el.clientWidth || 800); }
  function table(id, head, rows) {
    var t = document.getElementById(id);
    t.innerHTML = "";
    var thead = t.createTHead().insertRow();
    head.forEach(function (h) { var th = document.createElement("th"); th.scope = "col"; th.textContent = h; thead.appendChild(th); });
    var body = t.createTBody();
    rows.forEach(function (r) { var tr = body.insertRow(); r.forEach(function (c) { tr.insertCell().textContent = c; }); });
  }
  function bars(el, labels, values, label, old) {
    if (old) old.destroy();
    var xs = labels.map(function (_, i) { return i; });
    return new uPlot({
      width: width(el), height: 240,
      scales: { x: { time: false, range: [-0.5, Math.max(labels.length - 0.5, 0.5)] }, y: { range: [0, Math.max(1, Math.max.apply(null, values.concat([0])) * 1.15)] } },
      axes: [{ values: function (u, ticks) { return ticks.map(function (v) { return labels[v] !== undefined && Number.isInteger(v) ? labels[v] : ""; }); }, incrs: [1] }, {}],
      series: [{}, { label: label, fill: "#0550ae88", stroke: "#0550ae", paths: uPlot.paths.bars({ size: [0.6, 80] }), points: { show: false } }],
      legend: { show: true }
    }, [xs, values], el);
  }
  var runsPlot = null, queuesPlot = null, durPlot = null;
  function loadRuns() {
    fetch(root.dataset.runsUrl, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (d) {
      var el = document.getElementById("chart-runs");
      var names = Object.keys(d.by_status);
      var series = [{ value: utc.legend }].concat(names.map(function (n, i) {
        return { label: n, stroke: palette[n] || "#57606a", width: 2, dash: dashes[i % dashes.length], points: { show: true, size: 4 } };
      }));
      if (!names.length) series.push({ label: "no runs ended", stroke: "#8c959f" });
      var data = [d.starts].concat(names.length ? names.map(function (n) { return d.by_status[n]; }) : [d.starts.map(function () { return 0; })]);
      if (runsPlot) runsPlot.destroy();
      runsPlot = new uPlot({ width: width(el), height: 260, series: series, tzDate: utc.tzDate,
        scales: { y: { range: function (u, min, max) { return [0, Math.max(1, max * 1.15)]; } } },
        axes: [{ values: utc.values, label: "time (UTC)" }, { label: "runs per " + (d.step / 60) + " min" }] }, data, el);
      table("table-runs", ["bucket start (UTC)"].concat(names), d.starts.map(function (s, i) {
        return [window.hydra.utcText(s)].concat(names.map(function (n) { return d.by_status[n][i]; }));
      }));
      var dl = document.getElementById("chart-durations");
      var labels = d.durations.map(function (b) { return b.upper === null ? "> 4 h" : "≤ " + (b.upper < 60 ? b.upper + " s" : (b.upper / 60) + " min"); });
      var counts = d.durations.map(function (b) { return b.count; });
      durPlot = bars(dl, labels, counts, "runs", durPlot);
      table("table-durations", ["took", "runs"], labels.map(function (l, i) { return [l, counts[i]]; }));
    });
  }
  function loadQueues() {
    fetch(root.dataset.queuesUrl, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (d) {
      var el = document.getElementById("chart-queues");
      var labels = d.map(function (q) { return q.worker; });
      var depths = d.map(function (q) { return q.depth; });
      queuesPlot = bars(el, labels, depths, "messages waiting", queuesPlot);
      table("table-queues", ["worker", "queue", "waiting"], d.map(function (q) { return [q.worker, q.queue, q.depth]; }));
    }).finally(function () { setTimeout(loadQueues, 5000); });
  }
  loadRuns();
  setInterval(loadRuns, 30000);
  loadQueues();
})();
