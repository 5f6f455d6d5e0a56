/* The public site as a browser app: every page is a few SQL queries on the bundle's database,
 * read by HTTP range requests (sql.js-httpvfs), never downloaded whole. Addresses work on any
 * static host with no rewrite rules: index.html#/mesa/201301006.01, #/en/mesa/... in English.
 *
 * Written by testigo (publish/app); the pages show what the site's (publish/pages) show.
 */
(function () {
  "use strict";
  var cfg, data, worker, base, sigResult, candidates = [], cards = [], currentPath = "/";
  var view = document.getElementById("view");
  var lang = "es";
  function T(es, en) { return lang === "en" ? en : es; }
  function n(v) {
    if (v === null || v === undefined) { return "—"; }
    return String(v).replace(/\B(?=(\d{3})+(?!\d))/g, lang === "es" ? "." : ",");
  }
  function pct(a, b) {
    if (!b) { return "—"; }
    return (100 * a / b).toFixed(1).replace(".", lang === "es" ? "," : ".") + " %";
  }
  function esc(s) {
    return String(s === null || s === undefined ? "" : s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function link(path) { return "#" + (lang === "en" ? "/en" : "") + path; }
  function dataUrl(rel) { return new URL(rel, base).toString(); }
  async function q(sql, params) { return worker.db.query(sql, params || []); }

  /* --- the frame: navigation, language, the host and the signature --- */
  function frame() {
    document.documentElement.lang = lang;
    document.getElementById("nav").innerHTML =
      '<a class="t-brand" href="' + link("/") + '">testigo · ' + T("Actas 28J", "28J actas") + "</a>" +
      '<a href="' + link("/buscar") + '">' + T("Buscar centro", "Find a centre") + "</a>" +
      '<a href="' + link("/totales") + '">' + T("Totales", "Totals") + "</a>" +
      '<a href="' + link("/comprobar") + '">' + T("Comprobar mi acta", "Check my acta") + "</a>" +
      '<a href="' + link("/auditoria") + '">' + T("Auditoría", "Audit") + "</a>" +
      '<a href="' + link("/descargas") + '">' + T("Descargas", "Downloads") + "</a>" +
      '<a class="t-lang" id="lang-switch" href="' + switchLang() + '">' + (lang === "es" ? "English" : "Español") + "</a>";
    signatureLine();
  }
  function switchLang() {
    var path = location.hash.replace(/^#/, "").replace(/^\/en(?=\/|$)/, "") || "/";
    return "#" + (lang === "es" ? "/en" : "") + path;
  }
  function signatureLine() {
    var el = document.getElementById("signature");
    if (!sigResult) { el.textContent = T("Comprobando la firma del paquete…", "Checking the bundle's signature…"); return; }
    el.dataset.ok = sigResult.ok ? "1" : "0";
    el.innerHTML = (sigResult.ok
      ? "✔ " + T("Firma de SHA256SUMS verificada en su navegador con la clave ", "Signature of SHA256SUMS verified in your browser with key ")
      : "✘ " + esc(sigResult.reason || T("La firma no verifica.", "The signature does not verify.")) + " " + T("Clave: ", "Key: "))
      + "<code id=\"key-id\">" + esc(sigResult.key_id || "—") + "</code> · <a href=\"" + link("/descargas") + "\">"
      + T("qué prueba esto", "what this proves") + "</a>";
  }
  function hostLine(problems) {
    var el = document.getElementById("host-status");
    el.innerHTML = problems.map(function (p) {
      return "<li class=\"t-host-problem\">⚠ " + T("El servidor de datos ", "The data host ") + "<code>" + esc(p.url) + "</code> "
        + esc(p.problem) + (p === problems[problems.length - 1] && !base ? "" : ". " + T("Se probó el siguiente.", "The next one was tried.")) + "</li>";
    }).join("");
  }

  /* --- pages --- */
  function bars(votes, id) {
    var total = votes.reduce(function (s, v) { return s + v.votes; }, 0);
    var max = Math.max.apply(null, votes.map(function (v) { return v.votes; }).concat([1]));
    return '<div class="t-app-chart" id="' + id + '">' + votes.slice().sort(function (a, b) { return b.votes - a.votes; }).map(function (v) {
      return '<div class="t-bar" data-code="' + esc(v.candidate) + '" data-votes="' + v.votes + '"><span class="t-bar-name">' + esc(v.name)
        + '</span><span class="t-bar-fill" style="width:' + (100 * v.votes / max).toFixed(1) + '%"></span><span class="t-bar-num">'
        + n(v.votes) + " · " + pct(v.votes, total) + "</span></div>";
    }).join("") + "</div>";
  }
  function totalsTable(votes, id) {
    return '<table class="t-table" id="' + id + '"><thead><tr><th>' + T("Candidato", "Candidate") + '</th><th class="num">'
      + T("Votos", "Votes") + "</th></tr></thead><tbody>" + votes.map(function (v) {
        return '<tr data-code="' + esc(v.candidate) + '"><td>' + esc(v.name) + '</td><td class="num">' + n(v.votes) + "</td></tr>";
      }).join("") + "</tbody></table>";
  }
  function searchForm(value) {
    return '<form id="find" class="t-search"><label for="q">' + T("Busque su centro: código, lugar o nombre de la escuela", "Find your centre: code, place or school name")
      + '</label> <input id="q" name="q" value="' + esc(value || "") + '" placeholder="201301006 · Chacao"> <button type="submit">'
      + T("Buscar", "Search") + "</button></form>";
  }
  function bindSearch() {
    var f = document.getElementById("find");
    if (f) {
      f.addEventListener("submit", function (e) {
        e.preventDefault();
        location.hash = link("/buscar") + "?q=" + encodeURIComponent(document.getElementById("q").value.trim());
      });
    }
  }

  async function home() {
    var votes = await q("SELECT candidate, name, votes FROM totals_nacional ORDER BY rowid");
    var c = cfg.counts || {};
    return "<h1>" + T("Actas de la elección presidencial del 28 de julio de 2024", "Tally sheets of the 28 July 2024 presidential election") + "</h1>"
      + "<p>" + T("Busque su centro, abra su mesa y vea el acta: la foto y cada lectura. Todo se lee del paquete firmado, aquí mismo en su navegador.",
                  "Find your centre, open your mesa and see its acta: the photo and every reading. Everything is read from the signed bundle, right here in your browser.") + "</p>"
      + searchForm() + "<h2>" + T("Totales nacionales", "National totals") + "</h2>"
      + "<p>" + T("Mesas contadas", "Mesas counted") + ': <strong id="mesas-counted">' + n(c.mesas_counted) + "</strong> · "
      + T("actas", "actas") + ": " + n(c.actas) + " · " + T("fotos", "photos") + ": " + n(c.images) + "</p>"
      + bars(votes, "chart-totals") + totalsTable(votes, "totals-table")
      + '<p><a href="' + link("/totales") + '">' + T("Totales por estado, municipio, parroquia y centro", "Totals by state, municipality, parish and centre") + "</a> · "
      + '<a id="home-audit" href="' + link("/auditoria") + '">' + T("Auditoría: ¿cuadran las actas?", "Audit: do the actas hold together?") + "</a></p>";
  }

  function fts(text) {
    var words = (text.match(/[\p{L}\p{N}_]+/gu) || []).slice(0, 8);
    return words.length ? words.map(function (w) { return '"' + w.slice(0, 40) + '"*'; }).join(" ") : null;
  }
  // people know their school, not its code: centres whose name or address, as a photo of their
  // acta prints it (the printed table, read by OCR), has every word; those not found by place first
  async function byPrintedName(f, known, cols) {
    var hits;
    if (!cfg.printed_names) { return []; }    // no centre's name was read from a photo in this bundle
    try {
      hits = await q("SELECT p.centro, p.centre_name FROM printed_fts f JOIN printed p ON p.rowid = f.rowid WHERE printed_fts MATCH ? AND p.centro IS NOT NULL ORDER BY f.rank, p.centro LIMIT 200", [f]);
    } catch (e) { return []; }             // a bundle without the printed table
    var seen = {}, ids = [], names = {};
    known.forEach(function (r) { seen[r.centro] = true; });
    hits.forEach(function (h) {
      var list = names[h.centro] = names[h.centro] || [];
      if (h.centre_name && list.indexOf(h.centre_name) < 0) { list.push(h.centre_name); }
      if (!seen[h.centro]) { seen[h.centro] = true; ids.push(h.centro); }
    });
    ids = ids.slice(0, 50);
    if (!ids.length) { return []; }
    var found = await q("SELECT " + cols + " FROM centros c WHERE c.centro IN (" + ids.map(function () { return "?"; }).join(",") + ")", ids);
    var by = {};
    found.forEach(function (r) { r.printed = names[r.centro]; by[r.centro] = r; });
    return ids.filter(function (c) { return by[c]; }).map(function (c) { return by[c]; });
  }
  // the search by place: every place's names (place_names, read whole: a few pages) matched here
  // as the full-text index would (each word the beginning of a word of the place, accents and case
  // aside), then the matched places' centres (place_pages, one row each); null on an older bundle
  function fold(s) { return String(s || "").normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase(); }
  async function byPlace(text) {
    var names;
    try { names = await q("SELECT key, estado, municipio, parroquia, centros FROM place_names ORDER BY key"); } catch (e) { return null; }
    var words = (fold(text).match(/[\p{L}\p{N}_]+/gu) || []).slice(0, 8);
    var keys = names.filter(function (p) {
      var tokens = fold([p.estado, p.municipio, p.parroquia].join(" ")).match(/[\p{L}\p{N}_]+/gu) || [];
      return words.every(function (w) { return tokens.some(function (t) { return t.indexOf(w) === 0; }); });
    }).map(function (p) { return p.key; });
    var place = {};
    names.forEach(function (p) { place[p.key] = p; });
    var out = [], part = [], n = 0;
    // only the places whose centres are shown (the first 51, places being in centre order)
    for (var i = 0; i < keys.length && n < 51; i++) { part.push(keys[i]); n += place[keys[i]].centros; }
    if (part.length) {
      (await q("SELECT key, page FROM place_pages WHERE key IN (" + part.map(function () { return "?"; }).join(",") + ") ORDER BY key", part)).forEach(function (r) {
        JSON.parse(r.page).forEach(function (c) {
          var p = place[r.key];
          out.push({ centro: c[0], codigo: c[1], mesas: c[2], electores: c[3], mesa_list: c[4], estado: p.estado, municipio: p.municipio, parroquia: p.parroquia });
        });
      });
    }
    return out.sort(function (a, b) { return a.centro - b.centro; }).slice(0, 51);
  }
  async function search(params) {
    var text = (params.get("q") || "").trim(), rows = [], problem = null;
    var digits = text.replace(/\s/g, "");
    var cols = "c.centro, c.codigo, c.estado, c.municipio, c.parroquia, c.mesas, c.electores";
    if (!text) {
      rows = null;
    } else if (/^[0-9]+$/.test(digits)) {
      var hi = digits.slice(0, 12) + ":";          // codes starting with the digits: one index range
      rows = await q("SELECT " + cols + " FROM centros c WHERE c.codigo >= ? AND c.codigo < ? ORDER BY c.codigo LIMIT 51", [digits.slice(0, 12), hi]);
    } else {
      var f = fts(text);
      if (!f) { problem = T("Escriba un código de centro o el nombre de un lugar.", "Type a centre code or a place name."); }
      else {
        try {
          rows = await byPlace(text);
          if (rows === null) {        // a bundle from before place_names: its full-text index
            rows = await q("SELECT " + cols + " FROM centros_fts f JOIN centros c ON c.rowid = f.rowid WHERE centros_fts MATCH ? ORDER BY c.centro LIMIT 51", [f]);
          }
          rows = (await byPrintedName(f, rows, cols)).concat(rows).slice(0, 51);
        } catch (e) { problem = T("La búsqueda no se pudo hacer: ", "The search failed: ") + e.message; }
      }
    }
    var out = "<h1>" + T("Buscar un centro", "Find a centre") + "</h1>" + searchForm(text) + '<div id="results">';
    if (problem) { out += '<p class="t-hint">' + esc(problem) + "</p>"; }
    if (rows && !rows.length) { out += "<p>" + T("Ningún centro coincide.", "No centre matches.") + "</p>"; }
    if (rows && rows.length) {
      var mesas = rows.length === 1 && rows[0].mesa_list ? rows[0].mesa_list.map(function (k) {
        return { id: rows[0].centro + "." + ("0" + k).slice(-2), mesa: k };
      }) : rows.length === 1 ? (await q("SELECT id FROM mesa_pages WHERE key BETWEEN ? AND ?", [rows[0].centro * 1000, rows[0].centro * 1000 + 999])).map(function (r) {
        return { id: r.id, mesa: Number(r.id.split(".")[1]) };
      }).sort(function (a, b) { return a.mesa - b.mesa; }) : [];
      out += "<p>" + (rows.length > 50 ? T("Más de 50 centros; estos son los primeros:", "More than 50 centres; these are the first:") : n(rows.length) + " " + T("centros", "centres")) + "</p><ul class=\"t-results\">"
        + rows.slice(0, 50).map(function (r) {
          return '<li><a href="' + link("/centro/" + r.centro) + '">' + T("Centro", "Centre") + " " + esc(r.codigo || r.centro) + "</a> · "
            + (r.printed && r.printed.length ? '<strong class="t-printed-name">' + esc(r.printed.join(" / ")) + "</strong> · " : "")
            + esc([r.parroquia, r.municipio, r.estado].filter(Boolean).join(" · ")) + " · " + n(r.mesas) + " " + T("mesas", "mesas")
            + (mesas.length ? "<br>" + mesas.map(function (m) { return '<a href="' + link("/mesa/" + m.id) + '">' + T("mesa", "mesa") + " " + m.mesa + "</a>"; }).join(" · ") : "")
            + "</li>";
        }).join("") + "</ul>";
    }
    return out + "</div>";
  }

  async function centro(id) {
    var rows = await q("SELECT * FROM centros WHERE centro = ?", [Number(id)]);
    if (!rows.length) { return notFound(T("No hay ningún centro " + id + " en el registro.", "There is no centre " + id + " in the registry.")); }
    var c = rows[0];
    // the centre's mesas are neighbours in mesa_pages (keys CENTRO * 1000 + MESA): one short range scan
    var mesas = (await q("SELECT page FROM mesa_pages WHERE key BETWEEN ? AND ?", [c.centro * 1000, c.centro * 1000 + 999])).map(function (r) {
      var d = mesaFromPage(r.page);
      return { id: d.mesa.id, mesa: d.mesa.mesa, electores: d.mesa.electores, actas: d.actas.length, validos: d.counted ? d.counted.validos : null };
    }).sort(function (a, b) { return a.mesa - b.mesa; });
    var votes = await q("SELECT candidate, name, votes FROM totals_centro WHERE centro = ? ORDER BY rowid", [c.centro]);
    return "<h1>" + T("Centro", "Centre") + " " + esc(c.codigo || c.centro) + "</h1>"
      + '<p class="t-place">' + esc(c.parroquia || "") + " · " + (c.municipio_id ? '<a href="' + link("/totales/municipio/" + c.municipio_id) + '">' + esc(c.municipio) + "</a>" : "")
      + " · " + (c.cod_edo ? '<a href="' + link("/totales/estado/" + c.cod_edo) + '">' + esc(c.estado) + "</a>" : "")
      + " · " + T("Electores inscritos", "Registered electors") + ': <strong id="electores">' + n(c.electores) + "</strong></p>"
      + '<table class="t-table" id="mesas"><thead><tr><th>' + T("Mesa", "Mesa") + '</th><th class="num">' + T("Electores", "Electors")
      + '</th><th class="num">' + T("Actas", "Actas") + '</th><th class="num">' + T("Válidos contados", "Counted valid") + "</th></tr></thead><tbody>"
      + mesas.map(function (m) {
        return '<tr data-mesa="' + esc(m.id) + '"><td><a href="' + link("/mesa/" + m.id) + '">' + esc(m.id) + '</a></td><td class="num">' + n(m.electores)
          + '</td><td class="num">' + n(m.actas) + '</td><td class="num">' + n(m.validos) + "</td></tr>";
      }).join("") + "</tbody></table>"
      + (votes.length ? "<h2>" + T("Totales del centro", "Totals of the centre") + "</h2>" + bars(votes, "chart-totals") + totalsTable(votes, "totals-table") : "");
  }

  var SOURCES = { qr: ["QR de la foto", "QR of the photo"], csv: ["Hoja transcrita (CSV)", "Transcribed sheet (CSV)"],
                  "transcribed-photo": ["Foto transcrita por voluntarios", "Photo transcribed by volunteers"] };
  var STATUS = { ok: ["correcta", "ok"], duplicate: ["duplicada", "duplicate"], conflict: ["en conflicto", "conflict"] };
  function pick(map, k) { var v = map[k]; return v ? T(v[0], v[1]) : k; }

  // A mesa's page is one row of mesa_pages (archive/mesa_pages.py): one lookup, a few page reads.
  function mesaFromPage(page) {
    var d = JSON.parse(page);
    d.actas.forEach(function (a) {
      var votes = a.votes || {};
      a.votes = {};
      candidates.forEach(function (c) { a.votes[c.code] = c.code in votes ? votes[c.code] : null; });
      a.cards = a.cards && a.cards.length ? a.cards : null;
    });
    d.counted = d.actas.filter(function (a) { return a.counted || a.counted_outside; })[0] || null;
    d.counted_acta = d.counted ? d.counted.id : null;
    return d;
  }
  async function mesaData(id) {
    var parts = id.split(".");
    var rows = await q("SELECT page FROM mesa_pages WHERE key = ?", [Number(parts[0]) * 1000 + Number(parts[1])]);
    return rows.length ? mesaFromPage(rows[0].page) : null;
  }

  async function mesa(id) {
    var d = await mesaData(id);
    if (!d) { return notFound(T("La mesa " + id + " no está en el registro de esta elección ni tiene un acta archivada.",
                                "Mesa " + id + " is not in this election's registry and has no archived acta.")); }
    var m = d.mesa, counted = d.counted, actas = d.actas;
    var out = '<h1 id="mesa-title">' + T("Mesa", "Mesa") + " " + m.mesa + " · " + T("centro", "centre") + ' <a href="' + link("/centro/" + m.centro) + '">'
      + esc(m.codigo || m.centro) + "</a></h1>"
      + '<p class="t-place">' + esc(m.parroquia || "") + (m.municipio_id ? ' · <a href="' + link("/totales/municipio/" + m.municipio_id) + '">' + esc(m.municipio) + "</a>" : "")
      + (m.cod_edo ? ' · <a href="' + link("/totales/estado/" + m.cod_edo) + '">' + esc(m.estado) + "</a>" : "")
      + " · " + T("Electores inscritos", "Registered electors") + ': <strong id="electores">' + (m.electores === null ? T("desconocidos", "unknown") : n(m.electores)) + "</strong></p>";
    var flags = [];
    if (m.outside_registry) { flags.push(T("Mesa fuera del registro: su acta se cuenta aparte.", "Mesa outside the registry: its acta is counted apart.")); }
    if (!actas.length) { flags.push(T("No hay ningún acta archivada de esta mesa todavía.", "No acta of this mesa has been archived yet.")); }
    else if (!counted) { flags.push(T("Las lecturas de esta mesa no coinciden entre sí y no se cuenta ninguna en los totales.", "The readings of this mesa disagree; none is counted in the totals.")); }
    if (flags.length) { out += '<ul class="t-flags" id="flags">' + flags.map(function (f) { return "<li>⚠ " + esc(f) + "</li>"; }).join("") + "</ul>"; }
    if (d.audit && d.audit.length) {
      out += '<ul class="t-flags" id="audit-checks">' + d.audit.map(function (c) {
        return '<li class="t-flag-audit" data-check="' + esc(c.check_id) + '">⚑ ' + T("Esta acta está en la comprobación", "This acta is in the check") + ' <a href="' + link("/auditoria")
          + "?check=" + encodeURIComponent(c.check_id) + '">' + esc(T(c.title_es || c.check_id, c.title_en || c.check_id)) + "</a></li>";
      }).join("") + "</ul>";
    }
    if (counted) {
      var vs = candidates.map(function (c) { return { candidate: c.code, name: c.name, votes: counted.votes[c.code] || 0 }; });
      out += '<section id="counted"><h2>' + T("Resultado contado", "Counted result") + " <small>(" + pick(SOURCES, counted.source) + ", " + T("acta", "acta") + " #" + counted.id + ")</small></h2>"
        + '<dl class="t-facts"><div><dt>' + T("Votos válidos", "Valid votes") + '</dt><dd id="validos">' + n(counted.validos) + "</dd></div>"
        + "<div><dt>" + T("Votos nulos", "Null votes") + '</dt><dd id="nulos">' + (counted.nulos === null ? T("no consta", "not stated") : n(counted.nulos)) + "</dd></div>"
        + "<div><dt>" + T("Participación", "Turnout") + '</dt><dd id="participation">' + pct((counted.validos || 0) + (counted.nulos || 0), m.electores) + "</dd></div></dl>"
        + bars(vs, "chart-mesa") + "</section>";
    }
    if (actas.length) {
      out += '<section id="readings"><h2>' + T("Todas las lecturas de esta mesa", "Every reading of this mesa") + '</h2><div class="t-scroll"><table class="t-table" id="numbers"><thead><tr><th>'
        + T("Candidato", "Candidate") + "</th>" + actas.map(function (a) {
          return "<th>#" + a.id + "<br><small>" + pick(SOURCES, a.source) + "<br>" + pick(STATUS, a.status)
            + (a.counted ? " · <strong>" + T("contada", "counted") + "</strong>" : a.counted_outside ? " · <strong>" + T("contada aparte", "counted apart") + "</strong>" : "") + "</small></th>";
        }).join("") + "</tr></thead><tbody>"
        + candidates.map(function (c) {
          return '<tr data-code="' + esc(c.code) + '"><td>' + esc(c.name) + " <small>(" + esc(c.code) + ")</small></td>" + actas.map(function (a) {
            return '<td class="num' + (counted && a.votes[c.code] !== counted.votes[c.code] ? " t-cell-diff" : "") + '">' + n(a.votes[c.code]) + "</td>";
          }).join("") + "</tr>";
        }).join("")
        + '<tr class="t-sum"><td>' + T("Válidos", "Valid") + "</td>" + actas.map(function (a) { return '<td class="num">' + n(a.validos) + "</td>"; }).join("") + "</tr>"
        + "<tr><td>" + T("Nulos", "Null") + "</td>" + actas.map(function (a) { return '<td class="num">' + n(a.nulos) + "</td>"; }).join("") + "</tr>"
        + "<tr><td>" + T("Cotejo con las otras fuentes", "Cross-check with the other sources") + "</td>" + actas.map(function (a) {
          return '<td class="t-cc-' + (a.crosscheck || "none") + '">' + (a.crosscheck === "agree" ? "✔ " + T("coincide", "agrees") : a.crosscheck === "disagree" ? "✘ " + T("no coincide", "disagrees") : "—") + "</td>";
        }).join("") + "</tr></tbody></table></div></section>";
    }
    out += mesaReadings(actas);
    var withImages = actas.filter(function (a) { return a.shard; });
    out += '<section id="images"><h2>' + T("Fotos del acta", "Photos of the acta") + "</h2>"
      + (withImages.length ? "" : "<p>" + T("No hay foto publicada de esta mesa (sus números vienen de la hoja transcrita).", "No photo of this mesa is published (its numbers come from the transcribed sheet).") + "</p>")
      + '<div class="t-photos">' + withImages.map(function (a) {
        return '<figure class="t-photo" data-acta="' + a.id + '"><img class="t-acta-img" alt="' + T("Foto del acta de la mesa", "Photo of the acta of mesa") + " " + esc(m.id) + " (#" + a.id + ')"'
          + (a.width ? ' width="' + a.width + '" height="' + a.height + '"' : "") + '><figcaption>#' + a.id + " · " + pick(STATUS, a.status)
          + ' · <span class="t-photo-check">' + T("leyendo…", "reading…") + '</span> · sha256 <code class="t-hash">' + esc(a.image_sha256) + "</code></figcaption>"
          + (a.payload ? '<p class="t-payload">' + T("Texto del QR", "QR text") + ": <code>" + esc(a.payload) + "</code></p>" : "") + "</figure>";
      }).join("") + "</div></section>"
      + mesaIssues(actas)
      + '<p class="t-links"><a href="' + link("/comprobar") + '">' + T("Comprobar mi acta de esta mesa", "Check my acta of this mesa") + "</a></p>";
    return { html: out, after: function () { withImages.forEach(showPhoto); } };
  }
  // each reading's own facts, as the site's mesa page shows them: where it comes from (which photo's
  // QR, the sheet row, the volunteers' transcription with their public aliases), how it differs
  // from the other sources, and what the photo prints (read by OCR: the printed table)
  function mesaReadings(actas) {
    var out = '<section id="sources"><h2>' + T("De dónde viene cada lectura", "Where each reading comes from") + '</h2><ul class="t-sources">'
      + actas.map(function (a) {
        var what = a.source === "qr" ? T("el código QR de la foto", "the QR code of the photo") + ' <code class="t-hash">' + esc((a.image_sha256 || "").slice(0, 12)) + "…</code>"
          : a.source === "csv" ? T("la fila de esta mesa en la hoja de resultados transcrita (CSV)", "this mesa's row in the transcribed results sheet (CSV)")
          : a.source === "transcribed-photo" ? T("los números impresos de la foto", "the printed numbers of the photo") + ' <code class="t-hash">' + esc((a.image_sha256 || "").slice(0, 12)) + "…</code>, " + T("escritos por voluntarios", "typed by volunteers")
          : esc(a.source);
        return '<li data-acta="' + a.id + '" data-source="' + esc(a.source) + '">#' + a.id + " · " + pick(SOURCES, a.source) + ": " + what
          + (a.provenance && a.provenance !== "own" ? " · " + T("traída por", "brought by") + " " + esc(a.provenance) : "")
          + (a.duplicate_of ? " · " + T("duplicada de", "duplicate of") + " #" + a.duplicate_of : "") + "</li>";
      }).join("") + "</ul></section>";
    actas.filter(function (a) { return a.crosscheck === "disagree" && a.crosscheck_diff; }).forEach(function (a) {
      var diff;
      try { diff = JSON.parse(a.crosscheck_diff); } catch (e) { diff = null; }
      if (!diff || typeof diff !== "object") { out += "<h3>" + T("Diferencias del acta", "Differences of acta") + " #" + a.id + "</h3><p><code>" + esc(a.crosscheck_diff) + "</code></p>"; return; }
      var first = diff[Object.keys(diff)[0]], sources = first && typeof first === "object" ? Object.keys(first) : [a.source];
      out += "<h3>" + T("Diferencias del acta", "Differences of acta") + " #" + a.id + '</h3><table class="t-table t-diff" data-acta="' + a.id + '"><thead><tr><th>' + T("Campo", "Field") + "</th>"
        + sources.map(function (s) { return "<th>" + pick(SOURCES, s) + "</th>"; }).join("") + "</tr></thead><tbody>"
        + Object.keys(diff).map(function (k) {
          var v = diff[k];
          return "<tr><td>" + esc(k) + "</td>" + sources.map(function (s) { return '<td class="num">' + esc(v && typeof v === "object" ? v[s] : v) + "</td>"; }).join("") + "</tr>";
        }).join("") + "</tbody></table>";
    });
    var typed = actas.filter(function (a) { return a.transcription; });
    if (typed.length) {
      out += '<section id="transcription"><h2>' + T("Transcrita por voluntarios", "Transcribed by volunteers") + '</h2><p class="t-hint">'
        + T("El QR de esta foto no se pudo leer. Voluntarios escribieron los números impresos, cada uno sin ver los de los demás; el acta cuenta los números en que coincidieron dos entradas de personas distintas.",
            "This photo's QR could not be read. Volunteers typed the printed numbers, none seeing the others'; the acta holds the numbers two entries by different people agreed on.") + "</p><ul>"
        + typed.map(function (a) {
          var t = a.transcription;
          return '<li data-acta="' + a.id + '">#' + a.id + ': <strong class="t-entries">' + n(t.entries) + "</strong> " + T("entradas independientes", "independent entries")
            + (t.entries > 2 ? " (" + T("pasó por revisión", "went through review") + ")" : "")
            + (t.transcribers && t.transcribers.length ? " · " + T("por", "by") + ' <span class="t-aliases">' + esc(t.transcribers.join(", ")) + "</span>" : "") + "</li>";
        }).join("") + "</ul></section>";
    }
    var printed = actas.filter(function (a) { return a.printed; });
    if (printed.length) {
      var F = [["centre_name", "Centro (impreso)", "Centre (printed)"], ["centre_address", "Dirección", "Address"], ["acta_code", "Código del acta", "Acta code"], ["uuid", "UUID", "UUID"],
               ["printed_at", "Impresa", "Printed at"], ["electors", "Electores", "Electors"], ["voters_machine", "Votantes según la máquina", "Voters by the machine"],
               ["voters_notebook", "Votantes en el cuaderno", "Voters in the notebook"], ["validos", "Votos válidos", "Valid votes"], ["nulos", "Votos nulos", "Null votes"],
               ["lines_read", "Líneas de partido leídas (de 38)", "Party lines read (of 38)"], ["engine", "Leída con", "Read with"]];
      out += '<section id="printed"><h2>' + T("Lo que imprime el acta (leído de la foto)", "What the acta prints (read from the photo)") + '</h2><p class="t-hint">'
        + T("Leído por OCR de la foto publicada; una cifra se da solo si sus dígitos y su número en letras coinciden; — si no se leyó. No es una fuente de votos: el QR y la hoja lo son.",
            "Read by OCR from the published photo; a figure is only given when its digits and its number in words agree; — where not read. Not a source of votes: the QR and the sheet are.")
        + '</p><div class="t-scroll"><table class="t-table" id="printed-table"><thead><tr><th></th>' + printed.map(function (a) { return "<th>#" + a.id + "</th>"; }).join("") + "</tr></thead><tbody>"
        + F.map(function (f) {
          return '<tr data-field="' + f[0] + '"><td>' + T(f[1], f[2]) + "</td>" + printed.map(function (a) {
            var v = a.printed[f[0]];
            return "<td" + (typeof v === "number" ? ' class="num"' : "") + ">" + (v === null || v === undefined ? "—" : typeof v === "number" && f[0] !== "lines_read" ? n(v) : esc(v)) + "</td>";
          }).join("") + "</tr>";
        }).join("") + "</tbody></table></div></section>";
    }
    return out;
  }
  function mesaIssues(actas) {
    var issues = [];
    actas.forEach(function (a) { (a.issues || []).forEach(function (i) { issues.push(Object.assign({ acta_id: a.id }, i)); }); });
    if (!issues.length) { return ""; }
    issues.sort(function (x, y) { return x.id - y.id; });
    return '<section id="issues"><h2>' + T("Otras entradas de esta mesa", "Other inputs of this mesa") + '</h2><p class="t-hint">'
      + T("Archivos recibidos que repiten o contradicen una lectura de esta mesa (no se cuentan dos veces).", "Files received that repeat or contradict a reading of this mesa (never counted twice).")
      + '</p><table class="t-table" id="issues-table"><thead><tr><th>' + T("Archivo", "File") + "</th><th>" + T("Resultado", "Outcome") + "</th><th>" + T("Motivo", "Reason") + "</th><th>" + T("Acta", "Acta") + "</th></tr></thead><tbody>"
      + issues.map(function (i) { return '<tr data-issue="' + i.id + '"><td>' + esc(i.file) + "</td><td>" + esc(i.outcome) + "</td><td>" + esc(i.reason) + "</td><td>#" + i.acta_id + "</td></tr>"; }).join("")
      + "</tbody></table></section>";
  }
  async function showPhoto(a) {
    var fig = view.querySelector('figure[data-acta="' + a.id + '"]');
    if (!fig) { return; }
    var note = fig.querySelector(".t-photo-check");
    try {
      var p = await data.photo(base, { shard: a.shard, offset: a.offset, size: a.size, sha256: a.image_sha256, media_type: a.media_type });
      fig.querySelector("img").src = p.url;
      note.textContent = p.verified ? "✔ " + T("sus bytes coinciden con su sha256", "its bytes match its sha256")
                                    : "✘ " + T("sus bytes NO coinciden con su sha256: copia alterada", "its bytes do NOT match its sha256: altered copy");
      fig.dataset.verified = p.verified ? "1" : "0";
    } catch (e) {
      fig.dataset.verified = "error";
      note.textContent = T("no se pudo leer la foto: ", "could not read the photo: ") + e.message;
    }
  }

  var LEVELS = {
    estado: { table: "totals_estado", key: "cod_edo", name: "estado", child: "municipio", childKey: "cod_edo", num: true },
    municipio: { table: "totals_municipio", key: "municipio_id", name: "municipio", child: "parroquia", childKey: "municipio_id" },
    parroquia: { table: "totals_parroquia", key: "parroquia_id", name: "parroquia", child: "centro", childKey: "parroquia_id" },
    centro: { table: "totals_centro", key: "centro", name: "codigo", child: null, num: true }
  };
  var LEVEL_NAMES = { estado: ["Estado", "State"], municipio: ["Municipio", "Municipality"], parroquia: ["Parroquia", "Parish"], centro: ["Centro", "Centre"] };

  function byArea(rows, key, nameCol) {
    var out = [], seen = {};
    rows.forEach(function (r) {
      var k = r[key];
      if (!(k in seen)) { seen[k] = { key: k, name: r[nameCol], votes: {}, total: 0 }; out.push(seen[k]); }
      seen[k].votes[r.candidate] = r.votes;
      seen[k].total += r.votes;
    });
    return out;
  }
  // a totals page is one row of area_pages (archive/mesa_pages.py): {rows, children}; null on a
  // bundle from before it (the totals tables are queried then)
  async function areaPage(nivel, key) {
    var k = 0;
    if (nivel) {
      var p = String(key).split(".").map(Number).concat([0, 0]);
      k = (["estado", "municipio", "parroquia"].indexOf(nivel) + 1) * 1e12 + p[0] * 1e8 + p[1] * 1e4 + p[2];
    }
    var r;
    try { r = await q("SELECT page FROM area_pages WHERE key = ?", [k]); } catch (e) { return null; }
    return r.length ? JSON.parse(r[0].page) : { rows: [], children: [] };
  }
  async function totales(nivel, key) {
    var votes, title, crumbs = "", childLevel, children = [];
    var d = nivel === "centro" ? null : await areaPage(nivel, key);
    if (!nivel) {
      votes = d ? d.rows : await q("SELECT candidate, name, votes FROM totals_nacional ORDER BY rowid");
      title = T("Totales nacionales", "National totals");
      childLevel = "estado";
      children = byArea(d ? d.children : await q("SELECT cod_edo, estado, candidate, votes FROM totals_estado ORDER BY rowid"), "cod_edo", "estado");
    } else {
      var L = LEVELS[nivel];
      if (!L) { return notFound(T("Nivel desconocido.", "Unknown level.")); }
      var k = L.num ? Number(key) : key;
      var rows = d ? d.rows : await q("SELECT * FROM " + L.table + " WHERE " + L.key + " = ? ORDER BY rowid", [k]);
      if (!rows.length) { return notFound(T("No hay votos contados en esa área.", "There are no counted votes in that area.")); }
      votes = rows.map(function (r) { return { candidate: r.candidate, name: r.name, votes: r.votes }; });
      title = pick(LEVEL_NAMES, nivel) + " " + esc(rows[0][L.name]);
      var r0 = rows[0];
      crumbs = '<p class="t-crumbs"><a href="' + link("/totales") + '">' + T("Nacional", "National") + "</a>"
        + (nivel !== "estado" && r0.cod_edo !== undefined ? ' › <a href="' + link("/totales/estado/" + r0.cod_edo) + '">' + esc(r0.estado) + "</a>" : nivel !== "estado" && r0.estado ? " › " + esc(r0.estado) : "")
        + ((nivel === "parroquia" || nivel === "centro") && r0.municipio_id ? ' › <a href="' + link("/totales/municipio/" + r0.municipio_id) + '">' + esc(r0.municipio) + "</a>" : "")
        + (nivel === "centro" && r0.parroquia_id ? ' › <a href="' + link("/totales/parroquia/" + r0.parroquia_id) + '">' + esc(r0.parroquia) + "</a>" : "") + "</p>";
      childLevel = L.child;
      if (childLevel) {
        var C = LEVELS[childLevel];
        children = byArea(d ? d.children : await q("SELECT " + C.key + ", " + C.name + ", candidate, votes FROM " + C.table + " WHERE " + L.key + " = ? ORDER BY rowid", [k]), C.key, C.name);
      }
    }
    var total = votes.reduce(function (s, v) { return s + v.votes; }, 0);
    var out = "<h1>" + title + "</h1>" + crumbs + "<p>" + T("Votos a candidatos en las actas contadas", "Votes for candidates in the counted actas") + ': <strong id="total-votes">' + n(total) + "</strong></p>"
      + bars(votes, "chart-totals") + totalsTable(votes, "totals-table");
    if (!nivel && cfg.map) { out += mapSvg(children, votes); }
    if (nivel === "centro") { out += '<p><a href="' + link("/centro/" + key) + '">' + T("Las mesas del centro", "The centre's mesas") + "</a></p>"; }
    if (children.length) {
      var top = votes.slice().sort(function (a, b) { return b.votes - a.votes; }).slice(0, 2);
      out += "<h2>" + T("Por ", "By ") + pick(LEVEL_NAMES, childLevel).toLowerCase() + '</h2><div class="t-scroll"><table class="t-table" id="children"><thead><tr><th>'
        + pick(LEVEL_NAMES, childLevel) + "</th>" + top.map(function (v) { return '<th class="num">' + esc(v.name) + "</th>"; }).join("")
        + '<th class="num">' + T("Otros", "Others") + '</th><th class="num">' + T("Total", "Total") + "</th></tr></thead><tbody>"
        + children.map(function (c) {
          var others = c.total - top.reduce(function (s, v) { return s + (c.votes[v.candidate] || 0); }, 0);
          return '<tr data-key="' + esc(c.key) + '"><td><a href="' + link("/totales/" + childLevel + "/" + c.key) + '">' + esc(c.name || c.key) + "</a></td>"
            + top.map(function (v) { return '<td class="num">' + n(c.votes[v.candidate] || 0) + "</td>"; }).join("")
            + '<td class="num">' + n(others) + '</td><td class="num">' + n(c.total) + "</td></tr>";
        }).join("") + "</tbody></table></div>";
    }
    return out;
  }
  var PALETTE = ["#1f6fb2", "#c0392b", "#2e8b57", "#8e44ad", "#d35400"];
  function mapSvg(estados, national) {
    var order = national.slice().sort(function (a, b) { return b.votes - a.votes; }).map(function (v) { return v.candidate; });
    var by = {};
    estados.forEach(function (e) { by[e.key] = e; });
    return '<figure class="t-map" id="map"><svg id="map-svg" viewBox="0 0 ' + cfg.map.width + " " + cfg.map.height + '" width="100%" xmlns="http://www.w3.org/2000/svg">'
      + cfg.map.areas.map(function (a) {
        var e = a.key !== null ? by[a.key] : null;
        if (!e || !e.total) { return '<path class="t-area-none" d="' + a.d + '" fill="#ddd" stroke="#fff"></path>'; }
        var leader = order.slice().sort(function (x, y) { return (e.votes[y] || 0) - (e.votes[x] || 0); })[0];
        var share = (e.votes[leader] || 0) / e.total;
        return '<a href="' + link("/totales/estado/" + a.key) + '" class="t-area" data-key="' + a.key + '" data-leader="' + esc(leader) + '"><path d="' + a.d
          + '" fill="' + PALETTE[Math.max(0, order.indexOf(leader)) % PALETTE.length] + '" fill-opacity="' + (0.35 + 0.65 * Math.min(1, Math.max(0, (share - 0.4) / 0.5))).toFixed(2)
          + '" stroke="#fff"><title>' + esc(e.name) + ": " + pct(e.votes[leader] || 0, e.total) + "</title></path></a>";
      }).join("") + "</svg><figcaption class=\"t-hint\">" + T("Color del candidato que encabeza cada estado; más intenso, mayor su porcentaje. Límites: Natural Earth (dominio público).",
        "Colour of the candidate leading each state; deeper, a larger share. Boundaries: Natural Earth (public domain).") + "</figcaption></figure>";
  }

  function comprobar() {
    var spec = Object.assign({}, cfg.check_spec, { wasm: new URL(cfg.assets.zxing_wasm, location.href).toString() });
    return { html: "<h1>" + T("Comprobar mi acta", "Check my acta") + "</h1>"
      + "<p>" + T("Con la foto de su acta: el código QR se lee aquí, en su teléfono, y sus números se comparan con el acta archivada de esa mesa. La foto no se envía a ninguna parte.",
                  "With the photo of your acta: the QR code is read here, on your phone, and its numbers are compared with the archived acta of that mesa. The photo is sent nowhere.") + "</p>"
      + '<section class="t-card t-photo-check" id="photo-check" hidden data-lang="' + lang + '"><p>'
      + '<input type="file" id="photo-file" accept="image/*" class="t-file"><label class="t-button" for="photo-file">' + T("Elegir una foto", "Choose a photo") + "</label> "
      + '<input type="file" id="photo-camera" accept="image/*" capture="environment" class="t-file"><label class="t-button" for="photo-camera">' + T("Tomar una foto", "Take a photo") + "</label></p>"
      + '<p id="photo-status" class="t-hint" role="status" aria-live="polite"></p><div id="photo-outcome"></div>'
      + '<div class="t-photos" id="photo-pair" hidden><figure class="t-photo"><img id="your-photo" alt=""><figcaption>' + T("Su foto", "Your photo") + "</figcaption></figure>"
      + '<figure class="t-photo" id="archived-figure" hidden><img id="archived-photo" alt=""><figcaption>' + T("Foto archivada de esta mesa", "Archived photo of this mesa") + "</figcaption></figure></div></section>"
      + '<script type="application/json" id="check-spec">' + JSON.stringify(spec).replace(/</g, "\\u003c") + "</script>",
      after: function () { loadScript(cfg.assets.zxing, function () { loadScript(cfg.assets.comprobar + "?run=" + Date.now(), null); }); } };
  }
  var loaded = {};
  function loadScript(src, then) {
    if (loaded[src]) { if (then) { then(); } return; }
    var s = document.createElement("script");
    s.src = src;
    s.onload = function () { loaded[src] = !/\?run=/.test(src); if (then) { then(); } };
    document.body.appendChild(s);
  }
  // comprobar.js asks the app for a mesa's numbers and addresses (the site answers /mesa/<id>.json)
  window.testigoApp = {
    link: function (path) { return link(path); },
    mesaJson: async function (id) {
      var d = await mesaData(id);
      if (!d) { return null; }
      var withImage = d.actas.filter(function (a) { return a.shard; })[0];
      if (withImage) {
        try {
          withImage.image_url = (await data.photo(base, { shard: withImage.shard, offset: withImage.offset, size: withImage.size,
            sha256: withImage.image_sha256, media_type: withImage.media_type })).url;
        } catch (e) { withImage.image_url = null; }
      }
      return { mesa: d.mesa, actas: d.actas, counted_acta: d.counted_acta };
    }
  };

  // the audit pages (audit.js), with this file's helpers; ?check=ID opens and shows that check
  async function auditPage(cod, params) {
    var h = { T: T, n: n, pct: pct, esc: esc, link: link, q: q, notFound: notFound,
              candidates: function () { return candidates; }, path: function () { return currentPath; },
              database: function () { return cfg.database; } };
    var html = await window.TestigoAudit.page(h, cod), check = params.get("check");
    return { html: html, after: function () {
      var el = check && document.getElementById("detail-" + check);
      if (el) { el.open = true; el.scrollIntoView(); }
    } };
  }

  function descargas() {
    var files = (sigResult && sigResult.sums ? sigResult.sums.split("\n") : []).filter(Boolean).map(function (l) { return l.replace(/^[0-9a-f]{64}\s+\*?/, ""); });
    files = files.concat(["SHA256SUMS", "SHA256SUMS.minisig"]);
    return "<h1>" + T("Descargas y verificación", "Downloads and verification") + "</h1>"
      + "<p>" + T("El paquete entero (base de datos SQLite, fotos en zip, SHA256SUMS firmado) está en ", "The whole bundle (SQLite database, photos in zips, signed SHA256SUMS) is at ")
      + '<code id="data-base">' + esc(base) + "</code>.</p>"
      + '<ul id="downloads">' + files.map(function (f) { return '<li><a href="' + esc(dataUrl(f)) + '">' + esc(f) + "</a></li>"; }).join("") + "</ul>"
      + "<h2>" + T("Qué prueba esta página y qué no", "What this page proves and what it does not") + "</h2>"
      + '<p id="proves">' + T("Su navegador comprobó la firma de SHA256SUMS con la clave del editor (", "Your browser checked the signature of SHA256SUMS with the publisher's key (")
      + "<code>" + esc(cfg.key_id || "—") + "</code>) " + T("y que SHA256SUMS es el de la edición que esta copia dice mostrar. Cada foto se comprueba contra su sha256. ", "and that SHA256SUMS is that of the edition this copy says it shows. Each photo is checked against its sha256. ")
      + T("Pero la base de datos se lee por partes (peticiones de rango): sus páginas no se pueden comprobar contra SHA256SUMS sin descargarla entera, así que un servidor deshonesto podría cambiar números. Para una prueba completa descargue el paquete y ejecute: ",
          "But the database is read in parts (range requests): its pages cannot be checked against SHA256SUMS without downloading it whole, so a dishonest host could change numbers. For a full proof download the bundle and run: ")
      + "<code>sha256sum -c SHA256SUMS; minisign -Vm SHA256SUMS -p minisign.pub</code> " + T("o", "or") + " <code>testigo verify</code>.</p>";
  }
  function notFound(text) { return '<p class="t-error" id="not-found">' + esc(text) + "</p>"; }

  /* --- routing --- */
  async function render() {
    var h = location.hash.replace(/^#/, "") || "/";
    lang = /^\/en(\/|$|\?)/.test(h) ? "en" : "es";
    window.testigoLang = lang;
    h = h.replace(/^\/en(?=\/|$|\?)/, "") || "/";
    var path = h.split("?")[0], params = new URLSearchParams(h.split("?")[1] || "");
    frame();
    view.dataset.ready = "";
    if (!worker) { return; }
    var m, kind, out;
    currentPath = path;
    try {
      if (path === "/" || path === "") { kind = "home"; out = await home(); }
      else if (path === "/buscar") { kind = "search"; out = await search(params); }
      else if ((m = path.match(/^\/centro\/(\d{1,12})$/))) { kind = "centro"; out = await centro(m[1]); }
      else if ((m = path.match(/^\/mesa\/(\d{1,12})\.(\d{1,3})$/))) { kind = "mesa"; out = await mesa(m[1] + "." + ("0" + Number(m[2])).slice(-2)); }
      else if (path === "/totales") { kind = "totals"; out = await totales(null, null); }
      else if ((m = path.match(/^\/totales\/(estado|municipio|parroquia|centro)\/([0-9.]{1,20})$/))) { kind = "totals"; out = await totales(m[1], m[2]); }
      else if (path === "/comprobar") { kind = "comprobar"; out = comprobar(); }
      else if (path === "/auditoria") { kind = "audit"; out = await auditPage(null, params); }
      else if ((m = path.match(/^\/auditoria\/estado\/(\d{1,3})$/))) { kind = "audit"; out = await auditPage(m[1], params); }
      else if (path === "/descargas") { kind = "descargas"; out = descargas(); }
      else { kind = "error"; out = notFound(T("Esa página no existe.", "There is no such page.")); }
    } catch (e) {
      kind = "error";
      out = '<p class="t-error" id="query-error">' + T("No se pudo leer el paquete: ", "Could not read the bundle: ") + esc(e.message) + "</p>";
    }
    if (typeof out === "string") { out = { html: out }; }
    view.innerHTML = out.html;
    bindSearch();
    if (out.after) { out.after(); }
    var st = await worker.worker.getStats();
    view.dataset.page = kind;
    view.dataset.requests = st ? st.totalRequests : "";
    view.dataset.bytes = st ? st.totalFetchedBytes : "";
    view.dataset.ready = "1";
  }

  async function start() {
    document.getElementById("nojs-note").hidden = true;
    var r = await fetch("testigo-mirror.json", { credentials: "omit" });
    cfg = await r.json();
    data = window.TestigoData;
    render();
    var chosen = await data.choose(cfg, hostLine);
    base = chosen.base;
    worker = chosen.worker;
    hostLine(chosen.problems);
    if (!worker) {
      view.innerHTML = '<p class="t-error" id="host-error">' + T("Ningún servidor de datos de esta copia se puede leer desde aquí; vea los motivos arriba. Descargue el paquete por otra vía (torrent, Internet Archive) o use otra copia.",
        "None of this copy's data hosts can be read from here; see the reasons above. Get the bundle another way (torrent, Internet Archive) or use another copy.") + "</p>";
      view.dataset.ready = "1";
      view.dataset.page = "error";
      return;
    }
    data.verifySignature(base, cfg).then(function (s) { sigResult = s; signatureLine(); if (/descargas/.test(location.hash)) { render(); } });
    candidates = cfg.candidates;        // the bundle's candidates and cards, written with the app
    cards = cfg.cards;
    window.addEventListener("hashchange", render);
    render();
  }
  start().catch(function (e) {
    view.innerHTML = '<p class="t-error" id="start-error">' + esc(e.message) + "</p>";
  });
})();
