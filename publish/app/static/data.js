/* The bundle where it lies: which host answers, its database over HTTP range requests, its photos
 * by one range request each, and the signature of its SHA256SUMS. Used by app.js (the pages).
 *
 * Written by testigo (publish/app). The bundle's files are read from the first of
 * testigo-mirror.json's data_urls that answers a range request of the database with CORS; a host
 * that ignores Range or CORS is named in plain words and the next one is tried.
 */
(function () {
  "use strict";

  var T = function (es, en) { return (window.testigoLang || "es") === "en" ? en : es; };
  function hex(buf) {
    return Array.prototype.map.call(new Uint8Array(buf), function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }
  function unhex(s) {
    var out = new Uint8Array(s.length / 2);
    for (var i = 0; i < out.length; i++) { out[i] = parseInt(s.substr(i * 2, 2), 16); }
    return out;
  }
  function b64(s) {
    var bin = atob(s.trim()), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { out[i] = bin.charCodeAt(i); }
    return out;
  }
  function sameBytes(a, b) {
    if (a.length !== b.length) { return false; }
    for (var i = 0; i < a.length; i++) { if (a[i] !== b[i]) { return false; } }
    return true;
  }
  function keyId(bytes8) {          // as minisign shows it: hex of the little-endian number
    var s = "";
    for (var i = bytes8.length - 1; i >= 0; i--) { s += ("0" + bytes8[i].toString(16)).slice(-2); }
    return s.replace(/^0+(?=.)/, "").toUpperCase();
  }

  /* --- which host: the first that answers a range request with CORS ---
   * The probe asks for the first 64 bytes of SHA256SUMS (small, so a host that ignores Range and
   * answers with the whole file costs nothing); the database is on the same host. */
  async function probe(base) {
    var ctrl = new AbortController(), r;
    try {
      r = await fetch(new URL("SHA256SUMS", base), { headers: { Range: "bytes=0-63" }, credentials: "omit", cache: "no-store",
                                                     signal: ctrl.signal });
    } catch (e) {
      return T("no responde o no permite leerlo desde otro sitio (sin cabeceras CORS: Access-Control-Allow-Origin)",
               "does not answer, or does not allow reading it from another site (no CORS headers: Access-Control-Allow-Origin)");
    }
    if (r.status === 200) {
      ctrl.abort();
      return T("no atiende peticiones de rango (Range): enviaría la base de datos entera en cada consulta",
               "ignores range requests (Range): it would send the whole database for every query");
    }
    if (r.status !== 206) {
      ctrl.abort();
      return T("responde " + r.status + ": no tiene los archivos del paquete (SHA256SUMS)",
               "answers " + r.status + ": it does not hold the bundle's files (SHA256SUMS)");
    }
    var head = new Uint8Array(await r.arrayBuffer());
    if (head.length !== 64) {
      return T("no devuelve el rango pedido", "does not return the range asked for");
    }
    return null;
  }

  async function openDb(base, cfg) {
    var url = new URL(cfg.database, base).toString();
    var worker = await window.createDbWorker(
      [{ from: "inline", config: { serverMode: "full", url: url, requestChunkSize: cfg.page_size } }],
      new URL(cfg.assets.worker, location.href).toString(),
      new URL(cfg.assets.wasm, location.href).toString(),
      cfg.max_bytes_per_page || 8 * 1024 * 1024);
    return worker;
  }

  async function choose(cfg, report) {
    var urls = cfg.data_urls.length ? cfg.data_urls : ["./"];
    var problems = [];
    for (var i = 0; i < urls.length; i++) {
      var base = new URL(urls[i], location.href).toString();
      var why = await probe(base), worker = null;
      if (!why) {
        try {
          worker = await openDb(base, cfg);
          await worker.db.query("SELECT 1 FROM sqlite_master LIMIT 1");
        } catch (e) {
          why = T("no sirve la base de datos del paquete (" + e.message + ")", "does not serve the bundle's database (" + e.message + ")");
          worker = null;
        }
      }
      if (why) {
        problems.push({ url: base, problem: why });
        report(problems);
        continue;
      }
      return { base: base, problems: problems, worker: worker };
    }
    return { base: null, problems: problems, worker: null };
  }

  /* --- the signature of SHA256SUMS (minisign, prehashed Ed25519: BLAKE2b-512 of the file) --- */
  async function verifySignature(base, cfg) {
    var out = { key_id: cfg.key_id, ok: false, reason: null, manifest_sha256: null };
    if (!cfg.public_key) {
      out.reason = T("El paquete no está firmado.", "The bundle is not signed.");
      return out;
    }
    var sums, sigText;
    try {
      // the signature came with the app (testigo-mirror.json, copied from the bundle's
      // SHA256SUMS.minisig): one request less per visit; it proves the same, since what is checked
      // is SHA256SUMS as the data host serves it, against the key
      var rs = await fetch(new URL("SHA256SUMS", base), { credentials: "omit" });
      var rg = cfg.signature ? null : await fetch(new URL("SHA256SUMS.minisig", base), { credentials: "omit" });
      if (!rs.ok || (rg && !rg.ok)) { throw new Error("HTTP " + (rs.ok ? rg.status : rs.status)); }
      sums = new Uint8Array(await rs.arrayBuffer());
      sigText = rg ? await rg.text() : cfg.signature;
    } catch (e) {
      out.reason = T("No se pudo leer SHA256SUMS y su firma (" + e.message + ").",
                     "Could not read SHA256SUMS and its signature (" + e.message + ").");
      return out;
    }
    out.manifest_sha256 = hex(await crypto.subtle.digest("SHA-256", sums));
    out.sums = new TextDecoder().decode(sums);
    try {
      var lines = sigText.split("\n");
      var sig = b64(lines[1]), trusted = lines[2].replace(/^trusted comment: /, ""), global = b64(lines[3]);
      var pk = b64(cfg.public_key);
      if (String.fromCharCode(sig[0], sig[1]) !== "ED") { throw new Error("not a prehashed minisign signature"); }
      if (!sameBytes(sig.slice(2, 10), pk.slice(2, 10))) {
        out.reason = T("La firma es de otra clave (" + keyId(sig.slice(2, 10)) + "), no de " + cfg.key_id + ".",
                       "The signature is by another key (" + keyId(sig.slice(2, 10)) + "), not by " + cfg.key_id + ".");
        return out;
      }
      var key = await crypto.subtle.importKey("raw", pk.slice(10, 42), { name: "Ed25519" }, false, ["verify"]);
      var digest = unhex(await window.hashwasm.blake2b(sums, 512));
      var fileOk = await crypto.subtle.verify({ name: "Ed25519" }, key, sig.slice(10, 74), digest);
      var comment = new TextEncoder().encode(trusted);
      var both = new Uint8Array(64 + comment.length);
      both.set(sig.slice(10, 74), 0);
      both.set(comment, 64);
      var commentOk = await crypto.subtle.verify({ name: "Ed25519" }, key, global, both);
      out.trusted_comment = trusted;
      out.ok = fileOk && commentOk && out.manifest_sha256 === cfg.manifest_sha256;
      if (!fileOk || !commentOk) {
        out.reason = T("La firma NO verifica: SHA256SUMS o su firma fueron alterados.",
                       "The signature does NOT verify: SHA256SUMS or its signature was altered.");
      } else if (out.manifest_sha256 !== cfg.manifest_sha256) {
        out.reason = T("La firma es válida pero es de otra edición del paquete que la que esta copia dice mostrar.",
                       "The signature is valid but for another edition of the bundle than this copy says it shows.");
      }
    } catch (e) {
      out.reason = T("No se pudo comprobar la firma (" + e.message + ").", "Could not check the signature (" + e.message + ").");
    }
    return out;
  }

  /* --- a photo: one range request into its shard, checked against its sha256 --- */
  async function photo(base, row) {
    var start = row.offset, end = row.offset + row.size - 1;
    var r = await fetch(new URL(row.shard, base), { headers: { Range: "bytes=" + start + "-" + end }, credentials: "omit" });
    if (r.status !== 206) { throw new Error(T("el servidor no devolvió el rango pedido", "the host did not return the range asked for") + " (HTTP " + r.status + ")"); }
    var bytes = await r.arrayBuffer();
    var ok = hex(await crypto.subtle.digest("SHA-256", bytes)) === row.sha256;
    return { url: URL.createObjectURL(new Blob([bytes], { type: row.media_type })), verified: ok, bytes: bytes.byteLength };
  }

  window.TestigoData = { choose: choose, verifySignature: verifySignature, photo: photo };
})();
