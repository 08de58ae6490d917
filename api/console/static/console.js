// Hydra console: small progressive enhancements (the pages work without them, but for live parts),
// and what the other scripts share (window.hydra): times, durations, glyphs, the charts' UTC axis.
(function () {
  "use strict";
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  // A time as the reader's clock shows it, with its offset: "2026-05-01 16:03:07 +02:00".
  function local(d) {
    var off = -d.getTimezoneOffset(), sign = off < 0 ? "-" : "+";
    off = Math.abs(off);
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + pad(d.getHours()) + ":" +
      pad(d.getMinutes()) + ":" + pad(d.getSeconds()) + " " + sign + pad(Math.floor(off / 60)) + ":" + pad(off % 60);
  }
  // Every time is written in UTC (the server writes it); hovering one shows it in the reader's own time.
  function times(root) {
    (root || document).querySelectorAll("time[datetime]").forEach(function (t) {
      var d = new Date(t.getAttribute("datetime"));
      if (!isNaN(d.getTime())) t.title = t.textContent.trim() + " = " + local(d) + " (your time)";
    });
  }
  // The same words as hydra.model.wording.duration: "0.25 s", "12 s", "1 min 30 s", "2 h 5 min".
  function duration(s) {
    if (s === null || s === undefined) return "—";
    if (s < 10) return (s.toFixed(2).replace(/0+$/, "").replace(/\.$/, "") || "0") + " s";
    var total = Math.round(s);
    if (total < 60) return total + " s";
    var units = [["d", 86400, "h", 3600], ["h", 3600, "min", 60], ["min", 60, "s", 1]];
    for (var i = 0; i < units.length; i++) {
      var u = units[i];
      if (total >= u[1]) {
        var big = Math.floor(total / u[1]), rest = Math.floor((total % u[1]) / u[3]);
        return big + " " + u[0] + (rest ? " " + rest + " " + u[2] : "");
      }
    }
    return total + " s";
  }
  function utcText(epochSeconds) { return new Date(epochSeconds * 1000).toISOString().slice(0, 19).replace("T", " ") + "Z"; }
  window.hydra = {
    times: times,
    duration: duration,
    utcText: utcText,
    glyphs: JSON.parse(document.body.dataset.glyphs || "{}"),
    palette: { succeeded: "#116329", failed: "#a40e26", timed_out: "#bc4c00", cancelled: "#7d4e00", lost: "#6639ba", retrying: "#0550ae", dead_letter: "#24292f" },
    // uPlot's time axis in UTC and 24-hour time, like every other time of the console.
    utc: {
      tzDate: function (ts) { return typeof uPlot === "undefined" ? new Date(ts * 1000) : uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },
      values: [
        [3600 * 24 * 365, "{YYYY}", null, null, null, null, null, null, 1],
        [3600 * 24 * 28, "{YYYY}-{MM}", null, null, null, null, null, null, 1],
        [3600 * 24, "{MM}-{DD}", "\n{YYYY}", null, null, null, null, null, 1],
        [3600, "{HH}:{mm}", "\n{YYYY}-{MM}-{DD}", null, "\n{MM}-{DD}", null, null, null, 1],
        [60, "{HH}:{mm}", "\n{YYYY}-{MM}-{DD}", null, "\n{MM}-{DD}", null, null, null, 1],
        [1, "{HH}:{mm}:{ss}", "\n{YYYY}-{MM}-{DD}", null, "\n{MM}-{DD}", null, null, null, 1],
        [0.001, "{HH}:{mm}:{ss}.{fff}", "\n{YYYY}-{MM}-{DD}", null, "\n{MM}-{DD}", null, null, null, 1]
      ],
      legend: "{YYYY}-{MM}-{DD} {HH}:{mm}:{ss}Z"
    }
  };
  times(document);
  // Confirm destructive actions.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
  // A form that came back with errors: focus its summary (it links to each field).
  var summary = document.getElementById("form-error");
  if (summary) summary.focus();
  document.querySelectorAll("a[data-back]").forEach(function (link) {
    link.addEventListener("click", function (event) { event.preventDefault(); history.back(); });
  });
  // Regions marked data-live="ms" are fetched again (the same page, same bounded query) and replaced.
  document.querySelectorAll("[data-live]").forEach(function (region) {
    var every = parseInt(region.dataset.live, 10) || 3000;
    function refresh() {
      if (document.hidden) { setTimeout(refresh, every); return; }  // a background tab asks nothing
      fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (!html) return;
          var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(region.id);
          if (fresh && fresh.innerHTML !== region.innerHTML && !region.contains(document.activeElement)) {
            region.innerHTML = fresh.innerHTML;
            times(region);
          }
        })
        .catch(function () {})
        .finally(function () { setTimeout(refresh, every); });
    }
    setTimeout(refresh, every);
  });
})();
