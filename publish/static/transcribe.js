/* testigo transcribe: the photo viewer (zoom, rotate, drag) and keyboard shortcuts; a live sum.
   No inline script anywhere (CSP script-src 'self'); everything here works from the markup. */
(function () {
  "use strict";
  var img = document.getElementById("photo");
  var stage = document.getElementById("stage");
  var canvas = document.getElementById("canvas");
  var view = { zoom: 1, rotation: 0 };
  var ZOOMS = [0.5, 0.75, 1, 1.5, 2, 3, 4, 6];

  function baseSize() {
    /* zoom 1 = the whole photo fits the stage's width (height, when turned sideways) */
    var w = img.naturalWidth || Number(img.getAttribute("width")) || 600;
    var h = img.naturalHeight || Number(img.getAttribute("height")) || 800;
    var turned = view.rotation % 180 !== 0;
    var room = stage.clientWidth - 4;
    var scale = room / (turned ? h : w);
    return { w: w * scale, h: h * scale };
  }

  function apply(keepCentre) {
    if (!img) return;
    var cx = stage.scrollLeft + stage.clientWidth / 2, cy = stage.scrollTop + stage.clientHeight / 2;
    var oldW = canvas.offsetWidth || 1, oldH = canvas.offsetHeight || 1;
    var b = baseSize(), w = b.w * view.zoom, h = b.h * view.zoom;
    var turned = view.rotation % 180 !== 0;
    img.style.width = w + "px";
    img.style.height = h + "px";
    img.style.transform = "translate(-50%, -50%) rotate(" + view.rotation + "deg)";
    canvas.style.width = (turned ? h : w) + "px";
    canvas.style.height = (turned ? w : h) + "px";
    img.setAttribute("data-zoom", String(view.zoom));
    img.setAttribute("data-rotation", String(view.rotation));
    if (keepCentre) {
      stage.scrollLeft = cx * canvas.offsetWidth / oldW - stage.clientWidth / 2;
      stage.scrollTop = cy * canvas.offsetHeight / oldH - stage.clientHeight / 2;
    }
  }

  function zoom(step) {
    var i = ZOOMS.indexOf(view.zoom);
    i = Math.max(0, Math.min(ZOOMS.length - 1, (i < 0 ? 2 : i) + step));
    view.zoom = ZOOMS[i];
    apply(true);
  }

  function rotate(deg) {
    view.rotation = (view.rotation + deg + 360) % 360;
    apply(false);
  }

  function reset() {
    view.zoom = 1;
    view.rotation = 0;
    apply(false);
    stage.scrollTop = stage.scrollLeft = 0;
  }

  var actions = {
    "zoom-in": function () { zoom(1); }, "zoom-out": function () { zoom(-1); },
    "rotate-right": function () { rotate(90); }, "rotate-left": function () { rotate(-90); },
    "reset": reset
  };
  var keys = { KeyZ: "zoom-in", KeyX: "zoom-out", KeyR: "rotate-right", KeyL: "rotate-left", Digit0: "reset" };

  if (img && stage) {
    if (img.complete) apply(false); else img.addEventListener("load", function () { apply(false); });
    window.addEventListener("resize", function () { apply(false); });
    document.querySelectorAll("[data-action]").forEach(function (b) {
      b.addEventListener("click", function () { actions[b.getAttribute("data-action")](); });
    });
    /* drag to move around an enlarged photo */
    var drag = null;
    stage.addEventListener("pointerdown", function (e) {
      drag = { x: e.clientX, y: e.clientY, left: stage.scrollLeft, top: stage.scrollTop };
      stage.setPointerCapture(e.pointerId);
    });
    stage.addEventListener("pointermove", function (e) {
      if (!drag) return;
      stage.scrollLeft = drag.left - (e.clientX - drag.x);
      stage.scrollTop = drag.top - (e.clientY - drag.y);
    });
    stage.addEventListener("pointerup", function () { drag = null; });
  }

  /* Alt+key works while typing in the form: the volunteer never leaves the boxes */
  document.addEventListener("keydown", function (e) {
    if (!e.altKey || e.ctrlKey || e.metaKey) return;
    if (e.code === "KeyN") {
      var skip = document.getElementById("skip");
      if (skip) { e.preventDefault(); window.location.href = skip.href; }
      return;
    }
    var name = keys[e.code];
    if (name && img) { e.preventDefault(); actions[name](); }
  });

  /* the candidates' sum against válidos, as the volunteer types (the server checks it again) */
  var sum = document.getElementById("sum");
  var validos = document.getElementById("validos");
  var votes = document.querySelectorAll("input.tr-vote");
  function number(input) { return /^\s*\d+\s*$/.test(input.value) ? Number(input.value) : null; }
  function showSum() {
    if (!sum) return;
    var total = 0, blank = 0;
    votes.forEach(function (v) { var n = number(v); if (n === null) blank++; else total += n; });
    var es = document.documentElement.lang !== "en";
    var text = (es ? "Suma de candidatos: " : "Candidates' sum: ") + total;
    var v = number(validos);
    sum.className = "tr-sum";
    if (v !== null && blank === 0) {
      var ok = v === total;
      text += ok ? (es ? " = válidos ✓" : " = valid ✓") : (es ? " ≠ válidos (" + v + ")" : " ≠ valid (" + v + ")");
      sum.className += ok ? " tr-sum-good" : " tr-sum-bad";
    }
    sum.textContent = text;
  }
  votes.forEach(function (v) { v.addEventListener("input", showSum); });
  if (validos) validos.addEventListener("input", showSum);
  showSum();
})();
