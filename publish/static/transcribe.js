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

  /* The paper form: each candidate's total computed from their party lines (the acta prints none),
     the lines' sum against válidos, válidos + nulos + vacíos against votos (the server checks
     them again); Enter moves on to the next empty box, in the acta's order, and saves when every
     box is filled; a dot in the centre code moves on to the mesa, as the code is printed. */
  var form = document.getElementById("entry");
  var sum = document.getElementById("sum");
  var votosCheck = document.getElementById("votos-check");
  var lines = document.querySelectorAll("input.tr-vote");
  var es = document.documentElement.lang !== "en";
  function number(input) { return input && /^\s*\d+\s*$/.test(input.value) ? Number(input.value) : null; }
  function byId(id) { return document.getElementById(id); }
  function showSum() {
    if (!sum) return;
    var total = 0, blank = 0, per = {};
    lines.forEach(function (v) {
      var n = number(v), c = v.getAttribute("data-candidate");
      per[c] = (per[c] || 0) + (n || 0);
      if (n === null) blank++; else total += n;
    });
    Object.keys(per).forEach(function (c) { var o = byId("t_" + c); if (o) o.textContent = String(per[c]); });
    var text = (es ? "Suma de las líneas: " : "Sum of the lines: ") + total;
    var v = number(byId("validos"));
    sum.className = "tr-sum";
    if (v !== null && blank === 0) {
      var ok = v === total;
      text += ok ? (es ? " = válidos ✓" : " = valid ✓") : (es ? " ≠ válidos (" + v + ")" : " ≠ valid (" + v + ")");
      sum.className += ok ? " tr-sum-good" : " tr-sum-bad";
    }
    sum.textContent = text;
    if (!votosCheck) return;
    var votos = number(byId("votos")), n = number(byId("nulos")), e = number(byId("vacios"));
    votosCheck.className = "tr-sum";
    votosCheck.textContent = "";
    if (votos !== null && v !== null && n !== null && e !== null && number(byId("parciales")) === 0) {
      var cast = v + n + e, good = cast === votos;
      votosCheck.textContent = (es ? "Válidos + nulos + vacíos: " : "Valid + null + blank: ") + cast +
        (good ? " = votos ✓" : " ≠ votos (" + votos + ")");
      votosCheck.className += good ? " tr-sum-good" : " tr-sum-bad";
    }
  }
  if (form) {
    var boxes = Array.prototype.slice.call(form.querySelectorAll("input[inputmode]"));
    form.addEventListener("input", showSum);
    form.addEventListener("keydown", function (e) {
      var i = boxes.indexOf(e.target);
      if (i < 0 || e.altKey || e.ctrlKey || e.metaKey) return;
      if (e.key === "." && e.target.id === "centro") {       /* 040202001.01.1.0001, as printed */
        e.preventDefault();
        byId("mesa").focus();
        byId("mesa").select();
        return;
      }
      if (e.target.id === "mesa" && e.key.length === 1) {    /* ".1.0001" after the mesa: not needed */
        if (e.key === ".") e.target.setAttribute("data-tail", "1");
        if (e.key === "." || e.target.getAttribute("data-tail")) { e.preventDefault(); return; }
      }
      if (e.key !== "Enter") return;
      var empty = boxes.filter(function (b) { return !b.value.trim(); });
      if (!empty.length) return;                                /* every box filled: Enter saves */
      e.preventDefault();
      var next = empty.filter(function (b) { return boxes.indexOf(b) > i; })[0] || empty[0];
      next.focus();
    });
    if (byId("mesa")) byId("mesa").addEventListener("blur", function () { byId("mesa").removeAttribute("data-tail"); });
    var centro = byId("centro");
    if (centro) centro.addEventListener("input", function () {  /* the whole code pasted in one box */
      var parts = centro.value.trim().split(".");
      if (parts.length > 1 && parts[1]) {
        centro.value = parts[0];
        if (!byId("mesa").value) byId("mesa").value = parts[1];
      }
    });
  }
  showSum();
})();
