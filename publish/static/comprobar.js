/* Comprobar mi acta with a photo: the QR is read IN THE BROWSER (zxing-wasm, vendored) and the
 * numbers compared here with /mesa/<id>.json. The photo is never sent anywhere; the only request
 * is that mesa's JSON, so this works on the live site and in the static mirror alike (and in the
 * browser app, which answers it from the bundle's database: window.testigoApp).
 *
 * The fields and the rule are archive/comparison.py's (the page embeds them as #check-spec):
 * checkMesa below is comparison.check_mesa, line for line. Keep the two in step.
 */
(function () {
  "use strict";
  var root = document.getElementById("photo-check");
  if (!root || !window.ZXingWASM) { return; }
  var spec = JSON.parse(document.getElementById("check-spec").textContent);
  var lang = root.dataset.lang === "en" ? "en" : "es";
  var T = function (es, en) { return lang === "en" ? en : es; };
  var statusEl = document.getElementById("photo-status");
  var outcome = document.getElementById("photo-outcome");
  var yourImg = document.getElementById("your-photo");
  var archivedImg = document.getElementById("archived-photo");
  var yourUrl = null;

  ZXingWASM.prepareZXingModule({
    overrides: {
      locateFile: function (path, prefix) { return path.endsWith(".wasm") ? spec.wasm : prefix + path; }
    }
  });
  root.hidden = false;

  function num(v) {
    if (v === null || v === undefined) { return "—"; }
    return String(v).replace(/\B(?=(\d{3})+(?!\d))/g, lang === "es" ? "." : ",");
  }
  // A page's address: the site takes ?lang=en; the static mirror (testigo mirror) has a folder per
  // page (its addresses end in "/", the site's never do) with the English ones under /en/.
  var mirrored = /\/$/.test(location.pathname);
  // The browser app (testigo mirror --app, publish/app) reads the bundle itself: it gives the
  // addresses and each mesa's numbers (as /mesa/<id>.json has them) through window.testigoApp.
  var app = window.testigoApp || null;
  function link(path) {
    if (app) { return app.link(path); }
    if (mirrored) { return (lang === "en" ? "/en" : "") + path + "/"; }
    return path + (lang === "en" ? "?lang=en" : "");
  }
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) { e.textContent = text; }
    return e;
  }

  /* --- the QR text: archive.acta.parse_payload's grammar, from the election's payload spec --- */
  function digits(s, range) { return /^[0-9]+$/.test(s) && s.length >= range[0] && s.length <= range[1]; }
  function parse(text) {
    var p = spec.payload, t = (text || "").trim();
    if (!t) { return { error: "empty" }; }
    if (t.length > 2000) { return { error: "not_acta" }; }
    var parts = t.split("!");
    if (parts.length !== 2 + p.trailers) { return { error: "not_acta" }; }
    var head = parts[0].split(".");
    if (head.length !== 4 || !digits(head[0], p.centro_digits) || !digits(head[1], p.mesa_digits)
        || !/^[0-9]+$/.test(head[2]) || !/^[0-9]+$/.test(head[3])) { return { error: "bad_header" }; }
    // archive.acta.check_centre: the code's estado (EEMMPPCCC, leading zeros dropped) must exist
    var estado = Math.floor(parseInt(head[0], 10) / 10000000);
    if (parseInt(head[1], 10) < 1 || (p.estados && p.estados.indexOf(estado) < 0)) { return { error: "bad_header" }; }
    var raw = parts[1].split(",");
    if (raw.length !== p.counts) { return { error: "wrong_count_number" }; }
    // a count is plain digits: no spaces, no sign, no leading zero (archive.acta._qr_count)
    function count(c) {
      if (/^-[0-9]+$/.test(c)) { return { error: "negative_count" }; }
      if (!/^(0|[1-9][0-9]*)$/.test(c)) { return { error: "non_numeric_count" }; }
      return parseInt(c, 10);
    }
    var counts = [];
    for (var i = 0; i < raw.length; i++) {
      var c = count(raw[i]);
      if (typeof c !== "number") { return c; }
      counts.push(c);
    }
    var trailers = [];
    for (var j = 2; j < parts.length; j++) {
      var t = count(parts[j]);
      if (typeof t !== "number") { return t; }
      trailers.push(t);
    }
    if (counts.some(function (n) { return n > p.max_count; })) { return { error: "count_too_large" }; }
    if (trailers.length && trailers[0] > p.max_count) { return { error: "count_too_large" }; }
    var mesa = parseInt(head[1], 10);
    var yours = { validos: counts.reduce(function (a, b) { return a + b; }, 0) };
    if (p.nulos_trailer) { yours.nulos = trailers[p.nulos_trailer - 1]; }   // the QR's nulos
    spec.fields.forEach(function (f) {           // every candidate, 0 when none of its cards has votes
      if (f.key !== "validos" && f.key !== "nulos" && f.key.indexOf("card:") !== 0) { yours[f.key] = 0; }
    });
    counts.forEach(function (n, k) {
      yours[spec.cards[k]] += n;
      yours["card:" + (k + 1)] = n;
    });
    return { mesaId: parseInt(head[0], 10) + "." + (mesa < 10 ? "0" : "") + mesa, yours: yours, payload: t };
  }

  /* --- archive.comparison: archived_numbers, compare, check_mesa --- */
  function archivedNumbers(a) {
    var nums = { validos: a.validos };
    if (a.nulos !== null && a.nulos !== undefined) { nums.nulos = a.nulos; }
    Object.keys(a.votes || {}).forEach(function (k) { if (a.votes[k] !== null) { nums[k] = a.votes[k]; } });
    (a.cards || []).forEach(function (v, i) { if (v !== null) { nums["card:" + (i + 1)] = v; } });
    return nums;
  }
  function compare(yours, archived) {
    var out = [];
    spec.fields.forEach(function (f) {
      if (!(f.key in yours)) { return; }
      var a = f.key in archived ? archived[f.key] : null;
      if (a === null && (f.key.indexOf("card:") === 0 || f.key.indexOf("nulos") === 0)) { return; }
      out.push({ field: f.key, es: f.es, en: f.en, yours: yours[f.key], archived: a, same: yours[f.key] === a });
    });
    return out;
  }
  function checkMesa(yours, mesa, payload) {
    var res = { result: null, fields: [], compared_with: null, other_matches: [], identical_payload: false,
                image_url: null };
    if (mesa === null) { res.result = "unknown_mesa"; return res; }
    var actas = mesa.actas || [];
    if (!actas.length) { res.result = "not_archived"; return res; }
    var ref = actas.filter(function (a) { return a.id === mesa.counted_acta; })[0] || actas[0];
    res.fields = compare(yours, archivedNumbers(ref));
    res.compared_with = { id: ref.id, source: ref.source, status: ref.status, counted: ref.counted,
                          image_url: ref.image_url };
    res.other_matches = actas.filter(function (a) {
      return a.id !== ref.id && compare(yours, archivedNumbers(a)).every(function (r) { return r.same; });
    }).map(function (a) { return a.id; });
    res.identical_payload = !!payload && actas.some(function (a) { return a.payload === payload; });
    var withImage = [ref].concat(actas).filter(function (a) { return a.image_url; })[0];
    res.image_url = withImage ? withImage.image_url : null;
    res.result = res.fields.every(function (r) { return r.same; }) ? "match" : "mismatch";
    return res;
  }

  /* --- reading the QR: the whole photo, then a smaller copy and the sheet's ends --- */
  var OPTIONS = { formats: ["QRCode"], tryHarder: true, maxNumberOfSymbols: 4 };
  function firstActa(results) {
    var texts = results.map(function (r) { return r.text; });
    for (var i = 0; i < texts.length; i++) { if (!parse(texts[i]).error) { return texts[i]; } }
    return texts.length ? { other: texts[0] } : null;
  }
  function views(bitmap) {
    var out = [], w = bitmap.width, h = bitmap.height, k = Math.min(1, 1600 / Math.max(w, h));
    function draw(sx, sy, sw, sh, scale) {
      var cw = Math.max(1, Math.round(sw * scale)), ch = Math.max(1, Math.round(sh * scale));
      var canvas = document.createElement("canvas");
      canvas.width = cw; canvas.height = ch;
      var ctx = canvas.getContext("2d", { willReadFrequently: true });
      ctx.drawImage(bitmap, sx, sy, sw, sh, 0, 0, cw, ch);
      return ctx.getImageData(0, 0, cw, ch);
    }
    out.push(function () { return draw(0, 0, w, h, k); });
    var tall = h >= w, f = 0.3;
    var strips = tall ? [[0, h * (1 - f), w, h * f], [0, 0, w, h * f]] : [[w * (1 - f), 0, w * f, h], [0, 0, w * f, h]];
    strips.forEach(function (s) { out.push(function () { return draw(s[0], s[1], s[2], s[3], Math.min(2, 2 * k)); }); });
    return out;
  }
  async function readQr(file) {
    var found = firstActa(await ZXingWASM.readBarcodes(file, OPTIONS));
    if (typeof found === "string") { return found; }
    var bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
    try {
      var vs = views(bitmap);
      for (var i = 0; i < vs.length; i++) {
        var again = firstActa(await ZXingWASM.readBarcodes(vs[i](), OPTIONS));
        if (typeof again === "string") { return again; }
        found = found || again;
      }
    } finally { bitmap.close(); }
    return found;
  }

  /* --- showing the outcome --- */
  function box(result, head, extra) {
    outcome.textContent = "";
    var d = el("div", { "class": "t-result t-result-" + result, id: "photo-result", "data-result": result,
                        role: "status" });
    d.appendChild(el("p", { "class": "t-result-head" }, head));
    (extra || []).forEach(function (n) { d.appendChild(n); });
    outcome.appendChild(d);
    d.scrollIntoView({ block: "nearest" });
    return d;
  }
  function fieldTable(rows, open) {
    var det = el("details", { id: "photo-fields" });
    det.open = open;
    det.appendChild(el("summary", {}, T("Campo por campo", "Field by field")));
    var table = el("table", { "class": "t-table", id: "photo-field-table" });
    var head = el("tr");
    [T("Campo", "Field"), T("Su acta", "Your acta"), T("Archivada", "Archived"), ""].forEach(function (h, i) {
      head.appendChild(el("th", i === 1 || i === 2 ? { "class": "num" } : {}, h));
    });
    table.appendChild(el("thead")).appendChild(head);
    var body = el("tbody");
    rows.forEach(function (r) {
      var tr = el("tr", { "class": r.same ? "t-same" : "t-diff", "data-field": r.field });
      tr.appendChild(el("td", {}, lang === "en" ? r.en : r.es));
      tr.appendChild(el("td", { "class": "num" }, num(r.yours)));
      tr.appendChild(el("td", { "class": "num" }, num(r.archived)));
      tr.appendChild(el("td", {}, r.same ? "✔" : "✘"));
      body.appendChild(tr);
    });
    table.appendChild(body);
    det.appendChild(table);
    return det;
  }
  function show(parsed, res) {
    var id = parsed.mesaId, n = res.fields.length, differ = res.fields.filter(function (r) { return !r.same; });
    var mesaLink = el("p");
    mesaLink.appendChild(el("a", { href: link("/mesa/" + id) }, T("Ver la mesa ", "Open mesa ") + id));
    if (res.result === "unknown_mesa") {
      // a valid acta QR whose mesa the archive lacks: outside the registry, not archived yet (issue 9)
      box("unknown_mesa", "ℹ " + T("La mesa " + id + " está fuera del registro (la hoja por mesa publicada no la trae) y todavía no tenemos su acta. Si tiene la foto, envíela: se conserva y se cuenta aparte.",
                                    "Mesa " + id + " is outside the registry (the published per-mesa sheet does not list it) and we have no acta of it yet. If you have the photo, send it in: it is kept and counted apart."));
      return;
    }
    if (res.result === "not_archived") {
      box("not_archived", "ℹ " + T("Todavía no tenemos ningún acta de la mesa " + id + ". Si tiene la foto, envíela.",
                                    "We have no acta of mesa " + id + " yet. If you have the photo, send it in."), [mesaLink]);
      return;
    }
    var cw = res.compared_with;
    mesaLink.appendChild(document.createTextNode(" · " + T("comparada con el acta", "compared with acta") + " #" + cw.id
      + " (" + cw.source + (cw.counted ? ", " + T("la contada", "the counted one") : "") + ")"));
    var extra = [mesaLink];
    if (res.identical_payload) {
      extra.push(el("p", {}, T("El texto del QR es idéntico, carácter por carácter, al de una foto archivada.",
                               "The QR text is identical, character by character, to that of an archived photo.")));
    }
    if (res.other_matches.length) {
      extra.push(el("p", {}, T("Coincide con otra lectura archivada de esta mesa", "It matches another archived reading of this mesa")
                 + ": #" + res.other_matches.join(" #")));
    }
    if (res.result === "match") {
      box("match", "✔ " + T("Coincide: los " + n + " campos comparados son iguales a los del acta archivada de la mesa " + id + ".",
                            "Match: all " + n + " fields compared equal the archived acta of mesa " + id + "."), extra);
    } else {
      box("mismatch", "✘ " + T("No coincide: " + differ.length + " de " + n + " campos son distintos de los del acta archivada de la mesa " + id + ".",
                               "Mismatch: " + differ.length + " of " + n + " fields differ from the archived acta of mesa " + id + "."), extra);
    }
    outcome.appendChild(fieldTable(res.fields, res.result === "mismatch"));
    if (res.image_url) {
      archivedImg.src = res.image_url;
      document.getElementById("archived-figure").hidden = false;
    }
  }

  async function handle(file) {
    outcome.textContent = "";
    document.getElementById("archived-figure").hidden = true;
    archivedImg.removeAttribute("src");
    if (yourUrl) { URL.revokeObjectURL(yourUrl); }
    yourUrl = URL.createObjectURL(file);          // shown here only; never uploaded
    yourImg.src = yourUrl;
    document.getElementById("photo-pair").hidden = false;
    statusEl.textContent = T("Leyendo el código QR en su teléfono…", "Reading the QR code on your phone…");
    var text;
    try {
      text = await readQr(file);
    } catch (e) {
      text = null;
    }
    statusEl.textContent = "";
    if (!text) {
      box("unreadable", "ℹ " + T("No se pudo leer ningún código QR en esta foto. Tómela de nuevo más cerca, con buena luz, con el acta entera y el QR de abajo completo.",
                                  "No QR code could be read in this photo. Take it again closer, in good light, with the whole acta and the whole QR at the bottom."));
      return;
    }
    var parsed = typeof text === "string" ? parse(text) : { error: "not_acta" };
    if (parsed.error) {
      var m = spec.messages[parsed.error] || spec.messages.not_acta;
      box("invalid", "ℹ " + m[lang]);
      return;
    }
    statusEl.textContent = T("Buscando el acta archivada de la mesa ", "Looking up the archived acta of mesa ") + parsed.mesaId + "…";
    var mesa;
    try {
      if (app) { mesa = await app.mesaJson(parsed.mesaId); }
      else {
        var r = await fetch("/mesa/" + parsed.mesaId + ".json", { credentials: "omit" });
        if (r.status === 404) { mesa = null; }
        else if (!r.ok) { throw new Error("HTTP " + r.status); }
        else { mesa = await r.json(); }
      }
    } catch (e) {
      statusEl.textContent = "";
      box("unavailable", "ℹ " + T("No se pudo consultar el archivo (" + e.message + "). Inténtelo de nuevo.",
                                   "Could not reach the archive (" + e.message + "). Try again."));
      return;
    }
    statusEl.textContent = "";
    show(parsed, checkMesa(parsed.yours, mesa, parsed.payload));
  }

  ["photo-file", "photo-camera"].forEach(function (id) {
    var input = document.getElementById(id);
    input.addEventListener("change", function () {
      var f = input.files && input.files[0];
      if (f) { handle(f); }
    });
  });
})();
