// The PREP site of a corte package (docs/package-format.md).
//
// json/main.json is asked for without cache every POLL_MS. A new corte is loaded whole
// before any of it is shown: its index and every document the current view needs arrive
// first, and then the header and the figures are painted together, in one synchronous
// step. A reader never sees figures of two cortes at once. The DOM is built with
// textContent only: nothing from the data is ever parsed as HTML.
(function () {
  "use strict";

  var POLL_MS = 15000;
  var OTHER = {
    NO_REGISTRADOS: "Candidaturas no registradas",
    NO_REGISTRADAS: "Candidaturas no registradas",
    CANDIDATURAS_NO_REGISTRADAS: "Candidaturas no registradas",
    NULOS: "Votos nulos",
    VOTOS_NULOS: "Votos nulos"
  };
  var INDEPENDENT = /^(?:CI|CAND_?IND|IND)_?0*(\d+)$/i;
  var TIPOS = { B: "Básica", C: "Contigua", E: "Extraordinaria", S: "Especial", M: "Mesa de escrutinio", A: "Anticipada", P: "Prisión preventiva" };

  var cache = {};        // object path -> document: content-addressed, the same in every corte
  var current = null;    // the snapshot on screen: {main, index (a promise, once needed)}
  var newest = null;     // the newest snapshot fully fetched (navigation uses it)
  var latest = 0;        // the newest render request; older ones are dropped
  var polling = null;

  // --- small helpers ------------------------------------------------------------------------

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

  // A percentage of the package (truncated to 4 decimals, trailing zeros dropped), shown with
  // its 4 decimals: padding zeros, never rounding.
  function pct(text) {
    var parts = String(text).split(".");
    return parts[0] + "." + ((parts[1] || "") + "0000").slice(0, 4) + "%";
  }

  // A figure of the PREP's preamble, shown with its own digits: only thousands separators are
  // added to a whole number, never a conversion that could round or reformat it.
  function printed(text) {
    var value = String(text);
    return /^\d+$/.test(value) ? value.replace(/\B(?=(\d{3})+(?!\d))/g, ",") : value;
  }

  // The summary as the site shows it: the PREP's figures; where its preamble printed none (the
  // pre-election corte), prepush's count of the actas, marked with an asterisk. A figure this
  // PREP does not print at all is none (null), never a made-up one.
  function figure(e, key, suffix) {
    if (!Object.prototype.hasOwnProperty.call(e.summary, key)) return null;
    var computed = (e.summary_from_rows || []).indexOf(key) >= 0;
    var text = printed(e.summary[key]);
    var percent = suffix && !/%\s*$/.test(text) ? suffix : "";
    return text + percent + (computed ? "*" : "");
  }

  // "label: figure", or nothing where the PREP printed no such figure.
  function figureLine(label, e, key, suffix) {
    var text = figure(e, key, suffix);
    return text === null ? null : el("p", { "class": "muted", text: label + ": " + text });
  }

  var LABELS = {
    actas_esperadas: "Actas esperadas",
    actas_registradas: "Actas registradas",
    actas_fuera_catalogo: "Actas fuera de catálogo",
    actas_capturadas: "Actas capturadas",
    porcentaje_actas_capturadas: "Porcentaje de actas capturadas",
    actas_contabilizadas: "Actas contabilizadas",
    porcentaje_actas_contabilizadas: "Porcentaje de actas contabilizadas",
    porcentaje_actas_inconsistencias: "Porcentaje de actas con inconsistencias",
    actas_no_contabilizadas: "Actas no contabilizadas",
    lista_nominal_actas_contabilizadas: "Lista nominal de las actas contabilizadas",
    total_votos_c_cs: "Total de votos (con casillas especiales)",
    total_votos_s_cs: "Total de votos (sin casillas especiales)",
    porcentaje_participacion_ciudadana: "Participación ciudadana",
    actas_por_capturar: "Actas por capturar"
  };

  // Every figure of the preamble, in the PREP's order: under its name where prepush knows the
  // figure, under the PREP's own header where it does not.
  function preambleTable(e) {
    var order = e.summary_order || Object.keys(e.summary);
    var headers = e.summary_headers || {};
    var rows = order.map(function (key) {
      var percent = /^porcentaje/.test(key) ? "%" : "";
      return el("tr", { "data-key": key }, [
        el("th", { scope: "row", text: LABELS[key] || headers[key] || key }),
        el("td", { "class": "n", text: figure(e, key, percent) })
      ]);
    });
    return el("div", { "class": "scroll" }, [el("table", { id: "preambulo", "class": "preambulo" }, [
      el("caption", { text: "Cifras del PREP en este corte, tal como las publicó" }),
      el("tbody", {}, rows)
    ])]);
  }

  function computedNote(e) {
    if (!(e.summary_from_rows || []).length) return null;
    return el("p", { "class": "muted computed", text: "* Calculado por prepush con las actas del CSV: el PREP no imprimió esta cifra en este corte." });
  }

  function partiesLabel(parties) {
    if (parties.length > 1) return "Coalición " + parties.join("-");
    var m = INDEPENDENT.exec(parties[0] || "");
    return m ? "Candidatura independiente " + m[1] : parties[0];
  }

  // A vote column in the view by party: a combination is labelled as one, never with the name
  // of a candidate (its votes are a part of a coalition's).
  function columnName(key, combinations) {
    if (OTHER[key]) return OTHER[key];
    if (combinations && combinations[key]) return "Combinación " + combinations[key].join("-") + " (votos por más de un partido de la coalición)";
    if (/^C_/.test(key)) return "Combinación " + key.slice(2).replace(/_/g, "-") + " (votos por más de un partido de la coalición)";
    var m = INDEPENDENT.exec(key);
    return m ? "Candidatura independiente " + m[1] : key;
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

  // An election's resumen is named in main.json; anything else through the corte's index,
  // fetched the first time a view needs it.
  function object(snapshot, name) {
    var named = snapshot.main.elections.filter(function (e) { return e.resumen === name && e.resumen_object; })[0];
    var found = named ? Promise.resolve(named.resumen_object) : index(snapshot).then(function (objects) {
      if (!objects[name]) throw new Error("no existe " + name + " en el corte " + snapshot.main.corte);
      return objects[name];
    });
    return found.then(function (path) {
      if (cache[path]) return cache[path];
      return getJSON(path, false).then(function (doc) { cache[path] = doc; return doc; });
    });
  }

  function index(snapshot) {
    if (!snapshot.index) {
      snapshot.index = getJSON(snapshot.main.index, false).then(function (doc) { return doc.objects; });
      snapshot.index.catch(function () { snapshot.index = null; });
    }
    return snapshot.index;
  }

  // --- routes: what each view shows and the documents it needs ------------------------------

  function currentRoute() {
    var key = location.hash.replace(/^#/, "");
    var p = key.split("/").filter(Boolean).map(decodeURIComponent);
    var route = { key: key, view: "home", parts: p };
    if (p[0] === "consulta" && p.length === 2) { route.view = "consulta"; route.seccion = p[1]; return route; }
    if (!p.length || p[0] === "app") return route;
    route.code = p[0];
    route.resumen = p[0] + "/resumen.json";
    if (p.length === 1 || (p.length === 2 && p[1] === "partidos")) {
      route.view = "election";
      route.parties = p.length === 2;
      return route;
    }
    if (p.length >= 3) {
      route.base = p[0] + "/" + p[1] + "/" + p[2];
      route.view = "group";
      route.parties = p.length === 4 && p[3] === "partidos";
      if (p.length === 5 && p[3] === "seccion") { route.view = "seccion"; route.seccion = p[4]; }
      if (p.length === 5 && p[3] === "casilla") { route.view = "casilla"; route.clave = p[4]; }
    }
    return route;
  }

  function needs(route, snapshot) {
    if (route.view === "home") return [];
    if (route.view === "consulta") return snapshot.main.elections.map(function (e) { return e.code.toLowerCase() + "/secciones.json"; });
    if (route.view === "election") return [route.resumen];
    return [route.resumen, route.base + ".json", route.base + "/catalogo.json"];
  }

  function prepare(snapshot, route) {
    var names = needs(route, snapshot);
    return Promise.all(names.map(function (n) { return object(snapshot, n); })).then(function (docs) {
      var byName = {};
      names.forEach(function (n, i) { byName[n] = docs[i]; });
      return { snapshot: snapshot, route: route, docs: byName };
    });
  }

  // --- painting: header and figures together, synchronously -----------------------------------

  function header(main) {
    var corte = document.getElementById("corte");
    corte.textContent = "Corte: " + corteLabel(main.corte_time);
    corte.setAttribute("data-corte", main.corte);
    document.getElementById("simulacro-banner").hidden = main.kind !== "simulacro";
    var aviso = document.getElementById("aviso");
    aviso.hidden = !main.aviso;
    aviso.textContent = main.aviso || "";
    document.getElementById("zip").setAttribute("href", main.zip);
    // So anyone can compare the database with the hash the institute publishes.
    document.getElementById("zip-sha256").textContent = main.zip_sha256 || "";
    document.getElementById("zip-hash").hidden = !main.zip_sha256;
  }

  // Views name their place; paint shows it with the rest, once the view is built.
  var pendingCrumbs = [];
  function crumbs(parts) { pendingCrumbs = parts; }

  function showCrumbs(parts) {
    var nav = document.getElementById("crumbs");
    nav.textContent = "";
    var list = el("ol", {});
    parts.forEach(function (p, i) {
      var last = i === parts.length - 1;
      list.appendChild(el("li", {}, [p.href && !last ? el("a", { href: p.href, text: p.text }) : el("span", { text: p.text, "aria-current": last ? "page" : "false" })]));
    });
    nav.appendChild(list);
  }

  function status(text) { document.getElementById("estado").textContent = text || ""; }

  function paint(view, moved) {
    var app = document.getElementById("app");
    var focused = document.activeElement;
    var focusHref = focused && app.contains(focused) && focused.getAttribute ? focused.getAttribute("href") : null;
    var nodes = VIEWS[view.route.view](view);
    header(view.snapshot.main);
    showCrumbs(pendingCrumbs);
    app.textContent = "";
    nodes.forEach(function (n) { if (n) app.appendChild(n); });
    app.setAttribute("data-corte", view.snapshot.main.corte);
    app.setAttribute("data-view", view.route.view);
    app.setAttribute("data-route", view.route.key);
    status("");
    if (moved) {
      var heading = app.querySelector("h2");
      if (heading) { heading.setAttribute("tabindex", "-1"); heading.focus(); }
    } else if (focusHref) {
      // A new corte replaced the page under a keyboard reader: keep their place.
      var again = Array.prototype.filter.call(app.querySelectorAll("a"), function (a) { return a.getAttribute("href") === focusHref; })[0];
      if (again) again.focus({ preventScroll: true });
    }
    if (window.performance && performance.mark) performance.mark("prep:pintado");
  }

  // retry: the page will try again by itself (a failed load); otherwise the reader chose a
  // place that does not exist (a sección not in that distrito).
  function paintError(err, snapshot, retry) {
    var app = document.getElementById("app");
    if (snapshot) header(snapshot.main);
    app.textContent = "";
    app.appendChild(el("div", { "class": "error", role: "alert" }, [
      el("strong", { text: "No se pudieron cargar los resultados. " }),
      el("span", { text: String(err && err.message ? err.message : err) + (retry ? ". Se reintentará en unos segundos." : ".") }),
      retry ? null : el("p", {}, [el("a", { href: "#", text: "Volver al inicio" })])
    ]));
    app.setAttribute("data-corte", snapshot ? snapshot.main.corte : "");
    app.setAttribute("data-view", "error");
    app.setAttribute("data-route", currentRoute().key);
  }

  // Prepare the current route on a snapshot and paint it, unless a newer request came since.
  function render(snapshot, moved) {
    var ticket = ++latest;
    var route = currentRoute();
    return prepare(snapshot, route).then(function (view) {
      if (ticket !== latest) return;
      if (route.key !== currentRoute().key) return render(snapshot, moved);
      current = snapshot;
      paint(view, moved);
    });
  }

  function sameMain(a, b) { return a && b && JSON.stringify(a) === JSON.stringify(b); }

  function load() {
    return getJSON("json/main.json", true).then(function (main) {
      if (current && sameMain(current.main, main)) return null;
      var snapshot = newest && newest.main.index === main.index ? { main: main, index: newest.index } : { main: main, index: null };
      newest = snapshot;
      return render(snapshot, false).catch(function (err) {
        // The new corte could not be loaded whole: the previous one stays on screen.
        if (current) status("No se pudo cargar el corte " + main.corte + " (" + (err && err.message ? err.message : err) + "); se reintentará.");
        else paintError(err, null, true);
        // Navigation goes on with what is on screen (or, before anything is, this corte).
        newest = current || snapshot;
      });
    }).catch(function (err) {
      if (current) status("No se pudo comprobar si hay un corte nuevo; se reintentará.");
      else paintError(err, null, true);
    });
  }

  function poll() {
    if (polling) return polling;
    polling = load().then(function () { polling = null; }, function () { polling = null; });
    return polling;
  }

  // --- tables -------------------------------------------------------------------------------

  function bar(percentage) {
    var b = el("span", { "class": "bar", "aria-hidden": "true" });
    b.style.width = String(parseFloat(percentage) || 0) + "%";   // CSSOM: allowed by the CSP
    return el("span", { "class": "track", "aria-hidden": "true" }, [b]);
  }

  function numberCells(votes, percentage) {
    return [el("td", { "class": "n", text: fmt(votes) }), el("td", { "class": "n", text: pct(percentage) })];
  }

  function votesTable(caption, rows, figures, kind) {
    var head = el("thead", {}, [el("tr", {}, [
      el("th", { scope: "col", text: kind }),
      el("th", { scope: "col", "class": "n", text: "Votos" }),
      el("th", { scope: "col", "class": "n", text: "Porcentaje" })
    ])]);
    var foot = el("tfoot", {}, [el("tr", { "data-total": "" }, [
      el("th", { scope: "row", text: "Total" }),
      el("td", { "class": "n", text: fmt(figures.total) }),
      el("td", { "class": "n", text: figures.total ? "100.0000%" : pct("0") })
    ])]);
    return el("div", { "class": "scroll" }, [el("table", { "class": "votes" }, [el("caption", { text: caption }), head, el("tbody", {}, rows), foot])]);
  }

  function otherRow(o, label) {
    var cells = numberCells(o.votes, o.percentage);
    return el("tr", { "class": "other", "data-column": o.column }, [el("th", { scope: "row", text: label }), cells[0], cells[1]]);
  }

  // Votos por candidatura: most votes first; then columns no candidatura claims (if they have
  // votes), candidaturas no registradas and votos nulos; the total.
  function candidaturasTable(caption, definitions, figures) {
    var byKey = {};
    definitions.forEach(function (d, i) { byKey[d.key] = { def: d, order: i }; });
    var rows = figures.candidaturas.slice().sort(function (a, b) {
      return b.votes - a.votes || byKey[a.key].order - byKey[b.key].order;
    }).map(function (r) {
      var d = byKey[r.key].def;
      var title = d.name || partiesLabel(d.parties);
      var leads = figures.leader === r.key;
      var who = el("th", { scope: "row" }, [
        el("span", { "class": "who", text: title }),
        el("span", { "class": "parties", text: partiesLabel(d.parties) + (d.columns.length > 1 ? ": " + d.columns.join(" + ") : "") }),
        leads ? el("span", { "class": "lead", text: "Encabeza" }) : null,
        bar(r.percentage)
      ]);
      var cells = numberCells(r.votes, r.percentage);
      return el("tr", { "data-key": r.key, "class": leads ? "leader" : "" }, [who, cells[0], cells[1]]);
    });
    figures.sin_candidatura.forEach(function (o) { rows.push(otherRow(o, columnName(o.column) + " (sin candidatura en el archivo de candidaturas)")); });
    figures.otros.forEach(function (o) { rows.push(otherRow(o, columnName(o.column))); });
    return votesTable(caption, rows, figures, "Candidatura");
  }

  // Votos por partido político y candidatura independiente: each column as the acta has it.
  function partiesTable(caption, columns, totals, percentages, combinations) {
    var figures = { total: totals.reduce(function (a, b) { return a + b; }, 0) };
    var rows = [];
    columns.forEach(function (c, i) {
      if (OTHER[c]) return;
      var cells = numberCells(totals[i], percentages[i]);
      rows.push(el("tr", { "data-column": c }, [el("th", { scope: "row" }, [el("span", { "class": "who", text: columnName(c, combinations) }), bar(percentages[i])]), cells[0], cells[1]]));
    });
    columns.forEach(function (c, i) {
      if (OTHER[c]) rows.push(otherRow({ column: c, votes: totals[i], percentage: percentages[i] }, OTHER[c]));
    });
    return votesTable(caption, rows, figures, "Partido político, candidatura independiente o combinación");
  }

  function viewSwitch(base, parties, hasCandidaturas) {
    if (!hasCandidaturas) return el("p", { "class": "muted", text: "No hay archivo de candidaturas para esta contienda: se muestran los votos por partido político." });
    var nav = el("nav", { "class": "vistas", "aria-label": "Vista de los resultados" }, [
      el("a", { href: "#" + base, text: "Votos por candidatura", "aria-current": parties ? "false" : "page" }),
      el("a", { href: "#" + base + "/partidos", text: "Votos por partido político y candidatura independiente", "aria-current": parties ? "page" : "false" })
    ]);
    return nav;
  }

  function groupTitle(r, id, name) { return r.group_label + " " + (name || id); }

  // --- views --------------------------------------------------------------------------------

  function summaryCard(e) {
    return el("section", { "class": "card election", "data-code": e.code }, [
      el("h3", {}, [el("a", { href: "#" + e.code.toLowerCase(), text: e.name })]),
      figure(e, "porcentaje_actas_contabilizadas", "%") === null ? null :
        el("p", { "class": "figure", text: figure(e, "porcentaje_actas_contabilizadas", "%") }),
      countedLine(e),
      withShare("Actas capturadas", e, "actas_capturadas", "porcentaje_actas_capturadas"),
      figureLine("Participación ciudadana", e, "porcentaje_participacion_ciudadana", "%"),
      figureLine("Total de votos", e, "total_votos_c_cs"),
      computedNote(e)
    ]);
  }

  // "label: figure (share%)": each part only where the PREP printed it.
  function withShare(label, e, key, shareKey) {
    var count = figure(e, key), share = figure(e, shareKey, "%");
    if (count === null && share === null) return null;
    var text = count === null ? share : count + (share === null ? "" : " (" + share + ")");
    return el("p", { "class": "muted", text: label + ": " + text });
  }

  // "Actas contabilizadas: N de M (P%)", each part where the PREP printed it; the share only
  // where the page has no big figure of it.
  function countedLine(e, withShare) {
    var counted = figure(e, "actas_contabilizadas"), expected = figure(e, "actas_esperadas");
    var share = withShare ? figure(e, "porcentaje_actas_contabilizadas", "%") : null;
    if (counted === null) return null;
    var text = counted + (expected === null ? "" : " de " + expected) + (share === null ? "" : " (" + share + ")");
    return el("p", { "class": "muted", text: "Actas contabilizadas: " + text });
  }

  function consultaForm(value) {
    var input = el("input", { id: "seccion", name: "seccion", type: "text", inputmode: "numeric", autocomplete: "off", pattern: "[0-9]*", required: "", value: value || "" });
    var form = el("form", { id: "consulta", "class": "consulta", role: "search" }, [
      el("h2", { text: "Consulta tu casilla" }),
      el("p", { "class": "muted", text: "Escriba el número de sección de su credencial para votar." }),
      el("label", { "for": "seccion", text: "Número de sección" }),
      el("div", { "class": "row" }, [input, el("button", { type: "submit", text: "Consultar" })])
    ]);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var wanted = input.value.replace(/\D/g, "");
      if (wanted) location.hash = "consulta/" + wanted;
    });
    return form;
  }

  function home(view) {
    crumbs([{ text: "Inicio" }]);
    var main = view.snapshot.main;
    return [
      el("h2", { text: "Avance de actas por elección" }),
      el("div", { id: "elections", "class": "cards" }, main.elections.map(summaryCard)),
      consultaForm("")
    ];
  }

  function groupsTable(r, code) {
    var rows = r.groups.map(function (g) {
      var leader = g.leader;
      return el("tr", { "data-group": g.id }, [
        el("th", { scope: "row" }, [el("a", { href: "#" + code + "/" + r.group_kind + "/" + g.id, text: g.name || g.id })]),
        el("td", { text: leader ? (leader.name || partiesLabel(leader.parties)) + " (" + partiesLabel(leader.parties) + ")" : "—" }),
        el("td", { "class": "n", text: leader ? fmt(leader.votes) : "—" }),
        el("td", { "class": "n", text: leader ? pct(leader.percentage) : "—" }),
        el("td", { "class": "n", text: fmt(g.contabilizadas) + " de " + fmt(g.actas) })
      ]);
    });
    return el("div", { "class": "scroll" }, [el("table", { id: "groups", "class": "groups" }, [
      el("caption", { text: (r.contest === "group" ? "Quién encabeza cada contienda: " : "Quién encabeza en cada ") + r.group_label.toLowerCase() }),
      el("thead", {}, [el("tr", {}, [
        el("th", { scope: "col", text: r.group_label }),
        el("th", { scope: "col", text: "Encabeza" }),
        el("th", { scope: "col", "class": "n", text: "Votos" }),
        el("th", { scope: "col", "class": "n", text: "Porcentaje" }),
        el("th", { scope: "col", "class": "n", text: "Actas contabilizadas" })
      ])]),
      el("tbody", {}, rows)
    ])]);
  }

  function leadsTable(r) {
    var without = r.groups.filter(function (g) { return !g.leader; }).length;
    var rows = r.leads.map(function (l) {
      return el("tr", { "data-key": l.key }, [el("th", { scope: "row", text: partiesLabel(l.parties) }), el("td", { "class": "n", text: fmt(l.contests) })]);
    });
    if (without) rows.push(el("tr", { "class": "other" }, [el("th", { scope: "row", text: "Sin quien encabece (empate o sin votos contabilizados)" }), el("td", { "class": "n", text: fmt(without) })]));
    return el("div", { "class": "scroll" }, [el("table", { id: "leads", "class": "votes" }, [
      el("caption", { text: "Contiendas que encabeza cada partido, coalición o candidatura independiente (de " + fmt(r.groups.length) + ")" }),
      el("thead", {}, [el("tr", {}, [el("th", { scope: "col", text: "Partido, coalición o candidatura independiente" }), el("th", { scope: "col", "class": "n", text: "Contiendas que encabeza" })])]),
      el("tbody", {}, rows)
    ])]);
  }

  function election(view) {
    var route = view.route, r = view.docs[route.resumen], code = route.code;
    crumbs([{ text: "Inicio", href: "#" }, { text: r.name }]);
    var out = [
      el("h2", { text: r.name }),
      countedLine(r, true),
      computedNote(r),
      viewSwitch(code, route.parties, r.contest !== "none")
    ];
    if (route.parties || r.contest === "none") {
      out.push(partiesTable("Votos por partido político y candidatura independiente: " + r.name, r.columns, r.totals, r.percentages, r.combinations));
    } else if (r.contest === "election") {
      out.push(candidaturasTable("Votos por candidatura: " + r.name, r.candidaturas, r.por_candidatura));
    } else {
      out.push(leadsTable(r));
    }
    out.push(el("h3", { text: r.group_label }));
    out.push(groupsTable(r, code));
    out.push(el("h3", { text: "Avance de actas" }));
    out.push(preambleTable(r));
    return out;
  }

  function groupHeader(view, extra) {
    var route = view.route, r = view.docs[route.resumen], cat = view.docs[route.base + "/catalogo.json"];
    var parts = [{ text: "Inicio", href: "#" }, { text: r.name, href: "#" + route.code }, { text: groupTitle(r, cat.id, cat.name), href: "#" + route.base }];
    crumbs(parts.concat(extra || []));
  }

  function group(view) {
    var route = view.route, r = view.docs[route.resumen], g = view.docs[route.base + ".json"], cat = view.docs[route.base + "/catalogo.json"];
    groupHeader(view);
    var title = groupTitle(r, cat.id, cat.name);
    var has = !!g.por_candidatura;
    var out = [
      el("h2", { text: r.name + " — " + title }),
      el("p", { "class": "muted", text: "Actas contabilizadas: " + fmt(g.contabilizadas) + " de " + fmt(g.esperadas) }),
      viewSwitch(route.base, route.parties, has)
    ];
    if (route.parties || !has) out.push(partiesTable("Votos por partido político y candidatura independiente: " + title, cat.columns, g.totals, g.percentages, r.combinations));
    else out.push(candidaturasTable("Votos por candidatura: " + title, cat.candidaturas, g.por_candidatura));
    var received = {};
    g.actas.forEach(function (a) { received[a.clave] = true; });
    out.push(el("h3", { text: "Secciones" }));
    out.push(el("ul", { "class": "secciones" }, cat.secciones.map(function (s) {
      var got = s.casillas.filter(function (c) { return received[c.clave]; }).length;
      return el("li", {}, [el("a", { href: "#" + route.base + "/seccion/" + s.seccion, text: "Sección " + s.seccion }), el("span", { "class": "muted", text: " " + got + " de " + s.casillas.length + (s.casillas.length === 1 ? " acta recibida" : " actas recibidas") })]);
    })));
    return out;
  }

  function casillaLabel(c) {
    var tipo = TIPOS[c.tipo] || c.tipo;
    var number = c.id ? " " + String(Number(c.id) || c.id) : "";
    var ext = c.ext && Number(c.ext) ? " (contigua a extraordinaria " + Number(c.ext) + ")" : "";
    return tipo + number + ext + " — " + c.clave;
  }

  function actaStatus(acta) {
    if (!acta) return "Acta aún no recibida por el PREP";
    if (acta.contabilizada === 1) return "Contabilizada" + (acta.observaciones ? " (" + acta.observaciones + ")" : "");
    return "No contabilizada" + (acta.observaciones ? ": " + acta.observaciones : "");
  }

  function imageLink(main, route, c, acta) {
    var pattern = main.acta_image_url;
    if (!pattern || !acta) return null;
    var values = { clave_acta: acta.clave_acta, clave_casilla: c.clave, sha256: acta.sha256, seccion: route.seccion || "", eleccion: route.code.toUpperCase() };
    var missing = false;
    var url = pattern.replace(/\{([a-z0-9_]+)\}/g, function (_, name) {
      var v = values[name];
      if (!v) missing = true;
      return encodeURIComponent(v || "");
    });
    if (missing || !/^https:\/\//.test(url)) return null;
    return el("p", {}, [el("a", { "class": "imagen", href: url, rel: "noopener", text: "Ver la imagen del acta (sitio del instituto)" })]);
  }

  function actaDetail(view, c, acta, seccion) {
    var main = view.snapshot.main, cat = view.docs[view.route.base + "/catalogo.json"], r = view.docs[view.route.resumen];
    var items = [
      ["Estado del acta", actaStatus(acta)],
      ["Lista nominal", fmt(c.lista_nominal)]
    ];
    if (acta) {
      items.push(["SHA-256 de la imagen del acta", acta.sha256 || "El PREP no publicó imagen de esta acta"]);
      if (acta.digitalizacion) items.push(["Cómo se digitalizó (DIGITALIZACION)", acta.digitalizacion]);
      if (acta.origen) items.push(["Dónde se digitalizó (ORIGEN)", acta.origen]);
      if (acta.tipo_documento) items.push(["Documento digitalizado", acta.tipo_documento]);
    }
    var list = el("dl", { "class": "acta" }, []);
    items.forEach(function (kv) {
      list.appendChild(el("dt", { text: kv[0] }));
      list.appendChild(el("dd", {}, [kv[0].indexOf("SHA") === 0 && acta && acta.sha256 ? el("code", { text: kv[1] }) : document.createTextNode(kv[1])]));
    });
    var out = [el("h3", { text: "Casilla " + casillaLabel(c) }), list, imageLink(main, { code: view.route.code, seccion: seccion }, c, acta)];
    if (acta && acta.votes) {
      var rows = cat.columns.map(function (col, i) {
        return el("tr", { "data-column": col }, [el("th", { scope: "row", text: columnName(col, r.combinations) }), el("td", { "class": "n", text: fmt(acta.votes[i]) })]);
      });
      out.push(el("div", { "class": "scroll" }, [el("table", { "class": "votes acta-votos" }, [
        el("caption", { text: "Votos del acta de la casilla " + c.clave + (acta.contabilizada === 1 ? "" : " (no se suman a los resultados)") }),
        el("thead", {}, [el("tr", {}, [el("th", { scope: "col", text: "Partido, candidatura o combinación" }), el("th", { scope: "col", "class": "n", text: "Votos" })])]),
        el("tbody", {}, rows),
        el("tfoot", {}, [el("tr", {}, [el("th", { scope: "row", text: "Total del acta" }), el("td", { "class": "n", text: fmt(acta.total) })])])
      ])]));
    }
    return el("section", { "class": "card casilla", "data-clave": c.clave }, out);
  }

  function seccionOf(cat, wanted) {
    return cat.secciones.filter(function (s) { return s.seccion === wanted || Number(s.seccion) === Number(wanted); })[0];
  }

  function actasOf(g) {
    var actas = {};
    g.actas.forEach(function (a) { actas[a.clave] = a; });
    return actas;
  }

  function seccion(view) {
    var route = view.route, r = view.docs[route.resumen], g = view.docs[route.base + ".json"], cat = view.docs[route.base + "/catalogo.json"];
    var s = seccionOf(cat, route.seccion);
    if (!s) throw new Error("la sección " + route.seccion + " no está en " + groupTitle(r, cat.id, cat.name));
    groupHeader(view, [{ text: "Sección " + s.seccion }]);
    var actas = actasOf(g);
    return [
      el("h2", { text: "Sección " + s.seccion + " — " + r.name + ", " + groupTitle(r, cat.id, cat.name) }),
      el("p", { "class": "muted", text: s.casillas.length + (s.casillas.length === 1 ? " casilla" : " casillas") })
    ].concat(s.casillas.map(function (c) { return actaDetail(view, c, actas[c.clave], s.seccion); }));
  }

  function casilla(view) {
    var route = view.route, r = view.docs[route.resumen], g = view.docs[route.base + ".json"], cat = view.docs[route.base + "/catalogo.json"];
    var found = null, where = null;
    cat.secciones.forEach(function (s) { s.casillas.forEach(function (c) { if (c.clave === route.clave) { found = c; where = s; } }); });
    if (!found) throw new Error("la casilla " + route.clave + " no está en " + groupTitle(r, cat.id, cat.name));
    groupHeader(view, [{ text: "Sección " + where.seccion, href: "#" + route.base + "/seccion/" + where.seccion }, { text: "Casilla " + found.clave }]);
    return [el("h2", { text: "Casilla " + found.clave + " — " + r.name }), actaDetail(view, found, actasOf(g)[found.clave], where.seccion)];
  }

  function consulta(view) {
    var wanted = view.route.seccion;
    crumbs([{ text: "Inicio", href: "#" }, { text: "Consulta tu casilla" }]);
    var links = [];
    view.snapshot.main.elections.forEach(function (e) {
      var doc = view.docs[e.code.toLowerCase() + "/secciones.json"];
      Object.keys(doc.secciones).forEach(function (s) {
        if (s !== wanted && Number(s) !== Number(wanted)) return;
        doc.secciones[s].forEach(function (gid) {
          var href = "#" + e.code.toLowerCase() + "/" + doc.group_kind + "/" + gid + "/seccion/" + s;
          links.push(el("li", {}, [el("a", { href: href, text: e.name + " — " + doc.group_label + " " + (doc.groups[gid] || gid) + ", sección " + s })]));
        });
      });
    });
    return [
      el("h2", { text: "Consulta tu casilla: sección " + wanted }),
      links.length ? el("ul", { "class": "consulta-resultados" }, links) : el("p", { role: "alert", text: "No hay casillas de la sección " + wanted + " en este corte. Revise el número en su credencial para votar." }),
      consultaForm(wanted)
    ];
  }

  var VIEWS = { home: home, election: election, group: group, seccion: seccion, casilla: casilla, consulta: consulta };

  // --- start --------------------------------------------------------------------------------

  window.addEventListener("hashchange", function () {
    var snapshot = newest || current;
    if (!snapshot) return;
    render(snapshot, true).catch(function (err) { paintError(err, snapshot, false); });
  });
  document.getElementById("saltar").addEventListener("click", function (event) {
    event.preventDefault();
    document.getElementById("app").focus();
  });
  document.addEventListener("visibilitychange", function () { if (!document.hidden) poll(); });
  window.addEventListener("online", poll);
  (function tick() {
    poll().then(function () { setTimeout(tick, POLL_MS); });
  })();
})();
