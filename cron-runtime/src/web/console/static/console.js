// cronjobs console: progressive enhancement only. Every page works without this file.
// 1. Forms with data-confirm ask before a destructive action.
// 2. Regions with data-refresh are reloaded every 10 s while the tab is visible
//    (the same page fetched again; only that region is replaced, never a form being typed in).
"use strict";
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
(function () {
  var regions = document.querySelectorAll("[data-refresh]");
  if (!regions.length || !window.fetch || !window.DOMParser) return;
  function refresh() {
    if (document.hidden) return;
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (text) {
        if (!text) return;
        var fresh = new DOMParser().parseFromString(text, "text/html");
        regions.forEach(function (region) {
          var name = region.getAttribute("data-refresh");
          var replacement = fresh.querySelector('[data-refresh="' + name + '"]');
          if (replacement && !region.contains(document.activeElement)) {
            region.innerHTML = replacement.innerHTML;
          }
        });
      })
      .catch(function () { /* offline for a moment: try again next time */ });
  }
  window.setInterval(refresh, 10000);
})();
