/*
 * The command centre page: filters, the queue of cases waiting to be verified or dispatched, case details
 * (photos, timeline) and the steps an operator or supervisor takes from there. The map and the live event
 * stream are the Folium elements' (gismap.js); this page listens to their DOM events.
 *
 * Every value from data is placed with textContent or as a DOM property: never as HTML.
 */
(function () {
  "use strict";

  const G = window.GisMap;
  const MESSAGES = JSON.parse(document.getElementById("gis-messages").textContent);
  const CONFIG = JSON.parse(document.getElementById("gis-config").textContent);
  const CSRF = document.querySelector('meta[name="csrf-token"]').content;
  const el = G.el;
  const MINUTE = 60000;
  const STATUS_GROUPS = {
    open: CONFIG.openStatuses, queue: CONFIG.queueStatuses, closed: ["closed", "evaluated"], all: CONFIG.statuses,
  };
  const PANEL_ACTIONS = ["file", "dispatch", "cancel"];

  const state = {
    filter: { statuses: CONFIG.openStatuses.slice() },
    queue: new Map(),
    queueMatched: 0, // all the cases waiting, of which state.queue holds a bounded part
    queueComplete: true, // state.queue holds every case waiting
    queueTimer: null,
    selected: null,
    detail: null, // {case, events, photos}
    form: null, // "dispatch" | "cancel" | null
    draft: {}, // what is typed in the open form: kept when the panel is redrawn (a live update, a language)
    message: null, // {kind, text}
  };

  function t(key) {
    return (MESSAGES[G.lang] && MESSAGES[G.lang][key]) || MESSAGES.zh[key] || key;
  }

  function casesLayer() { return G.layers.cases; }

  // -- language ------------------------------------------------------------------------------------------
  function applyLanguage() {
    document.querySelectorAll("[data-i18n]").forEach(function (node) { node.textContent = t(node.dataset.i18n); });
    document.querySelectorAll("[data-i18n-title]").forEach(function (node) { node.title = t(node.dataset.i18nTitle); });
    document.querySelectorAll("option[data-zh]").forEach(function (option) {
      option.textContent = G.lang === "en" ? option.dataset.en : option.dataset.zh;
    });
    document.title = t("app.title");
    showLive(G.liveState || "connecting");
    renderQueue();
    renderDetails();
  }

  document.getElementById("lang-switch").addEventListener("click", function () {
    const next = G.lang === "en" ? "zh" : "en";
    document.cookie = "gis_lang=" + next + "; path=/; max-age=31536000; samesite=lax";
    G.setLang(next);
  });
  document.addEventListener("gis:lang", applyLanguage);

  // -- time ----------------------------------------------------------------------------------------------
  // Midnight in Asia/Shanghai, `days` days before today, as ISO 8601 with its +08:00 offset.
  function shanghaiMidnight(daysBefore) {
    const parts = new Intl.DateTimeFormat("en-CA", {
      timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit", day: "2-digit",
    }).formatToParts(new Date());
    const get = function (type) { return parts.find(function (p) { return p.type === type; }).value; };
    const today = Date.parse(get("year") + "-" + get("month") + "-" + get("day") + "T00:00:00+08:00");
    const moment = new Date(today - daysBefore * 24 * 60 * MINUTE + 8 * 60 * MINUTE);
    return moment.toISOString().slice(0, 19) + "+08:00";
  }

  function duration(ms) {
    const minutes = Math.max(0, Math.round(Math.abs(ms) / MINUTE));
    if (minutes < 60) return minutes + " " + t("unit.min");
    const hours = Math.floor(minutes / 60);
    return hours + " " + t("unit.h") + " " + (minutes % 60) + " " + t("unit.min");
  }

  // -- filters -------------------------------------------------------------------------------------------
  const filterForm = document.getElementById("filters");

  function readFilter() {
    const data = new FormData(filterForm);
    const filter = {};
    const status = data.get("status") || "open";
    filter.statuses = (STATUS_GROUPS[status] || [status]).slice();
    if (data.get("category")) filter.categories = [data.get("category")];
    if (data.get("squad")) filter.squads = [data.get("squad")];
    const days = { today: 0, "7d": 6, "30d": 29, "365d": 364 }[data.get("time")];
    if (days != null) filter.since = shanghaiMidnight(days);
    return filter;
  }

  function applyFilter() {
    state.filter = readFilter();
    if (casesLayer()) casesLayer().setFilter(state.filter);
    loadQueue();
  }

  filterForm.addEventListener("change", applyFilter);
  filterForm.addEventListener("submit", function (event) { event.preventDefault(); applyFilter(); });

  // -- the queue -----------------------------------------------------------------------------------------
  function summaryOf(feature) {
    const props = feature.properties || {};
    const coords = (feature.geometry && feature.geometry.coordinates) || [null, null];
    return Object.assign({ id: feature.id, lon: coords[0], lat: coords[1] }, props);
  }

  function inQueue(item) {
    if (CONFIG.queueStatuses.indexOf(item.status) < 0) return false;
    return G.caseMatches(Object.assign({}, state.filter, { statuses: CONFIG.queueStatuses }), item);
  }

  function remainingMs(item) {
    const targets = CONFIG.queueTargetsMin[item.urgency] || CONFIG.queueTargetsMin.normal;
    const minutes = item.status === "reported" ? targets[0] : targets[1];
    return Date.parse(item.reported_at) + minutes * MINUTE - Date.now();
  }

  // The queue is bounded whatever the backlog: the first CONFIG.queueLimit cases (the oldest, which have
  // the least time left at equal urgency) and, in a second page of the same size, the urgent and emergency
  // ones, which must show however many normal ones wait before them. The badge counts them all.
  async function loadQueue() {
    clearTimeout(state.queueTimer);
    const params = new URLSearchParams({ status: CONFIG.queueStatuses.join(","), limit: String(CONFIG.queueLimit) });
    if (state.filter.categories) params.set("category", state.filter.categories.join(","));
    if (state.filter.squads) params.set("squad", state.filter.squads.join(","));
    if (state.filter.since) params.set("datetime", state.filter.since + "/..");
    const urgent = new URLSearchParams(params);
    urgent.set("urgency", CONFIG.queueUrgent.join(","));
    const requested = params.toString();
    state.queueRequest = requested;
    try {
      const [body, pressing] = await Promise.all([
        G.fetchJSON("/api/v1/cases?" + requested), G.fetchJSON("/api/v1/cases?" + urgent.toString()),
      ]);
      if (state.queueRequest !== requested) return;
      state.queue = new Map(body.cases.concat(pressing.cases).map(function (c) { return [c.id, c]; }));
      state.queueMatched = body.numberMatched;
      state.queueComplete = body.numberMatched <= body.numberReturned;
    } catch (error) {
      console.warn("queue", error.message);
    }
    renderQueue();
  }

  // A live change to the queue: exact while the whole queue is here; otherwise the shown part is kept to
  // its bound (the cases with the most time left go) and the count is read again shortly, once per burst.
  function queueChanged(id, item) {
    const had = state.queue.has(id);
    if (item && inQueue(item)) state.queue.set(id, Object.assign(state.queue.get(id) || {}, item));
    else state.queue.delete(id);
    if (state.queueComplete) state.queueMatched = state.queue.size;
    const cap = 2 * CONFIG.queueLimit;
    if (state.queue.size > cap) {
      const kept = sortedQueue().slice(0, cap);
      state.queue = new Map(kept.map(function (c) { return [c.id, c]; }));
      state.queueComplete = false;
    }
    if (!state.queueComplete && had !== state.queue.has(id)) {
      clearTimeout(state.queueTimer);
      state.queueTimer = setTimeout(loadQueue, 3000);
    }
    renderQueue();
  }

  function queueItem(item) {
    const left = remainingMs(item);
    const li = el("li", "gis-q-item list-group-item list-group-item-action" + (left < 0 ? " gis-q-late" : ""));
    li.dataset.caseId = String(item.id);
    li.tabIndex = 0;
    if (state.selected === item.id) li.classList.add("active");
    const head = el("div", "gis-q-head");
    head.appendChild(el("span", "gis-q-no", item.case_no));
    head.appendChild(el("span", "badge gis-status gis-status-" + item.status, t("status." + item.status)));
    if (item.urgency && item.urgency !== "normal") {
      head.appendChild(el("span", "badge gis-urgency gis-urgency-" + item.urgency, t("urgency." + item.urgency)));
    }
    li.appendChild(head);
    const category = G.lang === "en" ? item.category_name_en || item.category_name : item.category_name;
    li.appendChild(el("div", "gis-q-category", category));
    if (item.address) li.appendChild(el("div", "gis-q-address", item.address));
    const foot = el("div", "gis-q-foot");
    foot.appendChild(el("span", "gis-q-routed", t("queue.routed") + ": " + (item.agency_name || "—")));
    const clock = el("span", "gis-q-remaining" + (left < 0 ? " text-danger fw-bold" : ""));
    clock.textContent = left < 0 ? t("queue.overdue_by") + " " + duration(left)
      : t("queue.remaining") + " " + duration(left);
    clock.title = t(item.status === "reported" ? "queue.verify_by" : "queue.dispatch_by");
    foot.appendChild(clock);
    li.appendChild(foot);
    li.addEventListener("click", function () { selectCase(item.id, true); });
    li.addEventListener("keydown", function (event) { if (event.key === "Enter") selectCase(item.id, true); });
    return li;
  }

  function sortedQueue() {
    return Array.from(state.queue.values()).sort(function (a, b) { return remainingMs(a) - remainingMs(b); });
  }

  function renderQueue() {
    const list = document.getElementById("queue-list");
    const items = sortedQueue();
    list.replaceChildren.apply(list, items.map(queueItem));
    document.getElementById("queue-count").textContent = String(Math.max(state.queueMatched, items.length));
    document.getElementById("queue-empty").hidden = items.length > 0;
    const more = document.getElementById("queue-more");
    more.hidden = state.queueMatched <= items.length;
    more.textContent = t("queue.more").replace("{n}", String(items.length));
  }

  setInterval(renderQueue, 30000);

  // -- case details ----------------------------------------------------------------------------------------
  async function loadDetails(id) {
    const [item, history, photos] = await Promise.all([
      G.fetchJSON("/api/v1/cases/" + id),
      G.fetchJSON("/api/v1/cases/" + id + "/events"),
      G.fetchJSON("/command/cases/" + id + "/photos"),
    ]);
    if (state.selected !== id) return;
    state.detail = { case: item, events: history.events, photos: photos.photos };
    renderDetails();
  }

  async function selectCase(id, fly) {
    state.selected = id;
    state.detail = null;
    state.form = null;
    state.draft = {};
    state.message = null;
    document.getElementById("details").hidden = false;
    document.getElementById("queue-panel").hidden = true;
    renderDetails();
    try {
      await loadDetails(id);
      const c = state.detail && state.detail.case;
      if (fly && c && G.map) locate(c);
    } catch (error) {
      state.message = { kind: "danger", text: t("details.failed") + ": " + error.message };
      renderDetails();
    }
  }

  function closeDetails() {
    state.selected = null;
    state.detail = null;
    document.getElementById("details").hidden = true;
    document.getElementById("queue-panel").hidden = false;
    renderQueue();
  }

  document.getElementById("details-close").addEventListener("click", closeDetails);

  function locate(c) {
    G.map.setView([c.lat, c.lon], Math.max(G.map.getZoom(), 17));
    if (casesLayer()) casesLayer().highlight(c.lat, c.lon);
  }

  function row(list, key, value, className) {
    if (value == null || value === "") return;
    list.appendChild(el("dt", null, t(key)));
    list.appendChild(el("dd", className || null, value));
  }

  function agencyLabel(agency) {
    if (!agency) return "—";
    const target = CONFIG.dispatchTargets.find(function (o) { return o.id === agency.id; });
    return target ? (G.lang === "en" ? target.en : target.zh) : agency.name;
  }

  function renderDetails() {
    const body = document.getElementById("details-body");
    body.replaceChildren();
    if (state.selected == null) return;
    if (state.message) body.appendChild(el("div", "alert alert-" + state.message.kind + " py-1 px-2", state.message.text));
    if (!state.detail) {
      if (!state.message) body.appendChild(el("p", "text-muted", t("details.loading")));
      return;
    }
    const c = state.detail.case;
    const head = el("div", "gis-d-head");
    head.appendChild(el("span", "gis-d-no", c.case_no));
    head.appendChild(el("span", "badge gis-status gis-status-" + c.status, t("status." + c.status)));
    if (c.clock && c.clock.overdue) head.appendChild(el("span", "badge bg-danger", t("details.overdue")));
    body.appendChild(head);

    if (c.near_boundary) body.appendChild(el("div", "alert alert-warning py-1 px-2", t("details.near_boundary")));
    if (c.fallback_township) body.appendChild(el("div", "alert alert-warning py-1 px-2", t("details.fallback")));

    const list = el("dl", "gis-d-rows");
    const queued = state.queue.get(c.id);
    const category = G.lang === "en" && queued && queued.category_name_en ? queued.category_name_en : c.category_name;
    row(list, "details.category", c.category + " " + category);
    row(list, "details.urgency", t("urgency." + c.urgency));
    row(list, "details.source", t("source." + c.source));
    row(list, "details.reported_at", G.formatTime(c.reported_at));
    row(list, "details.address", c.address);
    row(list, "details.routed", agencyLabel(c.assigned));
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

    body.appendChild(actionsNode(c));

    body.appendChild(el("h3", "gis-d-section", t("details.photos")));
    body.appendChild(G.photoStrip(state.detail.photos, t));
    body.appendChild(el("h3", "gis-d-section", t("details.timeline")));
    body.appendChild(G.timeline(state.detail.events, t));
  }

  // -- steps: file, dispatch (with override), cancel -----------------------------------------------------------
  function actionsNode(c) {
    const box = el("div", "gis-actions");
    const locateButton = el("button", "btn btn-sm btn-outline-secondary", t("action.locate"));
    locateButton.type = "button";
    locateButton.addEventListener("click", function () { locate(c); });
    box.appendChild(locateButton);
    PANEL_ACTIONS.filter(function (a) { return c.allowed_actions.indexOf(a) >= 0; }).forEach(function (action) {
      const button = el("button", "btn btn-sm " + (action === "cancel" ? "btn-outline-danger" : "btn-primary"),
        t("action." + action));
      button.type = "button";
      button.dataset.action = action;
      button.addEventListener("click", function () {
        if (action === "file") { transition(c, { action: "file" }, t("file.done")); return; }
        state.form = action;
        state.draft = {};
        state.message = null;
        renderDetails();
      });
      box.appendChild(button);
    });
    if (state.form === "dispatch") box.appendChild(dispatchForm(c));
    if (state.form === "cancel") box.appendChild(cancelForm(c));
    return box;
  }

  function dispatchForm(c) {
    const form = el("form", "gis-form gis-dispatch");
    form.appendChild(el("h3", "gis-d-section", t("dispatch.title")));
    const routed = c.assigned ? c.assigned.id : null;
    const label = el("label", "form-label", t("dispatch.target"));
    const select = el("select", "form-select form-select-sm");
    select.name = "target";
    const chosen = state.draft.target != null ? state.draft.target : routed;
    CONFIG.dispatchTargets.forEach(function (target) {
      const option = el("option", null, (G.lang === "en" ? target.en : target.zh) +
        " · " + t("kind." + target.kind) + (target.id === routed ? t("dispatch.routed_mark") : ""));
      option.value = String(target.id);
      option.selected = target.id === chosen;
      select.appendChild(option);
    });
    select.addEventListener("change", function () { state.draft.target = Number(select.value); });
    label.appendChild(select);
    form.appendChild(label);
    const reasonLabel = el("label", "form-label", t("dispatch.reason"));
    const reason = el("textarea", "form-control form-control-sm");
    reason.name = "reason";
    reason.rows = 2;
    reason.maxLength = 2000;
    reason.value = state.draft.reason || "";
    reason.addEventListener("input", function () { state.draft.reason = reason.value; });
    reasonLabel.appendChild(reason);
    form.appendChild(reasonLabel);
    const problem = el("div", "gis-form-problem text-danger small");
    problem.setAttribute("role", "alert");
    form.appendChild(problem);
    const buttons = el("div", "gis-form-buttons");
    const submit = el("button", "btn btn-sm btn-primary", t("dispatch.submit"));
    submit.type = "submit";
    const cancel = el("button", "btn btn-sm btn-link", t("dispatch.cancel"));
    cancel.type = "button";
    cancel.addEventListener("click", function () { state.form = null; renderDetails(); });
    buttons.appendChild(submit);
    buttons.appendChild(cancel);
    form.appendChild(buttons);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      const target = Number(select.value);
      const note = reason.value.trim();
      const body = { action: "dispatch" };
      if (target !== routed) {
        if (!note) {
          problem.textContent = t("dispatch.reason_required");
          reason.focus();
          return;
        }
        body.target_agency_id = target;
      }
      if (note) body.note = note;
      transition(c, body, t("dispatch.done"));
    });
    return form;
  }

  function cancelForm(c) {
    const form = el("form", "gis-form gis-cancel");
    const reasonLabel = el("label", "form-label", t("cancel.reason"));
    const reason = el("textarea", "form-control form-control-sm");
    reason.name = "reason";
    reason.required = true;
    reason.rows = 2;
    reason.maxLength = 2000;
    reason.value = state.draft.reason || "";
    reason.addEventListener("input", function () { state.draft.reason = reason.value; });
    reasonLabel.appendChild(reason);
    form.appendChild(reasonLabel);
    const submit = el("button", "btn btn-sm btn-danger", t("cancel.submit"));
    submit.type = "submit";
    form.appendChild(submit);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (!reason.value.trim()) return;
      transition(c, { action: "cancel", note: reason.value.trim() }, t("status.cancelled"));
    });
    return form;
  }

  async function transition(c, body, done) {
    try {
      const updated = await G.fetchJSON("/api/v1/cases/" + c.id + "/transitions", {
        method: "POST",
        headers: { "Content-Type": "application/json", "If-Match": 'W/"' + c.version + '"', "X-CSRFToken": CSRF },
        body: JSON.stringify(body),
      });
      state.form = null;
      state.draft = {};
      state.message = { kind: "success", text: done + " · " + updated.case_no };
      if (!inQueue(updated)) queueChanged(updated.id, null);
      await loadDetails(c.id);
    } catch (error) {
      if (error.status === 409 || error.status === 412) {
        state.message = { kind: "warning", text: t("error.conflict") };
        state.form = null;
        await loadDetails(c.id).catch(function () { return null; });
      } else {
        state.message = { kind: "danger", text: t("error.generic") + error.message };
      }
      renderDetails();
    }
  }

  // -- live updates --------------------------------------------------------------------------------------
  function showLive(status) {
    const badge = document.getElementById("live");
    badge.dataset.state = status;
    badge.textContent = t("live." + status);
  }

  document.addEventListener("gis:live", function (event) { showLive(event.detail.state); });

  document.addEventListener("gis:case", function (event) {
    const id = event.detail.event.id;
    const feature = event.detail.feature;
    queueChanged(id, feature ? summaryOf(feature) : null);
    if (state.selected === id && state.detail) loadDetails(id).catch(function () { return null; });
  });

  document.addEventListener("gis:resync", function () {
    loadQueue();
    if (state.selected != null) loadDetails(state.selected).catch(function () { return null; });
  });

  document.addEventListener("gis:select", function (event) { selectCase(event.detail.id, false); });

  applyLanguage();
  applyFilter();
})();
