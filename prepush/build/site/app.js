// PREP site: reads json/main.json (never cached), then the index and the immutable objects.
(function () {
  "use strict";

  var REFRESH_MS = 60000;
  var state = { main: null, index: null, objects: {} };
  var NAMES = { NO_REGISTRADOS: "Candidaturas no registradas", NO_REGISTRADAS: "Candidaturas no registradas", NULOS: "Votos nulos" };

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) node.appendChild(c); });
    return node;
  }

  function fmt(n) { return n === null || n === undefined ? "—" : Number(n).toLocaleString("es-MX"); }

  // A figure of the PREP's preamble, shown with its own digits: only thousands separators are
  // added to a whole number, never a conversion that could round or reformat it.
  function printed(text) {
    var value = String(text);
    return /^\d+$/.test(value) ? value.replace(/\B(?=(\d{3})+(?!\d))/g, ",") : value;
  }

  // The summary as the site shows it: the PREP's figures; where its preamble printed none (the
  // pre-election corte), prepush's count of the actas, marked with an asterisk.
  function figure(e, key, suffix) {
    var computed = (e.summary_from_rows || []).indexOf(key) >= 0;
    return printed(e.summary[key]) + (suffix || "") + (computed ? "*" : "");
  }

  function computedNote(e) {
    if (!(e.summary_from_rows || []).length) return null;
    return el("p", { "class": "muted computed", text: "* Calculado por prepush con las actas del CSV: el PREP no imprimió esta cifra en este corte." });
  }

  function columnName(key) {
    if (NAMES[key]) return NAMES[key];
    if (key.indexOf("C_") === 0) return "Coalición " + key.slice(2).replace(/_/g, "-");
    if (key.indexOf("CAND_IND") === 0) return "Candidatura independiente " + key.slice(9);
    return key;
  }

  // The corte's local time is the one in corte_time's own offset, not the browser's zone.
  function corteLabel(iso) {
    var m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::\d{2}(?:\.\d+)?)?([+-]\d{2}:\d{2}|Z)$/.exec(iso);
    if (!m) return iso;
    var offset = m[6] === "Z" ? "+00:00" : m[6];
    return m[3] + "/" + m[2] + "/" + m[1] + " " + m[4] + ":" + m[5] + " (UTC" + offset + ")";
  }

  function getJSON(path, fresh) {
    var url = fresh ? path + "?t=" + Date.now() : path;
    return fetch(url, { cache: fresh ? "no-store" : "default" }).then(function (r) {
      if (!r.ok) throw new Error(path + " respondió " + r.status);
      return r.json();
    });
  }

  function object(name) {
    var path = state.index.objects[name];
    if (!path) return Promise.reject(new Error("no existe " + name + " en este corte"));
    if (state.objects[path]) return Promise.resolve(state.objects[path]);
    return getJSON(path, false).then(function (doc) { state.objects[path] = doc; return doc; });
  }

  function showError(err) {
    var app = document.getElementById("app");
    app.textContent = "";
    app.appendChild(el("div", { "class": "error", role: "alert" }, [
      el("strong", { text: "No se pudieron cargar los resultados. " }),
      el("span", { text: String(err && err.message ? err.message : err) + ". Se reintentará en un minuto." })
    ]));
  }

  function header() {
    var main = state.main;
    var corte = document.getElementById("corte");
    corte.textContent = "Corte: " + corteLabel(main.corte_time);
    corte.setAttribute("data-corte", main.corte);
    document.getElementById("simulacro-banner").hidden = main.kind !== "simulacro";
    var aviso = document.getElementById("aviso");
    aviso.hidden = !main.aviso;
    aviso.textContent = main.aviso || "";
    var zip = document.getElementById("zip");
    zip.setAttribute("href", main.zip);
    // So anyone can compare the database with the hash the institute publishes.
    document.getElementById("zip-sha256").textContent = main.zip_sha256 || "";
    document.getElementById("zip-hash").hidden = !main.zip_sha256;
  }

  function crumbs(parts) {
    var nav = document.getElementById("crumbs");
    nav.textContent = "";
    parts.forEach(function (p, i) {
      if (i) nav.appendChild(document.createTextNode(" › "));
      nav.appendChild(p.href ? el("a", { href: p.href, text: p.text }) : el("span", { text: p.text }));
    });
  }

  function summaryCard(e) {
    return el("section", { "class": "card election", "data-code": e.code }, [
      el("h2", {}, [el("a", { href: "#" + e.code.toLowerCase(), text: e.name })]),
      el("p", { "class": "figure", text: figure(e, "porcentaje_actas_contabilizadas", "%") }),
      el("p", { "class": "muted", text: "Actas contabilizadas: " + figure(e, "actas_contabilizadas") + " de " + figure(e, "actas_esperadas") }),
      el("p", { "class": "muted", text: "Actas capturadas: " + figure(e, "actas_capturadas") + " (" + figure(e, "porcentaje_actas_capturadas", "%") + ")" }),
      el("p", { "class": "muted", text: "Participación ciudadana: " + figure(e, "porcentaje_participacion_ciudadana", "%") }),
      el("p", { "class": "muted", text: "Total de votos: " + figure(e, "total_votos_c_cs") }),
      computedNote(e)
    ]);
  }

  function home() {
    crumbs([{ text: "Inicio" }]);
    var list = el("div", { id: "elections", "class": "cards" }, state.main.elections.map(summaryCard));
    return Promise.resolve([el("h2", { text: "Avance de actas por elección" }), list]);
  }

  function votesTable(columns, totals, candidaturas) {
    var grand = totals.reduce(function (a, b) { return a + b; }, 0) || 1;
    var byParty = {};
    (candidaturas || []).forEach(function (c) {
      // The PREP names a coalition's candidacy SUM-PAN-PRI-PRD; its vote column is C_PAN_PRI_PRD.
      var key = c.party.indexOf("SUM-") === 0 ? "C_" + c.party.slice(4).replace(/-/g, "_") : c.party;
      byParty[key] = c.name;
    });
    var rows = columns.map(function (c, i) { return { key: c, votes: totals[i] }; });
    rows.sort(function (a, b) { return b.votes - a.votes; });
    var body = rows.map(function (r) {
      var share = (100 * r.votes / grand);
      return el("tr", {}, [
        el("td", { text: columnName(r.key) + (byParty[r.key] ? " — " + byParty[r.key] : "") }),
        el("td", { "class": "n", text: fmt(r.votes) }),
        el("td", { "class": "n", text: share.toFixed(2) + "%" }),
        el("td", { "class": "barcell" }, [el("div", { "class": "bar", style: "width:" + share.toFixed(2) + "%" })])
      ]);
    });
    return el("div", { "class": "scroll" }, [el("table", { "class": "votes" }, [
      el("thead", {}, [el("tr", {}, [el("th", { text: "Partido, coalición o candidatura" }), el("th", { "class": "n", text: "Votos" }), el("th", { "class": "n", text: "%" }), el("th", { "class": "barcell", text: "" })])]),
      el("tbody", {}, body)
    ])]);
  }

  function electionView(code) {
    return object(code + "/resumen.json").then(function (r) {
      crumbs([{ text: "Inicio", href: "#" }, { text: r.name }]);
      var groups = r.groups.map(function (g) {
        return el("tr", {}, [
          el("td", {}, [el("a", { href: "#" + code + "/" + r.group_kind + "/" + g.id, text: g.name || g.id })]),
          el("td", { "class": "n", text: fmt(g.contabilizadas) + " / " + fmt(g.actas) }),
          el("td", { "class": "n", text: fmt(g.total) })
        ]);
      });
      return [
        el("h2", { text: r.name }),
        el("p", { "class": "muted", text: "Actas contabilizadas: " + figure(r, "actas_contabilizadas") + " (" + figure(r, "porcentaje_actas_contabilizadas", "%") + ")" }),
        computedNote(r),
        votesTable(r.columns, r.totals, r.candidaturas),
        el("h3", { text: r.group_label }),
        el("div", { "class": "scroll" }, [el("table", { id: "groups" }, [
          el("thead", {}, [el("tr", {}, [el("th", { text: r.group_label }), el("th", { "class": "n", text: "Actas contabilizadas" }), el("th", { "class": "n", text: "Votos" })])]),
          el("tbody", {}, groups)
        ])])
      ];
    });
  }

  function casillaRow(columns, c, acta) {
    var status = !acta ? "Acta aún no recibida" : acta.contabilizada === 1 ? (acta.observaciones || "Contabilizada") : (acta.observaciones || "No contabilizada");
    var cells = [el("td", { text: c.clave }), el("td", { text: c.tipo + (c.ext && c.ext !== "00" ? " ext." : "") }), el("td", { text: status })];
    columns.forEach(function (_, i) { cells.push(el("td", { "class": "n", text: acta && acta.votes ? fmt(acta.votes[i]) : "—" })); });
    cells.push(el("td", { "class": "n", text: acta ? fmt(acta.total) : "—" }));
    return el("tr", {}, cells);
  }

  // A distrito or municipio: its catálogo (secciones and casillas, the same all night) and
  // its results (the actas published so far, in the order the PREP published them).
  function groupView(code, kind, id) {
    var base = code + "/" + kind + "/" + id;
    return Promise.all([object(code + "/resumen.json"), object(base + ".json"), object(base + "/catalogo.json")]).then(function (docs) {
      var r = docs[0], g = docs[1], cat = docs[2];
      var actas = {};
      g.actas.forEach(function (a) { actas[a.clave] = a; });
      crumbs([{ text: "Inicio", href: "#" }, { text: r.name, href: "#" + code }, { text: cat.name || id }]);
      var out = [
        el("h2", { text: (cat.name || id) }),
        el("p", { "class": "muted", text: "Actas contabilizadas: " + fmt(g.contabilizadas) + " de " + fmt(g.esperadas) }),
        votesTable(cat.columns, g.totals, cat.candidaturas.length ? cat.candidaturas : r.candidaturas)
      ];
      cat.secciones.forEach(function (s) {
        var head = [el("th", { text: "Casilla" }), el("th", { text: "Tipo" }), el("th", { text: "Estado del acta" })];
        cat.columns.forEach(function (c) { head.push(el("th", { "class": "n", text: c })); });
        head.push(el("th", { "class": "n", text: "Total" }));
        out.push(el("h3", { text: "Sección " + s.seccion }));
        out.push(el("div", { "class": "scroll" }, [el("table", { "class": "casillas" }, [
          el("thead", {}, [el("tr", {}, head)]),
          el("tbody", {}, s.casillas.map(function (c) { return casillaRow(cat.columns, c, actas[c.clave]); }))
        ])]));
      });
      return out;
    });
  }

  function route() {
    var parts = location.hash.replace(/^#/, "").split("/").filter(Boolean);
    if (parts.length === 3) return groupView(parts[0], parts[1], parts[2]);
    if (parts.length === 1) return electionView(parts[0]);
    return home();
  }

  function render() {
    header();
    return route().then(function (nodes) {
      var app = document.getElementById("app");
      app.textContent = "";
      nodes.forEach(function (n) { if (n) app.appendChild(n); });
    });
  }

  function load() {
    return getJSON("json/main.json", true).then(function (main) {
      var changed = !state.main || state.main.corte !== main.corte;
      state.main = main;
      if (!changed) return null;
      return getJSON(main.index, false).then(function (index) { state.index = index; return render(); });
    }).catch(showError);
  }

  window.addEventListener("hashchange", function () { if (state.index) render().catch(showError); });
  load();
  setInterval(load, REFRESH_MS);
})();
