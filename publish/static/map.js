/* The /totales map: an estado's numbers on hover, keyboard focus or a first tap (a second tap, or
 * a click with a mouse, follows its link to the estado's totals). Drawing is server-side SVG. */
(function () {
  "use strict";
  var map = document.getElementById("map");
  if (!map) { return; }
  var info = document.getElementById("map-info");
  var active = null, lastTouch = 0;
  function show(a) {
    if (active) { active.classList.remove("t-active"); }
    active = a;
    a.classList.add("t-active");
    info.textContent = a.dataset.info + " ";
    var go = document.createElement("a");
    go.href = a.getAttribute("href");
    go.textContent = map.closest("[lang]").lang === "en" ? "Open its totals →" : "Ver sus totales →";
    info.appendChild(go);
  }
  map.querySelectorAll("a.t-area").forEach(function (a) {
    function touched() { return Date.now() - lastTouch < 1000; }
    a.addEventListener("mouseenter", function () { if (!touched()) { show(a); } });
    a.addEventListener("focus", function () { if (!touched()) { show(a); } });
    a.addEventListener("touchstart", function () { lastTouch = Date.now(); }, { passive: true });
    a.addEventListener("click", function (e) {
      if (touched() && active !== a) { e.preventDefault(); show(a); }
    });
  });
})();
