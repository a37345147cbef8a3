// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";
  // Keyboard navigation on photo pages: links carry data-key.
  document.addEventListener("keydown", function (ev) {
    if (ev.altKey || ev.ctrlKey || ev.metaKey || ev.shiftKey) return;
    var t = ev.target;
    if (t && (t.tagName === "INPUT" || t.tagName === "SELECT" || t.tagName === "TEXTAREA")) return;
    var link = document.querySelector('a[data-key="' + ev.key + '"]');
    if (link) { ev.preventDefault(); window.location.href = link.href; }
  });
})();
