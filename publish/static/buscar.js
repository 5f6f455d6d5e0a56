/* Buscar in the browser, for the static mirror (`testigo mirror`): there is no server to ask, so
 * the page loads /buscar/centros.json (every centre, its place and its mesas) and searches it
 * here the way the site's full-text search does: a code's beginning, or every word of the text
 * as the beginning of a word of the centre's estado, municipio or parroquia (accents and case
 * ignored). On the live site the server has already answered (#search-status is there) and this
 * does nothing. Results are built with textContent only: no text is ever parsed as HTML.
 */
(function () {
  "use strict";
  var form = document.getElementById("search-form");
  if (!form || document.getElementById("search-status")) { return; }
  var params = new URLSearchParams(location.search);
  var q = (params.get("q") || params.get("id") || "").slice(0, 200).trim();
  if (!q) { return; }
  var lang = form.dataset.lang === "en" ? "en" : "es";
  var T = function (es, en) { return lang === "en" ? en : es; };
  var prefix = lang === "en" ? "/en" : "";
  var MAX = 50;
  document.getElementById("q").value = q;

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) { e.textContent = text; }
    return e;
  }
  function fold(s) { return s.normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase(); }
  function words(s) { return fold(s).match(/[\p{L}\p{N}]+/gu) || []; }
  function num(v) { return String(v).replace(/\B(?=(\d{3})+(?!\d))/g, lang === "es" ? "." : ","); }
  function mesaId(centro, m) { return centro + "." + (m < 10 ? "0" + m : String(m)); }

  var status = el("p", { id: "search-status" }, T("Buscando…", "Searching…"));
  var hint = form.nextElementSibling;
  (hint || form).after(status);
  var mesa = q.match(/^\s*(\d{1,12})\s*[.\-/ ]\s*(\d{1,3})\s*$/);
  if (mesa) {
    var p = el("p", { "class": "t-msg" }, T("¿Busca la mesa ", "Looking for mesa "));
    var id = mesaId(parseInt(mesa[1], 10), parseInt(mesa[2], 10));
    p.appendChild(el("a", { href: prefix + "/mesa/" + id + "/" }, id));
    p.appendChild(document.createTextNode("?"));
    status.before(p);
  }

  fetch(form.dataset.index, { credentials: "omit" }).then(function (r) {
    if (!r.ok) { throw new Error(r.status); }
    return r.json();
  }).then(function (data) {
    var digits = q.replace(/ /g, "");
    var found;
    if (/^[0-9]+$/.test(digits)) {
      digits = digits.slice(0, 12);
      found = data.centros.filter(function (c) { return String(c[0]).indexOf(digits) === 0; });
    } else {
      var terms = words(q).slice(0, 8);
      if (!terms.length) {
        status.textContent = T("Escriba un código o el nombre de un lugar (letras o números).",
                               "Type a code or a place name (letters or digits).");
        return;
      }
      var placeWords = data.places.map(function (pl) { return words(pl.join(" ")); });
      found = data.centros.filter(function (c) {
        var ws = placeWords[c[1]].concat([String(c[0])]);
        return terms.every(function (t) { return ws.some(function (w) { return w.indexOf(t) === 0; }); });
      });
    }
    if (!found.length) {
      status.className = "t-msg";
      status.textContent = T("Ningún centro coincide con «", "No centre matches «") + q + "».";
      return;
    }
    status.textContent = num(found.length) + " " + T("centros", "centres") +
      (found.length > MAX ? "; " + T("se muestran los primeros", "showing the first") + " " + MAX : "") + ".";
    var list = el("ol", { "class": "t-results", id: "results" });
    found.slice(0, MAX).forEach(function (c) {
      var place = data.places[c[1]];
      var li = el("li", { "class": "t-centre", "data-centro": String(c[0]) });
      var a = el("a", { "class": "t-centre-link", href: prefix + "/centro/" + c[0] + "/" });
      a.appendChild(el("strong", {}, T("Centro ", "Centre ") + c[0]));
      li.appendChild(a);
      li.appendChild(document.createTextNode(" — " + place[2] + ", " + place[1] + ", " + place[0] + " · " +
                                             num(c[2]) + " " + T("electores", "electors")));
      var ms = el("div", { "class": "t-mesas" }, T("Mesas", "Mesas") + ": ");
      var numbers = typeof c[3] === "number" ? Array.from({ length: c[3] }, function (_, i) { return i + 1; }) : c[3];
      numbers.forEach(function (m) {
        ms.appendChild(el("a", { "class": "t-mesa-link", href: prefix + "/mesa/" + mesaId(c[0], m) + "/" }, String(m)));
        ms.appendChild(document.createTextNode(" "));
      });
      li.appendChild(ms);
      list.appendChild(li);
    });
    status.after(list);
  }).catch(function () {
    status.className = "t-msg";
    status.textContent = T("No se pudo cargar el índice de búsqueda (abra esta copia con un servidor web, " +
                           "p. ej. python3 -m http.server).", "The search index could not be loaded (open this " +
                           "copy through a web server, e.g. python3 -m http.server).");
  });
})();
