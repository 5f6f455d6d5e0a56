/* The audit pages of the browser app: #/auditoria and #/auditoria/estado/<code>, what the site's
 * /auditoria pages show (publish/templates/testigo_auditoria.html), read from one row of the
 * bundle's audit_pages table (archive/mesa_pages.py: the audit_* tables as `testigo audit --json`
 * reads them). Generic over the rows: a check or test added to the audit_* tables (with its
 * audit_notes row) shows here with no change. The figures are drawn here as SVG from the
 * histograms, as archive/audit_figures.py draws them on the server.
 *
 * Written by testigo (publish/app). Used by app.js, which passes its helpers (h).
 */
(function () {
  "use strict";
  var SHADES = ["#deebf7", "#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#08519c", "#08306b"];
  var BAR = "#6b7b8c", MARK = "#c0392b";

  function f2(x) { return x.toFixed(2).replace(/\.?0+$/, ""); }
  function svg(h, view, title, desc, body, cls) {
    return '<svg class="' + cls + '" viewBox="' + view + '" role="img" xmlns="http://www.w3.org/2000/svg" preserveAspectRatio="xMidYMid meet"><title>'
      + h.esc(title) + "</title><desc>" + h.esc(desc) + "</desc>" + body + "</svg>";
  }
  // 2D histogram: x = turnout %, y = share % (cells 0..99), darker = more mesas (log scale)
  function fingerprint(h, cells, title, xl, yl, desc) {
    var top = cells.reduce(function (m, c) { return Math.max(m, c[2]); }, 0), paths = {};
    cells.forEach(function (c) {
      var level = top > 1 ? Math.min(SHADES.length - 1, Math.floor(SHADES.length * Math.log1p(c[2]) / Math.log1p(top))) : SHADES.length - 1;
      (paths[level] = paths[level] || []).push("M" + c[0] + " " + (99 - c[1]) + "h1v1h-1z");
    });
    var body = '<rect x="0" y="0" width="100" height="100" fill="#fff" stroke="#999" stroke-width="0.3"/>';
    Object.keys(paths).sort(function (a, b) { return a - b; }).forEach(function (l) { body += '<path fill="' + SHADES[l] + '" d="' + paths[l].join("") + '"/>'; });
    for (var t = 0; t <= 100; t += 20) {
      body += '<path d="M' + t + ' 100v1.5M-1.5 ' + (100 - t) + 'h1.5" stroke="#555" stroke-width="0.3"/><text x="' + t + '" y="105" font-size="3.6" text-anchor="middle">' + t
        + '</text><text x="-2.5" y="' + f2(101.2 - t) + '" font-size="3.6" text-anchor="end">' + t + "</text>";
    }
    body += '<text x="50" y="112" font-size="4" text-anchor="middle">' + h.esc(xl) + '</text><text transform="translate(-10 50) rotate(-90)" font-size="4" text-anchor="middle">' + h.esc(yl) + "</text>";
    SHADES.forEach(function (c, i) { body += '<rect x="103" y="' + (92 - 6 * i) + '" width="4" height="5" fill="' + c + '"/>'; });
    body += '<text x="105" y="102" font-size="3" text-anchor="middle">1</text><text x="105" y="48.5" font-size="3" text-anchor="middle">' + top + "</text>";
    return svg(h, "-14 -2 124 117", title, desc, body, "t-fig t-fingerprint");
  }
  // 1D histogram in 0.1 % bins (x 0..999); whole percentages in red
  function histogram(h, bins, title, xl, desc) {
    var w = 200, H = 60, top = bins.reduce(function (m, b) { return Math.max(m, b[2]); }, 0) || 1, plain = [], marked = [];
    bins.forEach(function (b) {
      var bh = H * b[2] / top;
      (b[0] % 10 === 0 ? marked : plain).push("M" + f2(b[0] * 0.2) + " " + f2(H - bh) + "h0.2v" + f2(bh) + "h-0.2z");
    });
    var body = '<rect x="0" y="0" width="' + w + '" height="' + H + '" fill="#fff" stroke="#999" stroke-width="0.3"/><path fill="' + BAR + '" d="' + plain.join("")
      + '"/><path fill="' + MARK + '" d="' + marked.join("") + '"/>';
    for (var t = 0; t <= 100; t += 10) {
      body += '<path d="M' + t * 2 + " " + H + 'v1.5" stroke="#555" stroke-width="0.3"/><text x="' + t * 2 + '" y="' + (H + 5) + '" font-size="3.6" text-anchor="middle">' + t + "</text>";
    }
    body += '<text x="' + w / 2 + '" y="' + (H + 11) + '" font-size="4" text-anchor="middle">' + h.esc(xl) + '</text><text x="-1.5" y="4" font-size="3.6" text-anchor="end">' + top
      + '</text><text x="-1.5" y="' + H + '" font-size="3.6" text-anchor="end">0</text>';
    return svg(h, "-10 -2 " + (w + 14) + " " + (H + 15), title, desc, body, "t-fig t-hist");
  }
  // the last digits 0..9 as shares, with the 10 % a uniform digit would have
  function digits(h, counts, title, desc, flagged) {
    var n = counts.reduce(function (s, c) { return s + c; }, 0) || 1;
    var top = Math.max(0.2, counts.length ? Math.max.apply(null, counts) / n : 0), w = 100, H = 40;
    var body = '<rect x="0" y="0" width="' + w + '" height="' + H + '" fill="#fff" stroke="#999" stroke-width="0.3"/>';
    counts.forEach(function (c, d) {
      var bh = H * (c / n) / top;
      body += '<rect x="' + (d * 10 + 1.5) + '" y="' + f2(H - bh) + '" width="7" height="' + f2(bh) + '" fill="' + (flagged && (d === 0 || d === 5) ? MARK : BAR)
        + '"/><text x="' + (d * 10 + 5) + '" y="' + (H + 5) + '" font-size="4" text-anchor="middle">' + d + "</text>";
    });
    var y10 = f2(H - H * 0.1 / top);
    body += '<path d="M0 ' + y10 + "H" + w + '" stroke="#000" stroke-width="0.4" stroke-dasharray="2 1.5"/><text x="' + (w + 1) + '" y="' + f2(Number(y10) + 1.3) + '" font-size="3.6">10%</text>';
    return svg(h, "-2 -2 " + (w + 12) + " " + (H + 9), title, desc, body, "t-fig t-digits");
  }

  function pv(p) { return p === null || p === undefined ? "—" : p < 0.0001 ? "&lt; 0.0001" : p.toFixed(4); }

  async function page(h, cod) {
    var T = h.T, n = h.n, esc = h.esc, link = h.link;
    var rows = await h.q("SELECT page FROM audit_pages WHERE key = ?", [cod === null ? 0 : Number(cod)]).catch(function () { return null; });
    if (rows === null) { return h.notFound(T("Este paquete se construyó antes de que testigo calculara la auditoría.", "This bundle was built before testigo computed the audit.")); }
    if (!rows.length) { return h.notFound(cod === null ? T("Este paquete no tiene auditoría.", "This bundle has no audit.") : T("Ese estado no tiene mesas en el registro.", "That state has no mesas in the registry.")); }
    var d = JSON.parse(rows[0].page), national = d.scope === "national";
    var cov = d.coverage.filter(function (c) { return c.scope === d.scope; })[0];
    var names = {};
    h.candidates().forEach(function (c) { names[c.code] = c.name; });
    function note(id) {
      var x = d.notes[id];
      if (!x) { return ""; }
      var about = T(x.about_es, x.about_en), limits = T(x.limits_es, x.limits_en);
      return '<p class="t-note" data-note="' + esc(id) + '">' + esc(about) + "</p>" + (limits ? '<p class="t-limits"><strong>' + T("Límites", "Limits") + ":</strong> " + esc(limits) + "</p>" : "");
    }
    var out = national ? '<h1 id="audit-title">' + T("Auditoría: ¿cuadran las actas?", "Audit: do the actas hold together?") + "</h1>"
      : '<p class="t-crumbs"><a href="' + link("/auditoria") + '">' + T("Auditoría nacional", "National audit") + '</a> ›</p><h1 id="audit-title">' + T("Auditoría", "Audit") + " · " + esc(cov.estado) + "</h1>";
    out += '<p class="t-lead">' + T("Cada comprobación y cada prueba de esta página se calculó una sola vez, al construir el paquete firmado, y está en sus tablas audit_*: cualquiera puede repetirla con sqlite3. Una mesa señalada o una prueba marcada es un motivo para mirar, nunca una prueba de fraude.",
      "Every check and test on this page was computed once, when the signed bundle was built, and is in its audit_* tables: anyone can repeat it with sqlite3. A listed mesa or a flagged test is a reason to look, never proof of fraud.") + "</p>";
    // coverage
    var whole = cov.mesas_published || cov.mesas_registry;
    out += '<section id="coverage"><h2>' + T("Cobertura", "Coverage") + "</h2><p>" + T("Mesas con acta contada", "Mesas with a counted acta") + ': <strong id="cov-mesas">' + n(cov.mesas_counted) + "</strong> "
      + T("de", "of") + ' <strong id="cov-whole">' + n(whole) + "</strong> " + (cov.mesas_published ? T("mesas según la autoridad electoral", "mesas according to the electoral authority") + " (" + h.pct(cov.mesas_counted, whole) + "); " + n(cov.mesas_registry) + " " + T("en el registro", "in the registry")
        : T("mesas del registro", "registry mesas") + " (" + h.pct(cov.mesas_counted, whole) + ")") + ". "
      + T("Electores de esas mesas", "Electors of those mesas") + ': <strong id="cov-electores">' + n(cov.electores_counted) + "</strong> " + T("de", "of") + " " + n(cov.electores_published || cov.electores_registry) + ".</p>";
    if (national) {
      out += '<div class="t-scroll"><table class="t-table" id="coverage-table"><thead><tr><th>' + T("Estado", "State") + '</th><th class="num">' + T("Mesas del registro", "Registry mesas")
        + '</th><th class="num">' + T("Con acta", "With acta") + '</th><th class="num">' + T("Contadas", "Counted") + '</th><th class="num">' + T("Electores cubiertos", "Electors covered") + "</th><th>" + T("Pruebas", "Tests") + "</th></tr></thead><tbody>"
        + d.coverage.filter(function (c) { return c.scope !== "national"; }).map(function (e) {
          return '<tr data-scope="' + esc(e.scope) + '"><td><a href="' + link("/auditoria/estado/" + e.cod_edo) + '">' + esc(e.estado) + '</a></td><td class="num">' + n(e.mesas_registry) + '</td><td class="num">' + n(e.mesas_with_acta)
            + '</td><td class="num">' + n(e.mesas_counted) + '</td><td class="num">' + h.pct(e.electores_counted, e.electores_registry) + "</td><td>"
            + (d.flagged_scopes.indexOf(e.scope) >= 0 ? '<strong class="t-flagged">⚑ ' + T("marcado", "flagged") + "</strong>" : "—") + "</td></tr>";
        }).join("") + "</tbody></table></div>";
    }
    out += "</section>";
    // the authority's bulletins beside the actas
    if (d.official.length) {
      out += '<section id="official"><h2>' + T("Lo que anunció la autoridad, junto a las actas", "What the authority announced, beside the actas") + "</h2>";
      d.official.forEach(function (b, i) {
        out += "<h3>" + T("Boletín", "Bulletin") + " " + (i + 1) + ": " + esc(T(b.read_text_es, b.read_text)) + " · " + esc(T(b.reported_es, b.reported)) + '</h3><div class="t-scroll"><table class="t-table" id="official-' + esc(b.bulletin)
          + '"><thead><tr><th>' + T("Candidato", "Candidate") + '</th><th class="num">' + T("Anunciado", "Announced") + '</th><th class="num">' + T("En las actas archivadas", "In the archived actas") + '</th><th class="num">' + T("Diferencia", "Difference") + "</th></tr></thead><tbody>"
          + b.candidates.map(function (c) {
            return '<tr data-code="' + esc(c.candidate) + '"' + (c.archived > c.announced ? ' class="t-exceeded"' : "") + "><td>" + esc(names[c.candidate] || c.candidate) + '</td><td class="num">' + n(c.announced) + '</td><td class="num">' + n(c.archived)
              + '</td><td class="num">' + (c.archived > c.announced ? "+" : "") + n(c.archived - c.announced).replace(/^-/, "−") + "</td></tr>";
          }).join("") + (b.others_together ? "<tr><td>" + T("Los demás, juntos", "The others, together") + '</td><td class="num">' + n(b.others_together) + "</td><td></td><td></td></tr>" : "") + "</tbody></table></div>";
        var r = b.reach;
        if (r) {
          out += '<p class="t-reach" id="reach-' + esc(b.bulletin) + '">' + (r.exceeded.length ? T("Las actas archivadas ya dan a", "The archived actas alone already give") + " <strong>" + esc(r.exceeded.join(", ")) + "</strong> " + T("más votos que los anunciados.", "more votes than announced.") + " " : "")
            + T("Anunciado", "Announced") + ": " + esc(r.first) + " " + T("supera a", "ahead of") + " " + esc(r.second) + " " + T("por", "by") + " <strong>" + n(r.margin_announced) + "</strong>. " + T("En las actas", "In the actas") + ": " + esc(r.first) + " − " + esc(r.second) + " = <strong>" + n(r.margin_archived) + "</strong>. "
            + T("Faltan", "The archive lacks") + " " + n(r.electores_remaining) + " " + T("electores", "electors") + " (" + n(r.electores_total) + " " + T("en total menos", "in all minus") + " " + n(r.electores_counted) + " " + T("de las mesas contadas", "of the counted mesas") + "). "
            + (r.reachable ? T("Si todos ellos hubieran votado por", "If every one of them had voted for") + " " + esc(r.first) + ", " + T("la diferencia anunciada sería alcanzable", "the announced margin would be reachable") + " (" + T("como máximo", "at most") + " " + n(r.margin_reachable_max) + ")."
              : "<strong>" + T("Ni aunque todos ellos hubieran votado por", "Even if every one of them had voted for") + " " + esc(r.first) + " " + T("se alcanzaría la diferencia anunciada", "the announced margin could not be reached") + "</strong>: " + T("como máximo", "at most") + " " + n(r.margin_reachable_max) + ".") + "</p>";
        }
        out += '<p class="t-sources"><small>' + T("Fuentes", "Sources") + ": " + esc(b.sources.join("; ")) + "</small></p>";
      });
      out += "</section>";
    }
    // the consistency checks, each with its mesas linked to their pages
    out += '<section id="checks"><h2>' + T("Comprobaciones de consistencia", "Consistency checks") + '</h2><div class="t-scroll"><table class="t-table" id="checks-table"><thead><tr><th>' + T("Comprobación", "Check") + '</th><th class="num">' + T("Mesas", "Mesas") + "</th></tr></thead><tbody>"
      + d.checks.map(function (c) {
        return '<tr id="check-' + esc(c.id) + '"><td><a href="' + link(h.path() + "?check=" + encodeURIComponent(c.id)) + '">' + esc(T(c.title_es || c.id, c.title || c.id)) + "</a> <code>" + esc(c.id) + '</code></td><td class="num" data-count="' + esc(c.id) + '">' + n(c.count) + "</td></tr>";
      }).join("") + "</tbody></table></div>";
    d.checks.forEach(function (c) {
      out += '<details id="detail-' + esc(c.id) + '"' + (c.count && c.count <= 30 ? " open" : "") + "><summary>" + esc(T(c.title_es || c.id, c.title || c.id)) + ": " + n(c.count) + "</summary>" + note(c.id)
        + (c.fields && c.fields.length ? '<ul class="t-fields">' + c.fields.map(function (f) { return "<li>" + esc(f.field) + " (" + esc(f.sources) + "): " + n(f.mesas) + " " + T("mesas", "mesas") + "</li>"; }).join("") + "</ul>" : "")
        + (c.mesas.length ? '<p class="t-mesas" data-check="' + esc(c.id) + '">' + c.mesas.map(function (m) { return '<a href="' + link("/mesa/" + m) + '">' + esc(m) + "</a>"; }).join(", ")
          + (c.count > c.mesas.length ? " … " + T("y", "and") + " " + n(c.count - c.mesas.length) + " " + T("más (todas en la tabla audit_check_mesas)", "more (all in the audit_check_mesas table)") : "") + "</p>" : "")
        + "</details>";
    });
    out += "</section>";
    // digit tests: every test row of this scope; notes of each test kind present
    var kinds = [];
    d.tests.forEach(function (t) { if (kinds.indexOf(t.id) < 0) { kinds.push(t.id); } });
    ["last_digit", "round_digits"].forEach(function (k) { if (kinds.indexOf(k) < 0) { kinds.push(k); } });
    out += '<section id="tests"><h2>' + T("Pruebas de dígitos", "Digit tests") + "</h2>" + kinds.map(note).join("")
      + '<div class="t-scroll"><table class="t-table" id="tests-table"><thead><tr><th>' + T("Prueba", "Test") + "</th><th>" + T("Candidato", "Candidate") + '</th><th class="num">n</th><th class="num">' + T("Estadístico", "Statistic") + '</th><th class="num">p</th><th></th></tr></thead><tbody>'
      + d.tests.map(function (t) {
        var label = t.id === "last_digit" ? "χ² " + T("último dígito", "last digit") : t.id === "round_digits" ? T("terminan en 0 o 5", "end in 0 or 5") : (d.notes[t.id] ? T(d.notes[t.id].title_es, d.notes[t.id].title_en) : t.id);
        var stat = t.statistic === null ? "—" : t.id === "round_digits" ? h.pct(t.statistic, 1) : t.statistic.toFixed(2);
        return '<tr data-test="' + esc(t.id) + '" data-candidate="' + esc(t.candidate) + '"' + (t.flag ? ' class="t-flagged"' : "") + "><td>" + label + "</td><td>" + esc(t.candidate) + '</td><td class="num">' + n(t.n) + '</td><td class="num">' + stat + '</td><td class="num">' + pv(t.p_value) + "</td><td>" + (t.flag ? "<strong>⚑ " + T("marcada", "flagged") + "</strong>" : "") + "</td></tr>";
      }).join("") + '</tbody></table></div><div class="t-figs">'
      + d.tests.filter(function (t) { return t.id === "last_digit" && t.digits.length; }).map(function (t) {
        var flagged = d.tests.some(function (u) { return u.candidate === t.candidate && u.flag; });
        return '<figure id="digits-' + esc(t.candidate) + '">' + digits(h, t.digits, T("Últimos dígitos de ", "Last digits of ") + t.candidate, n(t.n) + " " + T("conteos ≥ 10", "counts ≥ 10"), flagged)
          + "<figcaption>" + T("Últimos dígitos de", "Last digits of") + " " + esc(t.candidate) + " (n = " + n(t.n) + ")" + (flagged ? " · ⚑" : "") + "</figcaption></figure>";
      }).join("") + "</div></section>";
    // distributions
    var figs = [];
    function cells(view) { return d.histograms[view] || []; }
    d.main.forEach(function (c) {
      var cs = cells("fingerprint:" + c), total = cs.reduce(function (s, x) { return s + x[2]; }, 0);
      figs.push({ id: "fingerprint-" + c, note: "fingerprint", title: T("Huella electoral: participación contra la proporción de " + c, "Election fingerprint: turnout against " + c + "'s share"),
                  svg: fingerprint(h, cs, T("Huella electoral de " + c, "Election fingerprint of " + c), T("participación (%)", "turnout (%)"), T("proporción de " + c + " (%)", c + "'s share (%)"),
                                   total + " " + T("mesas: participación contra la proporción de " + c, "mesas: turnout against " + c + "'s share")) });
    });
    figs.push({ id: "turnout", note: "turnout", title: T("Participación por mesa", "Turnout per mesa"), svg: histogram(h, cells("turnout"), T("Participación por mesa", "Turnout per mesa"), T("participación (%)", "turnout (%)"),
      T("Mesas por participación, en intervalos de 0,1 %; en rojo los porcentajes enteros", "Mesas by turnout in 0.1 % bins; whole percentages in red")) });
    d.main.forEach(function (c) {
      figs.push({ id: "share-" + c, note: "share", title: T("Proporción de " + c + " por mesa", c + "'s share per mesa"), svg: histogram(h, cells("share:" + c), T("Proporción de " + c + " por mesa", c + "'s share per mesa"),
        T("proporción de " + c + " (%)", c + "'s share (%)"), T("Mesas por proporción de " + c + ", en intervalos de 0,1 %; en rojo los porcentajes enteros", "Mesas by " + c + "'s share in 0.1 % bins; whole percentages in red")) });
    });
    out += '<section id="figures"><h2>' + T("Distribuciones", "Distributions") + "</h2>" + figs.map(function (f) {
      return '<figure id="fig-' + esc(f.id) + '" class="t-wide"><h3>' + esc(f.title) + "</h3>" + f.svg + "<figcaption>" + note(f.note) + "</figcaption></figure>";
    }).join("") + "</section>";
    out += '<section id="reproduce"><h2>' + T("Repítalo usted", "Repeat it yourself") + "</h2><p>" + T("Descargue el paquete, compruebe su firma y consulte las tablas:", "Download the bundle, check its signature and query the tables:")
      + "</p><pre>testigo audit B --json\nsqlite3 B/" + esc(h.database()) + ' "select * from audit_checks"\nsqlite3 B/' + esc(h.database()) + " \"select mesa_id, detail from audit_check_mesas where check_id = 'identical_numbers'\"\nsqlite3 B/"
      + esc(h.database()) + ' "select * from audit_tests where flag = 1"</pre><p><a href="' + link("/descargas") + '">' + T("Descargas", "Downloads") + "</a></p></section>";
    return out;
  }

  window.TestigoAudit = { page: page };
})();
