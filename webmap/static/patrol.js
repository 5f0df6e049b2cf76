/*
 * The patrol page, phones first: where am I (grid and squad), report an issue, and handle the squad's tasks.
 *
 * Reports go through an outbox kept in IndexedDB (idb-keyval): a report is stored first, then sent, and
 * stays until the server has it. Each report gets ONE idempotency key when it is made and keeps it through
 * every retry, so a retry after a lost answer returns the first case instead of making a second one.
 * Network errors, timeouts, 408/425/429 and 5xx are retried with exponential backoff (a Retry-After wins),
 * on the `online` event and when the page loads; any other 4xx stops the report and shows why.
 *
 * This script is loaded before the map's script, so it is listening when the locate control reports.
 * Every value from data is placed with textContent or as a DOM property: never as HTML.
 */
(function () {
  "use strict";

  const G = window.GisMap;
  const KV = window.idbKeyval;
  const MESSAGES = JSON.parse(document.getElementById("gis-messages").textContent);
  const CONFIG = JSON.parse(document.getElementById("gis-config").textContent);
  const CSRF = document.querySelector('meta[name="csrf-token"]').content;
  const el = G.el;
  const MINUTE = 60000;
  const RETRY_STATUSES = [408, 425, 429, 500, 502, 503, 504];
  const PHOTO_TYPES = ["image/jpeg", "image/png", "image/webp"];
  const MOVED_M = 15; // a new position further than this from the last lookup is looked up again
  const NEVER = Number.MAX_SAFE_INTEGER;

  const state = {
    tab: "report",
    position: null, // {lat, lon, accuracy}
    where: null, // {grid, unit, kind} or {error}
    lookedUp: null, // the position last looked up
    point: null, // {lat, lon, source: "gps" | "map"}
    routed: null, // {name, kind, near} or {error}
    photo: null,
    lastReport: null, // key of the report made last on this page
    tasks: [],
    tasksMatched: 0,
    tasksError: null,
    task: null, // the open task's id
    detail: null, // {case, events, photos}
    taskForm: null, // "feedback" | "return" | null
    taskMessage: null, // {kind, text}
    taskBusy: false,
    afterPhoto: null, // {file, id, case}: an after-photo already uploaded is not uploaded again
    draft: {}, // the open task form's photo and text
    storage: Boolean(KV),
  };

  function t(key, vars) {
    let text = (MESSAGES[G.lang] && MESSAGES[G.lang][key]) || MESSAGES.zh[key] || key;
    Object.keys(vars || {}).forEach(function (name) { text = text.split("{" + name + "}").join(String(vars[name])); });
    return text;
  }

  function byId(id) { return document.getElementById(id); }

  function whenMap(callback) {
    if (G.map) { callback(G.map); return; }
    const listener = function () {
      if (!G.map) return;
      document.removeEventListener("gis:layer", listener);
      callback(G.map);
    };
    document.addEventListener("gis:layer", listener);
  }

  function duration(ms) {
    const minutes = Math.max(0, Math.round(Math.abs(ms) / MINUTE));
    if (minutes < 60) return minutes + " " + t("unit.min");
    const hours = Math.floor(minutes / 60);
    return hours + " " + t("unit.h") + " " + (minutes % 60) + " " + t("unit.min");
  }

  function distanceM(a, b) {
    const rad = Math.PI / 180;
    const x = (b.lon - a.lon) * rad * Math.cos(((a.lat + b.lat) / 2) * rad);
    const y = (b.lat - a.lat) * rad;
    return Math.sqrt(x * x + y * y) * 6371000;
  }

  function problemText(body, status) {
    if (body && Array.isArray(body.errors) && body.errors.length) {
      return body.errors.map(function (e) { return e.field + ": " + e.problem; }).join("; ");
    }
    return (body && (body.detail || body.title)) || "HTTP " + status;
  }

  async function readBody(response) {
    try { return await response.json(); } catch (ignored) { return {}; }
  }

  function timeoutSignal(ms) {
    if (AbortSignal.timeout) return AbortSignal.timeout(ms);
    const control = new AbortController();
    setTimeout(function () { control.abort(new DOMException("timed out", "TimeoutError")); }, ms);
    return control.signal;
  }

  // -- language ------------------------------------------------------------------------------------------
  function applyLanguage() {
    document.querySelectorAll("[data-i18n]").forEach(function (node) { node.textContent = t(node.dataset.i18n); });
    document.querySelectorAll("[data-i18n-title]").forEach(function (node) { node.title = t(node.dataset.i18nTitle); });
    document.querySelectorAll("[data-i18n-placeholder]").forEach(function (node) {
      node.placeholder = t(node.dataset.i18nPlaceholder);
    });
    document.title = t("patrol.title");
    showLive(G.liveState || "connecting");
    renderCategories();
    renderWhere();
    renderPoint();
    renderOutbox();
    renderTasks();
    renderTask();
  }

  byId("lang-switch").addEventListener("click", function () {
    const next = G.lang === "en" ? "zh" : "en";
    document.cookie = "gis_lang=" + next + "; path=/; max-age=31536000; samesite=lax";
    G.setLang(next);
  });
  document.addEventListener("gis:lang", applyLanguage);

  function showLive(status) {
    const badge = byId("live");
    badge.dataset.state = status;
    badge.textContent = t("live." + status);
  }

  document.addEventListener("gis:live", function (event) { showLive(event.detail.state); });

  // -- tabs ----------------------------------------------------------------------------------------------
  function showTab(name) {
    state.tab = name;
    document.querySelectorAll(".gis-tabs [role=tab]").forEach(function (tab) {
      const on = tab.dataset.tab === name;
      tab.setAttribute("aria-selected", String(on));
      byId(tab.getAttribute("aria-controls")).hidden = !on;
    });
    if (name === "tasks") loadTasks();
  }

  document.querySelectorAll(".gis-tabs [role=tab]").forEach(function (tab) {
    tab.addEventListener("click", function () { showTab(tab.dataset.tab); });
  });

  // -- where am I: the locate control's position, looked up for its grid cell and squad --------------------
  function renderWhere() {
    const node = byId("where-text");
    const where = state.where;
    if (!state.position && !where) { node.textContent = t("where.locating"); return; }
    if (where && where.error) { node.textContent = where.error; return; }
    const parts = [];
    if (where) {
      parts.push(t("where.grid") + " " + (where.grid || "—"));
      parts.push((where.kind === "squad" || !where.kind ? t("where.squad") : t("kind." + where.kind)) + " " +
        (where.unit || "—"));
    }
    if (state.position && state.position.accuracy) {
      parts.push(t("where.accuracy", { m: Math.round(state.position.accuracy) }));
    }
    node.textContent = parts.join(" / ");
  }

  async function lookUpWhere(position) {
    state.lookedUp = position;
    if (!CONFIG.locateCategory) { state.where = null; renderWhere(); return; }
    const params = new URLSearchParams({
      lon: position.lon.toFixed(6), lat: position.lat.toFixed(6), category: CONFIG.locateCategory,
    });
    try {
      const route = await G.fetchJSON("/api/v1/route?" + params.toString());
      if (state.lookedUp !== position) return;
      state.where = {
        grid: route.grid_cell ? route.grid_cell.code : null, unit: route.assigned ? route.assigned.name : null,
        kind: route.assigned ? route.assigned.kind : null,
      };
    } catch (error) {
      if (state.lookedUp !== position) return;
      state.where = { error: error.status === 400 ? t("where.outside") : t("where.lookup_failed") + error.message };
    }
    renderWhere();
  }

  function onLocation(event) {
    const position = { lat: event.latlng.lat, lon: event.latlng.lng, accuracy: event.accuracy };
    state.position = position;
    if (!state.point || state.point.source === "gps") {
      // A phone reports small moves often: the routing preview is asked again only for a real move.
      const moved = !state.point || distanceM(state.point, position) > MOVED_M;
      setPoint(position.lat, position.lon, "gps", moved);
    }
    if (!state.lookedUp || distanceM(state.lookedUp, position) > MOVED_M) lookUpWhere(position);
    else renderWhere();
  }

  function onLocationError() {
    if (!state.position) { state.where = { error: t("where.denied") }; renderWhere(); }
  }

  // -- the report's location: the phone's position, or a point tapped on the map ----------------------------
  let pointMarker = null;

  function setPoint(lat, lon, source, reroute) {
    state.point = { lat: lat, lon: lon, source: source };
    if (G.map) {
      if (!pointMarker) {
        pointMarker = L.marker([lat, lon], {
          draggable: true, autoPan: true, zIndexOffset: 1000, title: t("report.location"), alt: t("report.location"),
        });
        pointMarker.on("dragend", function () {
          const at = pointMarker.getLatLng();
          setPoint(at.lat, at.lng, "map");
        });
        pointMarker.addTo(G.map);
      } else {
        pointMarker.setLatLng([lat, lon]);
      }
    }
    renderPoint();
    if (reroute !== false) previewRoute();
  }

  function renderPoint() {
    const node = byId("report-point");
    const p = state.point;
    node.textContent = p ? p.lat.toFixed(5) + ", " + p.lon.toFixed(5) + " · " +
      t(p.source === "gps" ? "report.location_gps" : "report.location_map") : t("report.location_none");
    const routed = byId("report-routed");
    routed.replaceChildren();
    routed.className = "gis-routed";
    if (!state.routed) return;
    if (state.routed.error) {
      routed.classList.add("text-danger");
      routed.textContent = state.routed.error;
      return;
    }
    routed.textContent = t("report.routed") + ": " + (state.routed.name || "—") +
      (state.routed.kind ? "（" + t("kind." + state.routed.kind) + "）" : "");
    if (state.routed.near) routed.appendChild(el("div", "text-warning-emphasis", t("details.near_boundary")));
  }

  let routeRequest = 0;

  async function previewRoute() {
    const category = byId("category").value;
    const p = state.point;
    const ticket = ++routeRequest;
    if (!category || !p) { state.routed = null; renderPoint(); return; }
    const params = new URLSearchParams({ lon: p.lon.toFixed(6), lat: p.lat.toFixed(6), category: category });
    try {
      const route = await G.fetchJSON("/api/v1/route?" + params.toString());
      if (ticket !== routeRequest) return;
      state.routed = route.assigned ? {
        name: route.assigned.name, kind: route.assigned.kind, near: route.near_boundary,
      } : null;
    } catch (error) {
      if (ticket !== routeRequest) return;
      state.routed = { error: problemText(error.body, error.status) };
    }
    renderPoint();
  }

  byId("use-gps").addEventListener("click", function () {
    if (!state.position) { state.where = state.where || { error: t("where.denied") }; renderWhere(); return; }
    setPoint(state.position.lat, state.position.lon, "gps");
    if (G.map) G.map.setView([state.position.lat, state.position.lon], Math.max(G.map.getZoom(), CONFIG.locateZoom));
  });

  // -- the category picker: grouped by event class, narrowed by what is typed --------------------------------
  function categoryLabel(code) {
    for (const group of CONFIG.categoryGroups) {
      const option = group.options.find(function (o) { return o.value === code; });
      if (option) return G.lang === "en" ? option.en : option.zh;
    }
    return code;
  }

  function renderCategories() {
    const select = byId("category");
    const query = byId("category-search").value.trim().toLowerCase();
    const chosen = select.value;
    const nodes = [];
    let found = 0;
    const first = el("option", null, t("report.choose"));
    first.value = "";
    nodes.push(first);
    CONFIG.categoryGroups.forEach(function (group) {
      const groupName = G.lang === "en" ? group.en : group.zh;
      const matches = group.options.filter(function (o) {
        if (!query) return true;
        return [o.value, o.zh, o.en, group.zh, group.en].some(function (text) {
          return String(text).toLowerCase().indexOf(query) >= 0;
        });
      });
      if (!matches.length) return;
      const optgroup = el("optgroup");
      optgroup.label = groupName;
      matches.forEach(function (o) {
        const option = el("option", null, G.lang === "en" ? o.en : o.zh);
        option.value = o.value;
        optgroup.appendChild(option);
      });
      found += matches.length;
      nodes.push(optgroup);
    });
    select.replaceChildren.apply(select, nodes);
    const still = Array.from(select.options).some(function (o) { return o.value && o.value === chosen; });
    if (still) select.value = chosen;
    else if (query && found === 1) select.value = select.options[1].value;
    else select.value = "";
    const count = found ? t("report.matches", { n: found }) : t("report.no_match");
    byId("category-count").textContent = query ? count : "";
    if (select.value !== chosen) previewRoute();
  }

  byId("category-search").addEventListener("input", renderCategories);
  byId("category").addEventListener("change", previewRoute);

  // -- the photo ---------------------------------------------------------------------------------------------
  function photoProblem(file) {
    if (PHOTO_TYPES.indexOf(file.type) < 0) return t("report.photo_type");
    if (file.size > CONFIG.maxUploadBytes) {
      return t("report.photo_too_big", { mb: Math.round(CONFIG.maxUploadBytes / 1048576) });
    }
    return null;
  }

  function showPhoto(file) {
    const preview = byId("photo-preview");
    const img = byId("photo-preview-img");
    if (img.src) URL.revokeObjectURL(img.src);
    state.photo = file;
    if (!file) { img.removeAttribute("src"); preview.hidden = true; byId("photo").value = ""; return; }
    img.src = URL.createObjectURL(file);
    preview.hidden = false;
  }

  byId("photo").addEventListener("change", function () {
    const file = byId("photo").files[0] || null;
    const problem = file && photoProblem(file);
    byId("report-problem").textContent = problem || "";
    showPhoto(problem ? null : file);
  });
  byId("photo-remove").addEventListener("click", function () { showPhoto(null); });

  // -- the outbox: IndexedDB, with memory as the working copy ----------------------------------------------------
  const store = KV ? KV.createStore("gis-patrol", "outbox") : null;
  const outbox = new Map(); // key -> record, every user's (only this user's are shown and sent)

  function mine() {
    return Array.from(outbox.values()).filter(function (r) { return r.user === CONFIG.user.id; })
      .sort(function (a, b) { return b.createdAt - a.createdAt; });
  }

  function storageFailed(error) {
    console.warn("outbox storage", error);
    state.storage = false;
    byId("outbox-storage").hidden = false;
  }

  async function save(record) {
    outbox.set(record.key, record);
    if (!state.storage) return;
    try { await KV.set(record.key, record, store); } catch (error) { storageFailed(error); }
  }

  async function forget(key) {
    outbox.delete(key);
    if (!state.storage) return;
    try { await KV.del(key, store); } catch (error) { storageFailed(error); }
  }

  async function loadOutbox() {
    if (!state.storage) { byId("outbox-storage").hidden = false; return; }
    try {
      (await KV.values(store)).forEach(function (r) { if (r && r.key) outbox.set(r.key, r); });
    } catch (error) {
      storageFailed(error);
    }
    // Only the newest sent reports are kept for the list.
    const sent = mine().filter(function (r) { return r.state === "sent"; });
    for (const r of sent.slice(CONFIG.sentKept)) await forget(r.key);
  }

  function newKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16)); // randomUUID needs a secure context; this does not
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const hex = Array.from(b, function (x) { return x.toString(16).padStart(2, "0"); }).join("");
    return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join("-");
  }

  async function digest(file) {
    if (!file || !(window.crypto && crypto.subtle)) return null;
    try {
      const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", await file.arrayBuffer()));
      return Array.from(hash, function (x) { return x.toString(16).padStart(2, "0"); }).join("");
    } catch (ignored) {
      return null;
    }
  }

  // -- sending ---------------------------------------------------------------------------------------------------
  function backoffMs(attempts) {
    const base = Math.min(CONFIG.retryBaseMs * Math.pow(2, Math.max(0, attempts - 1)), CONFIG.retryMaxMs);
    return Math.round(base * (0.75 + Math.random() * 0.5));
  }

  function retryAfterMs(response) {
    const value = response.headers.get("Retry-After");
    if (!value) return null;
    const ms = /^\d+$/.test(value.trim()) ? Number(value.trim()) * 1000 : Date.parse(value) - Date.now();
    return isNaN(ms) ? null : Math.min(Math.max(ms, 0), 3600 * 1000);
  }

  async function later(record, delayMs, reason) {
    record.state = record.caseId != null ? "photo" : "queued";
    record.nextAt = Date.now() + (delayMs != null ? delayMs : backoffMs(record.attempts));
    record.lastError = reason;
    await save(record);
  }

  async function refused(record, response, stage) {
    const body = await readBody(response);
    const status = response.status;
    if (RETRY_STATUSES.indexOf(status) >= 0) {
      return later(record, retryAfterMs(response), status === 503 ? t("outbox.busy") + " (503)" : "HTTP " + status);
    }
    record.nextAt = NEVER;
    if (status === 401) {
      record.state = "auth";
      record.lastError = null;
    } else {
      record.state = "failed";
      record.error = { status: status, stage: stage, text: problemText(body, status) };
    }
    return save(record);
  }

  async function sendCase(record) {
    const response = await fetch("/api/v1/cases", {
      method: "POST", credentials: "same-origin", signal: timeoutSignal(CONFIG.reportTimeoutMs),
      headers: {
        "Content-Type": "application/json", Accept: "application/json", "Idempotency-Key": record.key,
        "X-CSRFToken": CSRF,
      },
      body: JSON.stringify(record.body),
    });
    if (!response.ok) return response;
    const c = await response.json();
    record.caseId = c.id;
    record.caseNo = c.case_no;
    record.routedTo = c.assigned ? c.assigned.name : null;
    record.state = "photo";
    await save(record);
    return null;
  }

  // A photo whose upload answer was lost may have arrived: look before sending it again.
  async function photoArrived(record) {
    const body = await G.fetchJSON("/patrol/cases/" + record.caseId + "/photos");
    const found = body.photos.find(function (p) {
      return p.stage === "before" && ((record.photoSha && p.sha256 === record.photoSha) || p.mine);
    });
    return found ? found.id : null;
  }

  async function sendPhoto(record) {
    if (record.photoTried) record.photoId = await photoArrived(record);
    if (record.photoId != null) return null;
    record.photoTried = true;
    await save(record);
    const form = new FormData();
    form.append("file", record.photo, record.photoName || "photo.jpg");
    form.append("stage", "before");
    const response = await fetch("/api/v1/cases/" + record.caseId + "/attachments", {
      method: "POST", credentials: "same-origin", signal: timeoutSignal(CONFIG.photoTimeoutMs),
      headers: { Accept: "application/json", "X-CSRFToken": CSRF }, body: form,
    });
    if (!response.ok) return response;
    record.photoId = (await response.json()).id;
    return null;
  }

  async function send(record) {
    record.attempts = (record.attempts || 0) + 1;
    record.state = record.caseId != null ? "photo" : "sending";
    await save(record);
    renderOutbox();
    try {
      if (record.caseId == null) {
        const refusal = await sendCase(record);
        if (refusal) return refused(record, refusal, "case");
      }
      if (record.photo && record.photoId == null) {
        const refusal = await sendPhoto(record);
        if (refusal) return refused(record, refusal, "photo");
      }
      Object.assign(record, { state: "sent", sentAt: Date.now(), nextAt: NEVER, photo: null, error: null,
        lastError: null });
      await save(record);
    } catch (error) {
      const timedOut = error && (error.name === "TimeoutError" || error.name === "AbortError");
      await later(record, null, t(timedOut ? "outbox.timeout" : "outbox.network"));
    }
  }

  const SENDABLE = ["queued", "sending", "photo"]; // "sending": the page was closed while it was on its way
  let flushing = null;
  let flushAgain = false;
  let flushTimer = null;

  function withLock(task) {
    // One tab sends at a time; the others find the reports sent when they read them again.
    if (navigator.locks && navigator.locks.request) return navigator.locks.request("gis-patrol-outbox", task);
    return task();
  }

  async function reread(record) {
    if (!state.storage) return record;
    try {
      const stored = await KV.get(record.key, store);
      if (stored) outbox.set(stored.key, stored);
      return stored || record;
    } catch (error) {
      storageFailed(error);
      return record;
    }
  }

  // `now` (the page loaded, so the user is signed in; the network came back; a retry button) makes every
  // waiting report due, and those stopped by a sign-out sendable again.
  let wakeAll = false;

  function wake(record) {
    if (record.state === "auth") record.state = record.caseId != null ? "photo" : "queued";
    if (SENDABLE.indexOf(record.state) >= 0) record.nextAt = 0;
  }

  function flush(now) {
    if (now) {
      wakeAll = true;
      mine().forEach(wake);
    }
    if (flushing) { flushAgain = true; return flushing; }
    flushing = withLock(async function () {
      do {
        flushAgain = false;
        const waking = wakeAll;
        wakeAll = false;
        for (const candidate of mine().reverse()) { // oldest first
          if (!navigator.onLine) break;
          if (SENDABLE.indexOf(candidate.state) < 0 || (candidate.nextAt || 0) > Date.now()) continue;
          const record = await reread(candidate); // another tab may have sent it meanwhile
          if (waking) wake(record);
          if (SENDABLE.indexOf(record.state) < 0) continue;
          await send(record);
          renderOutbox();
        }
      } while (flushAgain);
    }).catch(function (error) {
      console.warn("outbox", error);
    }).finally(function () {
      flushing = null;
      schedule();
      renderOutbox();
    });
    return flushing;
  }

  function schedule() {
    clearTimeout(flushTimer);
    if (!navigator.onLine) return; // the `online` event sends them
    const waiting = mine().filter(function (r) { return SENDABLE.indexOf(r.state) >= 0; });
    if (!waiting.length) return;
    const next = Math.min.apply(null, waiting.map(function (r) { return r.nextAt || 0; }));
    flushTimer = setTimeout(function () { flush(false); }, Math.max(0, next - Date.now()));
  }

  window.addEventListener("online", function () { flush(true); });
  window.addEventListener("offline", renderOutbox);

  // -- the report form -------------------------------------------------------------------------------------------
  byId("panel-report").addEventListener("submit", async function (event) {
    event.preventDefault();
    const problem = byId("report-problem");
    const category = byId("category").value;
    const description = byId("description").value.trim();
    const address = byId("address").value.trim();
    problem.textContent = "";
    if (!category) { problem.textContent = t("report.need_category"); byId("category-search").focus(); return; }
    if (!state.point) { problem.textContent = t("report.need_location"); return; }
    if (description.length > CONFIG.maxDescription || address.length > CONFIG.maxAddress) {
      problem.textContent = t("report.too_long");
      return;
    }
    const submit = event.submitter || byId("panel-report").querySelector("button[type=submit]");
    submit.disabled = true; // one tap, one report: a second tap while it is stored would make another
    const photo = state.photo;
    const record = {
      key: newKey(), user: CONFIG.user.id, createdAt: Date.now(), state: "queued", attempts: 0, nextAt: 0,
      body: {
        category: category, urgency: byId("urgency").value, description: description, address: address || null,
        source: "patroller", geometry: { type: "Point", coordinates: [state.point.lon, state.point.lat] },
      },
      photo: photo, photoName: photo ? photo.name : null, photoSha: await digest(photo),
      caseId: null, caseNo: null, photoId: null, photoTried: false, error: null, lastError: null,
    };
    await save(record);
    submit.disabled = false;
    state.lastReport = record.key;
    byId("description").value = "";
    byId("address").value = "";
    byId("urgency").value = "normal";
    showPhoto(null);
    renderOutbox();
    flush(false);
  });

  // -- the outbox list ---------------------------------------------------------------------------------------------
  function stateText(r) {
    if (r.state === "sent") return t("outbox.state.sent") + " " + (r.caseNo || "");
    if (r.state === "failed") return t("outbox.state.failed");
    if (r.state === "auth") return t("outbox.state.auth");
    if (r.state === "sending") return t("outbox.state.sending");
    if (r.state === "photo" && r.nextAt <= Date.now()) return t("outbox.state.photo");
    return t("outbox.state.queued");
  }

  function noteText(r) {
    const notes = [];
    if ((r.state === "queued" || r.state === "photo") && r.nextAt > Date.now() && r.nextAt < NEVER) {
      if (r.lastError) notes.push(r.lastError);
      notes.push(navigator.onLine ? t("outbox.retry_in", { s: Math.ceil((r.nextAt - Date.now()) / 1000) })
        : t("outbox.offline"));
    } else if (r.state === "queued" && !navigator.onLine) {
      notes.push(t("outbox.offline"));
    }
    if (r.state === "auth") notes.push(t("outbox.auth_hint"));
    if (r.attempts > 1 && r.state !== "sent") notes.push(t("outbox.attempts", { n: r.attempts }));
    return notes.join(" · ");
  }

  function outboxItem(r) {
    const li = el("li", "list-group-item gis-ob-item gis-ob-" + r.state);
    li.dataset.key = r.key;
    li.dataset.state = r.state;
    if (r.caseId != null) li.dataset.caseId = String(r.caseId);
    if (r.caseNo) li.dataset.caseNo = r.caseNo;
    const head = el("div", "gis-ob-head");
    head.appendChild(el("span", "badge gis-ob-state", stateText(r)));
    head.appendChild(el("span", "gis-ob-time", G.formatTime(new Date(r.createdAt).toISOString())));
    li.appendChild(head);
    li.appendChild(el("div", "gis-ob-category", categoryLabel(r.body.category)));
    if (r.body.description) li.appendChild(el("div", "gis-ob-description", r.body.description));
    if (r.body.address) li.appendChild(el("div", "gis-ob-address", r.body.address));
    if (r.routedTo) li.appendChild(el("div", "gis-ob-routed", t("report.routed") + ": " + r.routedTo));
    li.appendChild(el("div", "gis-ob-note", noteText(r)));
    if (r.state === "failed" && r.error) {
      const text = (r.error.stage === "photo" ? t("outbox.photo_failed") + (r.caseNo ? r.caseNo + " · " : "") : "") +
        r.error.text;
      const error = el("div", "gis-ob-error text-danger", text);
      error.setAttribute("role", "alert");
      li.appendChild(error);
    }
    const buttons = el("div", "gis-ob-buttons");
    if (r.state === "failed" || r.state === "auth" || (SENDABLE.indexOf(r.state) >= 0 && r.nextAt > Date.now())) {
      const retry = el("button", "btn btn-sm btn-outline-primary", t("outbox.retry"));
      retry.type = "button";
      retry.dataset.action = "retry";
      retry.addEventListener("click", async function () {
        const record = outbox.get(r.key) || r;
        if (record.state === "failed") {
          Object.assign(record, { state: record.caseId != null ? "photo" : "queued", error: null });
        }
        record.nextAt = 0;
        await save(record);
        flush(true);
      });
      buttons.appendChild(retry);
    }
    if (r.state === "failed" || r.state === "sent") {
      const discard = el("button", "btn btn-sm btn-link text-danger", t("outbox.discard"));
      discard.type = "button";
      discard.dataset.action = "discard";
      discard.addEventListener("click", async function () { await forget(r.key); renderOutbox(); });
      buttons.appendChild(discard);
    }
    if (buttons.childNodes.length) li.appendChild(buttons);
    return li;
  }

  function renderOutbox() {
    const records = mine();
    const list = byId("outbox-list");
    list.replaceChildren.apply(list, records.map(outboxItem));
    const pending = records.filter(function (r) { return r.state !== "sent"; }).length;
    byId("outbox-count").textContent = String(pending);
    byId("outbox-empty").hidden = records.length > 0;
    byId("outbox-offline").hidden = navigator.onLine || !pending;
    const message = byId("report-message");
    const last = state.lastReport && outbox.get(state.lastReport);
    message.replaceChildren();
    if (last) {
      message.className = "gis-report-message alert py-1 px-2 " + (last.state === "sent" ? "alert-success"
        : last.state === "failed" ? "alert-danger" : "alert-warning");
      message.textContent = stateText(last) + (last.state === "failed" && last.error ? "：" + last.error.text : "");
    } else {
      message.className = "gis-report-message";
    }
  }

  // The countdowns tick in place: the list (and a button being tapped) is not rebuilt every second.
  setInterval(function () {
    document.querySelectorAll("#outbox-list > li").forEach(function (li) {
      const r = outbox.get(li.dataset.key);
      const note = li.querySelector(".gis-ob-note");
      if (r && note && (r.state === "queued" || r.state === "photo")) note.textContent = noteText(r);
    });
  }, 1000);

  // -- my tasks: the squad's dispatched and accepted cases -----------------------------------------------------
  let taskMarkers = null;

  async function loadTasks() {
    const params = new URLSearchParams({ status: CONFIG.taskStatuses.join(","), limit: String(CONFIG.taskLimit) });
    try {
      const body = await G.fetchJSON("/api/v1/cases?" + params.toString());
      state.tasks = body.cases;
      state.tasksMatched = body.numberMatched;
      state.tasksError = null;
    } catch (error) {
      state.tasksError = t("tasks.failed") + error.message;
    }
    renderTasks();
  }

  function dueMs(task) {
    return task.due_at ? Date.parse(task.due_at) : Infinity;
  }

  function dueText(task) {
    if (!task.due_at) return t("tasks.no_due");
    const left = Date.parse(task.due_at) - Date.now();
    const when = t("details.due_at") + " " + G.formatTime(task.due_at);
    if (task.overdue || left < 0) return when + " · " + t("tasks.overdue");
    return when + " · " + t("tasks.left") + " " + duration(left);
  }

  function taskItem(task) {
    const late = task.overdue || (task.due_at && Date.parse(task.due_at) < Date.now());
    const li = el("li", "list-group-item list-group-item-action gis-task" + (late ? " gis-task-late" : ""));
    li.dataset.caseId = String(task.id);
    li.tabIndex = 0;
    const head = el("div", "gis-q-head");
    head.appendChild(el("span", "gis-q-no", task.case_no));
    head.appendChild(el("span", "badge gis-status gis-status-" + task.status, t("status." + task.status)));
    if (task.urgency && task.urgency !== "normal") {
      head.appendChild(el("span", "badge gis-urgency gis-urgency-" + task.urgency, t("urgency." + task.urgency)));
    }
    li.appendChild(head);
    li.appendChild(el("div", "gis-q-category",
      G.lang === "en" ? task.category_name_en || task.category_name : task.category_name));
    if (task.address) li.appendChild(el("div", "gis-q-address", task.address));
    li.appendChild(el("div", "gis-task-due" + (late ? " text-danger fw-bold" : ""), dueText(task)));
    li.addEventListener("click", function () { openTask(task.id); });
    li.addEventListener("keydown", function (event) { if (event.key === "Enter") openTask(task.id); });
    return li;
  }

  function renderTasks() {
    const tasks = state.tasks.slice().sort(function (a, b) { return dueMs(a) - dueMs(b); });
    const list = byId("tasks-list");
    list.replaceChildren.apply(list, tasks.map(taskItem));
    byId("tasks-count").textContent = String(state.tasksMatched || tasks.length);
    byId("tasks-empty").hidden = tasks.length > 0 || Boolean(state.tasksError);
    byId("tasks-problem").textContent = state.tasksError || "";
    const more = byId("tasks-more");
    more.hidden = state.tasksMatched <= tasks.length;
    more.textContent = t("tasks.more", { n: tasks.length });
    drawTaskMarkers(tasks);
  }

  function drawTaskMarkers(tasks) {
    if (!G.map) return;
    if (!taskMarkers) taskMarkers = L.layerGroup().addTo(G.map);
    taskMarkers.clearLayers();
    const pane = G.pane(G.map, "tasks", 455);
    tasks.forEach(function (task) {
      if (task.lat == null || task.lon == null) return;
      const late = task.overdue || (task.due_at && Date.parse(task.due_at) < Date.now());
      const marker = L.circleMarker([task.lat, task.lon], {
        pane: pane, radius: 9, weight: 3, color: late ? "#d7191c" : "#1d4e89", fillColor: "#2c7fb8",
        fillOpacity: 0.85, bubblingMouseEvents: false, className: "gis-task-marker",
      });
      marker.bindTooltip(function () { return el("span", null, task.case_no + " " + (task.category_name || "")); });
      marker.on("click", function () { showTab("tasks"); openTask(task.id); });
      taskMarkers.addLayer(marker);
    });
  }

  byId("tasks-refresh").addEventListener("click", loadTasks);

  // -- one task: details, accept, feedback with an after-photo, return ------------------------------------------
  async function loadTask(id) {
    const [item, history, photos] = await Promise.all([
      G.fetchJSON("/api/v1/cases/" + id),
      G.fetchJSON("/api/v1/cases/" + id + "/events"),
      G.fetchJSON("/patrol/cases/" + id + "/photos"),
    ]);
    if (state.task !== id) return;
    state.detail = { case: item, events: history.events, photos: photos.photos };
    renderTask();
  }

  async function openTask(id) {
    if (state.task !== id) {
      state.taskForm = null;
      state.taskMessage = null;
      state.afterPhoto = null;
      state.draft = {};
    }
    state.task = id;
    state.detail = null;
    byId("tasks-view").hidden = true;
    byId("task").hidden = false;
    renderTask();
    try {
      await loadTask(id);
    } catch (error) {
      state.taskMessage = { kind: "danger", text: t("details.failed") + ": " + error.message };
      renderTask();
    }
  }

  function closeTask() {
    state.task = null;
    state.detail = null;
    byId("task").hidden = true;
    byId("tasks-view").hidden = false;
    loadTasks();
  }

  byId("task-back").addEventListener("click", closeTask);

  function row(list, key, value, className) {
    if (value == null || value === "") return;
    list.appendChild(el("dt", null, t(key)));
    list.appendChild(el("dd", className || null, value));
  }

  function renderTask() {
    const body = byId("task-body");
    body.replaceChildren();
    if (state.task == null) return;
    if (state.taskMessage) {
      body.appendChild(el("div", "alert alert-" + state.taskMessage.kind + " py-1 px-2 gis-task-message",
        state.taskMessage.text));
    }
    if (!state.detail) {
      if (!state.taskMessage) body.appendChild(el("p", "text-muted", t("details.loading")));
      return;
    }
    const c = state.detail.case;
    const head = el("div", "gis-d-head");
    head.appendChild(el("span", "gis-d-no", c.case_no));
    head.appendChild(el("span", "badge gis-status gis-status-" + c.status, t("status." + c.status)));
    if (c.clock && c.clock.overdue) head.appendChild(el("span", "badge bg-danger", t("details.overdue")));
    body.appendChild(head);
    const summary = state.tasks.find(function (task) { return task.id === c.id; });
    const list = el("dl", "gis-d-rows");
    const english = G.lang === "en" && summary && summary.category_name_en;
    const category = english ? summary.category_name_en : c.category_name;
    row(list, "details.category", category);
    row(list, "details.urgency", t("urgency." + c.urgency));
    row(list, "details.address", c.address);
    row(list, "details.reported_at", G.formatTime(c.reported_at));
    row(list, "details.grid", c.grid_cell);
    if (c.clock && c.clock.due_at) {
      row(list, "details.due_at", G.formatTime(c.clock.due_at));
      if (c.clock.remaining_hours != null) {
        row(list, "details.remaining", c.clock.remaining_hours + " " + t("unit.workh"),
          c.clock.remaining_hours < 0 ? "text-danger fw-bold" : null);
      }
    }
    body.appendChild(list);
    if (c.description) {
      body.appendChild(el("h3", "gis-d-section", t("details.description")));
      body.appendChild(el("p", "gis-description", c.description));
    }
    body.appendChild(taskActions(c));
    body.appendChild(el("h3", "gis-d-section", t("details.photos")));
    body.appendChild(G.photoStrip(state.detail.photos, t));
    body.appendChild(el("h3", "gis-d-section", t("details.timeline")));
    body.appendChild(G.timeline(state.detail.events, t));
  }

  function taskActions(c) {
    const box = el("div", "gis-actions");
    const locate = el("button", "btn btn-sm btn-outline-secondary", t("action.locate"));
    locate.type = "button";
    locate.addEventListener("click", function () {
      if (G.map) G.map.setView([c.lat, c.lon], Math.max(G.map.getZoom(), 17));
    });
    box.appendChild(locate);
    CONFIG.taskActions.filter(function (a) { return c.allowed_actions.indexOf(a) >= 0; }).forEach(function (action) {
      const button = el("button", "btn btn-sm " + (action === "return" ? "btn-outline-danger" : "btn-primary"),
        t("task." + action));
      button.type = "button";
      button.dataset.action = action;
      button.disabled = state.taskBusy;
      button.addEventListener("click", function () {
        if (action === "accept") { transition(c, { action: "accept" }); return; }
        state.taskForm = action;
        state.taskMessage = null;
        state.draft = {};
        renderTask();
      });
      box.appendChild(button);
    });
    if (state.taskForm === "feedback" && c.allowed_actions.indexOf("feedback") >= 0) box.appendChild(feedbackForm(c));
    if (state.taskForm === "return" && c.allowed_actions.indexOf("return") >= 0) box.appendChild(returnForm(c));
    return box;
  }

  // What is typed or chosen in an open form survives a redraw (a live update, a language switch).
  function textArea(name, labelKey, required) {
    const label = el("label", "form-label", t(labelKey));
    const area = el("textarea", "form-control form-control-sm");
    area.name = name;
    area.rows = 2;
    area.maxLength = CONFIG.maxNote;
    area.required = Boolean(required);
    area.value = state.draft[name] || "";
    area.addEventListener("input", function () { state.draft[name] = area.value; });
    label.appendChild(area);
    return { label: label, area: area };
  }

  function formFooter(form, submitKey) {
    const problem = el("div", "gis-form-problem text-danger small", state.draft.problem || "");
    problem.setAttribute("role", "alert");
    form.appendChild(problem);
    const buttons = el("div", "gis-form-buttons");
    const submit = el("button", "btn btn-sm btn-primary", t(submitKey));
    submit.type = "submit";
    submit.disabled = state.taskBusy;
    const cancel = el("button", "btn btn-sm btn-link", t("task.cancel"));
    cancel.type = "button";
    cancel.addEventListener("click", function () { state.taskForm = null; state.draft = {}; renderTask(); });
    buttons.appendChild(submit);
    buttons.appendChild(cancel);
    form.appendChild(buttons);
    return problem;
  }

  // A form's problem is kept in the draft too, so that a redraw does not wipe it.
  function say(problem, text) {
    state.draft.problem = text;
    problem.textContent = text;
  }

  async function uploadAfterPhoto(c, file) {
    const kept = state.afterPhoto;
    if (kept && kept.file === file && kept.case === c.id) return kept.id; // uploaded before a failed step
    const data = new FormData();
    data.append("file", file, file.name || "after.jpg");
    data.append("stage", "after");
    const uploaded = await G.fetchJSON("/api/v1/cases/" + c.id + "/attachments", {
      method: "POST", headers: { "X-CSRFToken": CSRF }, body: data,
    });
    state.afterPhoto = { file: file, id: uploaded.id, case: c.id };
    return uploaded.id;
  }

  function feedbackForm(c) {
    const form = el("form", "gis-form gis-feedback");
    const photoLabel = el("label", "form-label", t("task.after_photo"));
    const input = el("input", "form-control form-control-sm");
    input.type = "file";
    input.name = "after_photo";
    input.accept = "image/*";
    input.setAttribute("capture", "environment");
    photoLabel.appendChild(input);
    form.appendChild(photoLabel);
    const chosen = el("div", "gis-sub gis-after-chosen", state.draft.photo ? state.draft.photo.name : "");
    form.appendChild(chosen);
    input.addEventListener("change", function () {
      state.draft.photo = input.files[0] || null;
      chosen.textContent = state.draft.photo ? state.draft.photo.name : "";
    });
    const note = textArea("note", "task.note", false);
    form.appendChild(note.label);
    const problem = formFooter(form, "task.submit_feedback");
    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      const file = state.draft.photo;
      if (!file) { say(problem, t("task.need_photo")); return; }
      const bad = photoProblem(file);
      if (bad) { say(problem, bad); return; }
      state.taskBusy = true;
      say(problem, t("task.uploading"));
      let photoId;
      try {
        photoId = await uploadAfterPhoto(c, file);
      } catch (error) {
        state.taskBusy = false;
        say(problem, t("error.generic") + problemText(error.body, error.status));
        return;
      }
      const body = { action: "feedback", attachment_ids: [photoId] };
      if (note.area.value.trim()) body.note = note.area.value.trim();
      await transition(c, body);
    });
    return form;
  }

  function returnForm(c) {
    const form = el("form", "gis-form gis-return");
    const reason = textArea("reason", "task.return_reason", true);
    form.appendChild(reason.label);
    const problem = formFooter(form, "task.submit_return");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      const note = reason.area.value.trim();
      if (!note) { say(problem, t("task.need_reason")); reason.area.focus(); return; }
      transition(c, { action: "return", note: note });
    });
    return form;
  }

  async function transition(c, body) {
    state.taskBusy = true;
    try {
      const updated = await G.fetchJSON("/api/v1/cases/" + c.id + "/transitions", {
        method: "POST",
        headers: { "Content-Type": "application/json", "If-Match": 'W/"' + c.version + '"', "X-CSRFToken": CSRF },
        body: JSON.stringify(body),
      });
      state.taskForm = null;
      state.afterPhoto = null;
      state.draft = {};
      state.taskMessage = { kind: "success", text: t("task.done." + body.action) + " · " + updated.case_no };
    } catch (error) {
      if (error.status === 409 || error.status === 412) {
        state.taskForm = null;
        state.taskMessage = { kind: "warning", text: t("error.conflict") };
      } else {
        state.taskMessage = { kind: "danger", text: t("error.generic") + problemText(error.body, error.status) };
      }
    }
    state.taskBusy = false;
    await loadTask(c.id).catch(function () { renderTask(); });
    loadTasks();
  }

  // -- live updates: the squad's cases changed elsewhere (dispatched to it, taken back, closed) -------------------
  let tasksTimer = null;

  function tasksChanged() {
    clearTimeout(tasksTimer);
    tasksTimer = setTimeout(loadTasks, 200);
  }

  document.addEventListener("gis:case", function (event) {
    tasksChanged();
    const change = event.detail.event;
    // Reload the open task only when someone else moved it on (our own steps reload it already).
    if (state.task === change.id && state.detail && !state.taskBusy && change.version !== state.detail.case.version) {
      loadTask(change.id).catch(function () { return null; });
    }
  });
  document.addEventListener("gis:resync", tasksChanged);

  // -- start -----------------------------------------------------------------------------------------------------
  whenMap(function (map) {
    map.on("locationfound", onLocation);
    map.on("locationerror", onLocationError);
    map.on("click", function (event) {
      if (state.tab === "report") setPoint(event.latlng.lat, event.latlng.lng, "map");
    });
    if (state.point) setPoint(state.point.lat, state.point.lon, state.point.source);
    renderTasks();
  });

  applyLanguage();
  loadTasks();
  loadOutbox().then(function () { renderOutbox(); flush(true); });
})();
