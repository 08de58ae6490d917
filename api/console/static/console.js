// Hydra console: small progressive enhancements (the pages work without them, but for live parts).
(function () {
  "use strict";
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
          }
        })
        .catch(function () {})
        .finally(function () { setTimeout(refresh, every); });
    }
    setTimeout(refresh, every);
  });
})();
