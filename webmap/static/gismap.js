/*
 * Leaflet behaviour of the platform's map elements (webmap/elements.py renders the calls).
 *
 * Safety: every value that comes from data (names, addresses, descriptions) reaches the page through
 * textContent or as a DOM node built here, never as HTML. Leaflet tooltips and popups are given nodes.
 */
(function () {
  "use strict";

  const G = (window.GisMap = window.GisMap || {});
  const SHANGHAI = "Asia/Shanghai";

  G.layers = G.layers || {};
  G.map = G.map || null;
  G.lang = document.documentElement.lang === "en" ? "en" : "zh";

  // -- small helpers ---------------------------------------------------------------------------------------
  G.emit = function (name, detail) {
    document.dispatchEvent(new CustomEvent(name, { detail: detail }));
  };

  G.label = function (pair) {
    if (pair == null) return "";
    if (typeof pair === "string") return pair;
    return pair[G.lang] || pair.zh || "";
  };

  G.el = function (tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = String(text);
    return node;
  };

  // A case's photos as links opening the full image, and its event history as a list: shared by the
  // command centre's details panel and the patrol page's task details. `t` is the page's translator.
  G.photoStrip = function (photos, t) {
    const box = G.el("div", "gis-photos");
    if (!photos.length) box.appendChild(G.el("span", "text-muted", t("details.no_photos")));
    photos.forEach(function (photo) {
      const link = G.el("a", "gis-photo");
      link.href = photo.url;
      link.target = "_blank";
      link.rel = "noopener";
      const img = G.el("img");
      img.src = photo.url;
      img.alt = photo.stage;
      img.loading = "lazy";
      link.appendChild(img);
      box.appendChild(link);
    });
    return box;
  };

  G.timeline = function (events, t) {
    const list = G.el("ol", "gis-timeline");
    events.forEach(function (event) {
      const li = G.el("li", "gis-event");
      li.appendChild(G.el("span", "gis-event-time", G.formatTime(event.at)));
      const label = G.lang === "en" ? t("step." + event.action) : (event.action_zh || t("step." + event.action));
      li.appendChild(G.el("span", "gis-event-action", label));
      if (event.actor_role) li.appendChild(G.el("span", "gis-event-role", t("role." + event.actor_role)));
      if (event.note) li.appendChild(G.el("div", "gis-event-note", event.note));
      list.appendChild(li);
    });
    return list;
  };

  G.formatTime = function (iso) {
    if (!iso) return "";
    const date = new Date(iso);
    if (isNaN(date.getTime())) return String(iso);
    return new Intl.DateTimeFormat(G.lang === "en" ? "en-GB" : "zh-CN", {
      timeZone: SHANGHAI, year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", hour12: false,
    }).format(date);
  };

  G.formatValue = function (value) {
    if (value == null || value === "") return "—";
    if (typeof value === "boolean") return value ? "✓" : "✗";
    if (typeof value === "string" && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/.test(value)) return G.formatTime(value);
    return String(value);
  };

  G.fetchJSON = async function (url, init) {
    const options = Object.assign({ credentials: "same-origin" }, init || {});
    options.headers = Object.assign({ Accept: "application/json" }, (init && init.headers) || {});
    const response = await fetch(url, options);
    if (!response.ok) {
      let body = {};
      try { body = await response.json(); } catch (ignored) { body = {}; }
      const error = new Error(body.detail || body.title || "HTTP " + response.status);
      error.status = response.status;
      error.body = body;
      throw error;
    }
    return response.status === 204 ? null : response.json();
  };

  G.register = function (key, layer, map) {
    G.layers[key] = layer;
    if (map && !G.map) G.map = map;
    G.emit("gis:layer", { key: key });
  };

  G.setLang = function (lang) {
    G.lang = lang === "en" ? "en" : "zh";
    document.documentElement.lang = G.lang === "en" ? "en" : "zh-CN";
    G.emit("gis:lang", { lang: G.lang });
  };

  // Fit the view at once: an animated fit would let the layers added next load at the initial zoom first.
  G.fitBounds = function (map, bounds) {
    map.fitBounds(bounds, { animate: false });
  };

  G.pane = function (map, name, zIndex) {
    if (!map.getPane(name)) map.createPane(name).style.zIndex = String(zIndex);
    return name;
  };

  // The registry's style (api: GET /api/v1/layers -> style) for one feature; mirrors layers.base.Style.
  G.styleFor = function (spec, props) {
    const out = Object.assign({}, spec.options);
    const own = spec.color_property ? props[spec.color_property] : null;
    if (own) { out.color = own; out.fillColor = own; }
    Object.keys(spec.by_property || {}).forEach(function (prop) {
      const rule = spec.by_property[prop][String(props[prop])]; // booleans match "true" / "false"
      if (rule) Object.assign(out, rule);
    });
    return out;
  };

  // A popup's content as a DOM node: a title and label/value rows, all text.
  G.infoNode = function (title, fields, props) {
    const box = G.el("div", "gis-info");
    if (title) box.appendChild(G.el("strong", "gis-info-title", title));
    const list = G.el("dl", "gis-info-rows");
    (fields || []).forEach(function (field) {
      const value = props[field.property];
      if (value == null || value === "") return;
      list.appendChild(G.el("dt", null, G.label(field)));
      list.appendChild(G.el("dd", null, G.formatValue(value)));
    });
    box.appendChild(list);
    return box;
  };

  G.viewBox = function (bounds) {
    return [bounds.getWest(), bounds.getSouth(), bounds.getEast(), bounds.getNorth()]
      .map(function (v) { return v.toFixed(5); }).join(",");
  };

  // -- a registry layer from the features API ------------------------------------------------------------
  G.ApiGeoJson = L.GeoJSON.extend({
    initialize: function (options) {
      const self = this;
      L.GeoJSON.prototype.initialize.call(this, null, {
        pane: options.pane,
        style: function (feature) { return G.styleFor(options.style, feature.properties || {}); },
        pointToLayer: function (feature, latlng) {
          return L.circleMarker(latlng, Object.assign({ pane: options.pane },
            G.styleFor(options.style, feature.properties || {})));
        },
        onEachFeature: function (feature, layer) { self._decorate(feature, layer); },
      });
      this.spec = options;
      this.matched = 0;
      this._fetched = null; // the box (and zoom) of the last complete answer
    },

    onAdd: function (map) {
      G.pane(map, this.spec.pane, this.spec.paneZ);
      L.GeoJSON.prototype.onAdd.call(this, map);
      map.on("moveend", this.refresh, this);
      this.refresh();
    },

    onRemove: function (map) {
      map.off("moveend", this.refresh, this);
      if (this._abort) this._abort.abort();
      this._fetched = null;
      L.GeoJSON.prototype.onRemove.call(this, map);
    },

    _decorate: function (feature, layer) {
      const spec = this.spec;
      const props = feature.properties || {};
      if (spec.labelProperty && props[spec.labelProperty]) {
        layer.bindTooltip(G.el("span", null, props[spec.labelProperty]),
          { permanent: true, direction: "center", className: "gis-label", interactive: false });
      }
      layer.bindPopup(function () {
        const title = (spec.titleProperty && props[spec.titleProperty]) || G.label(spec.title);
        return G.infoNode(title, spec.fields, props);
      });
    },

    refresh: function (force) {
      const map = this._map;
      if (!map) return;
      const spec = this.spec;
      if (map.getZoom() < spec.minZoom) {
        if (this._abort) this._abort.abort();
        this.clearLayers();
        this._fetched = null;
        return;
      }
      const view = map.getBounds();
      if (force !== true && this._fetched && (!spec.byView || this._fetched.contains(view))) return;
      const params = new URLSearchParams(spec.params || {});
      params.set("limit", String(spec.limit));
      const box = view.pad(0.25);
      if (spec.byView) params.set("bbox", G.viewBox(box));
      const url = spec.url + "?" + params.toString();
      if (force !== true && this._pending === url) return; // the same answer is on its way
      if (this._abort) this._abort.abort();
      const control = (this._abort = new AbortController());
      this._pending = url;
      const self = this;
      G.fetchJSON(url, { signal: control.signal }).then(function (collection) {
        if (control !== self._abort) return;
        self._pending = null;
        self.clearLayers();
        self.addData(collection);
        self.matched = collection.numberMatched;
        // A truncated answer is refetched at the next move; a complete one covers its box.
        self._fetched = collection.numberMatched <= collection.numberReturned
          ? (spec.byView ? box : L.latLngBounds([-90, -180], [90, 180])) : null;
        self.fire("gis:loaded", { matched: collection.numberMatched, returned: collection.numberReturned });
      }).catch(function (error) {
        if (control === self._abort) self._pending = null;
        if (error.name !== "AbortError") console.warn("layer", spec.url, error.message);
      });
    },
  });

  G.apiGeoJson = function (options) { return new G.ApiGeoJson(options); };

  // -- live cases: points when few, vector tiles otherwise ------------------------------------------------
  // Leaflet 1.9 removed L.DomEvent.fakeStop, which VectorGrid 1.3 still calls on canvas clicks.
  if (L.DomEvent && !L.DomEvent.fakeStop) L.DomEvent.fakeStop = function () { return this; };

  const TILE_PARAMS = { statuses: "status", categories: "category", themes: "theme", squads: "squad" };

  G.caseMatches = function (filter, props) {
    if (filter.statuses && filter.statuses.length && filter.statuses.indexOf(props.status) < 0) return false;
    if (filter.categories && filter.categories.length && filter.categories.indexOf(props.category_code) < 0) {
      return false;
    }
    if (filter.squads && filter.squads.length && filter.squads.indexOf(props.agency_code) < 0) return false;
    const reported = props.reported_at ? new Date(props.reported_at).getTime() : null;
    if (filter.since && (reported == null || reported < new Date(filter.since).getTime())) return false;
    if (filter.until && (reported == null || reported >= new Date(filter.until).getTime())) return false;
    return true;
  };

  G.LiveCases = L.Layer.extend({
    initialize: function (options) {
      this.spec = options;
      this.filter = { statuses: options.statuses.slice() };
      this.mode = null; // "markers" or "tiles"
      this.matched = null;
      this._markers = L.featureGroup();
      this._byId = new Map();
      this._tiles = null;
      this._version = 0;
      this._onCase = this._onCase.bind(this);
      this._onResync = this._onResync.bind(this);
    },

    onAdd: function (map) {
      G.pane(map, this.spec.pane, this.spec.paneZ);
      G.pane(map, "highlight", this.spec.paneZ + 10);
      this._markers.addTo(map);
      map.on("moveend", this.refresh, this);
      document.addEventListener("gis:case", this._onCase);
      document.addEventListener("gis:resync", this._onResync);
      this.refresh();
    },

    onRemove: function (map) {
      map.off("moveend", this.refresh, this);
      document.removeEventListener("gis:case", this._onCase);
      document.removeEventListener("gis:resync", this._onResync);
      if (this._abort) this._abort.abort();
      this._clearMarkers();
      map.removeLayer(this._markers);
      if (this._tiles) map.removeLayer(this._tiles);
      this._tiles = null;
      this.mode = null;
    },

    setFilter: function (filter) {
      const next = Object.assign({ statuses: this.spec.statuses.slice() }, filter);
      if (JSON.stringify(next) === JSON.stringify(this.filter)) return;
      this.filter = next;
      this.refresh();
    },

    markerCount: function () { return this._byId.size; },

    _itemParams: function () {
      const f = this.filter;
      const params = new URLSearchParams();
      if (f.statuses && f.statuses.length) params.set("status", f.statuses.join(","));
      if (f.categories && f.categories.length) params.set("category", f.categories.join(","));
      if (f.squads && f.squads.length) params.set("squad", f.squads.join(","));
      if (f.since || f.until) params.set("datetime", (f.since || "..") + "/" + (f.until || ".."));
      return params;
    },

    _tileParams: function () {
      const f = this.filter;
      const params = new URLSearchParams();
      Object.keys(TILE_PARAMS).forEach(function (key) {
        if (f[key] && f[key].length) params.set(TILE_PARAMS[key], f[key].join(","));
      });
      if (f.since) params.set("since", f.since);
      if (f.until) params.set("until", f.until);
      params.set("v", String(this._version)); // a new version after changes: the browser must not reuse tiles
      return params;
    },

    refresh: function () {
      const map = this._map;
      if (!map) return;
      // At county zooms the server's aggregates are cheap whatever the number of cases (and filter by
      // everything the points do). Zoomed in, the cases in view are counted first (limit=1) unless the view
      // lies inside a box already known to fit: the points are downloaded only when they fit under the cap.
      if (map.getZoom() < this.spec.detailZoom) { this._showTiles(); return; }
      if (this._abort) this._abort.abort();
      const control = (this._abort = new AbortController());
      const box = map.getBounds().pad(0.1);
      const params = this._itemParams();
      const filterKey = params.toString();
      params.set("bbox", G.viewBox(box));
      const url = this.spec.itemsUrl + "?";
      const self = this;
      const fits = this._fits && this._fits.key === filterKey && this._fits.box.contains(box);
      const counted = fits ? Promise.resolve(null) : G.fetchJSON(url + params.toString() + "&limit=1",
        { signal: control.signal });
      counted.then(function (head) {
        if (control !== self._abort) return null;
        if (head && head.numberMatched > self.spec.maxMarkers) {
          self.matched = head.numberMatched;
          self._showTiles();
          return null;
        }
        params.set("limit", String(self.spec.maxMarkers));
        return G.fetchJSON(url + params.toString(), { signal: control.signal }).then(function (fc) {
          if (control !== self._abort) return;
          self.matched = fc.numberMatched;
          self._fits = fc.numberMatched <= fc.numberReturned ? { key: filterKey, box: box } : null;
          if (self._fits) self._showMarkers(fc.features, box);
          else self._showTiles();
        });
      }).catch(function (error) {
        if (error.name !== "AbortError") console.warn("cases", error.message);
      });
    },

    _clearMarkers: function () {
      this._markers.clearLayers();
      this._byId.clear();
    },

    _showMarkers: function (features, box) {
      if (this._tiles) { this._map.removeLayer(this._tiles); this._tiles = null; }
      this.mode = "markers";
      this._box = box;
      const keep = new Set(features.map(function (feature) { return feature.id; }));
      const self = this;
      // Drop first: the markers kept and added never exceed the cap on the way.
      Array.from(this._byId.keys()).forEach(function (id) { if (!keep.has(id)) self._drop(id); });
      features.forEach(function (feature) { self._upsert(feature); });
      this.fire("gis:mode", { mode: this.mode, markers: this._byId.size });
    },

    _marker: function (feature) {
      const props = feature.properties || {};
      const coords = feature.geometry.coordinates;
      const style = G.styleFor(this.spec.style, props);
      const marker = L.circleMarker([coords[1], coords[0]], Object.assign(style, {
        pane: this.spec.pane,
        className: "gis-case gis-status-" + props.status + (props.overdue ? " gis-overdue" : ""),
      }));
      marker.feature = feature;
      const spec = this.spec;
      marker.bindTooltip(function () {
        return G.el("span", null, (props.case_no || "") + " " + (props.category_name || ""));
      }, { direction: "top" });
      marker.bindPopup(function () { return G.infoNode(props.case_no, spec.fields, props); });
      marker.on("click", function () { G.emit("gis:select", { id: feature.id }); });
      return marker;
    },

    _upsert: function (feature) {
      const old = this._byId.get(feature.id);
      if (old) {
        const same = old.feature.properties;
        const props = feature.properties;
        if (same.status === props.status && same.overdue === props.overdue && same.urgency === props.urgency &&
            String(old.feature.geometry.coordinates) === String(feature.geometry.coordinates)) return;
        this._drop(feature.id);
      }
      if (this._byId.size >= this.spec.maxMarkers) { this.refresh(); return; }
      const marker = this._marker(feature);
      this._byId.set(feature.id, marker);
      this._markers.addLayer(marker);
    },

    _drop: function (id) {
      const marker = this._byId.get(id);
      if (!marker) return;
      this._markers.removeLayer(marker);
      this._byId.delete(id);
    },

    _tileStyle: function (props) {
      if (props.cluster) {
        const count = props.count || 1;
        return {
          // Capped: a canvas tile clips what crosses its edge, and big circles show the cut.
          radius: Math.min(5 + 4 * Math.log10(count + 1), 18), fill: true, fillColor: "#4a90d9",
          fillOpacity: 0.6, color: props.overdue ? "#d7191c" : "#1d4e89", weight: props.overdue ? 3 : 1,
        };
      }
      return Object.assign({ fill: true }, G.styleFor(this.spec.style, props));
    },

    _showTiles: function () {
      const map = this._map;
      this._clearMarkers();
      this.mode = "tiles";
      const url = this.spec.tilesUrl + "?" + this._tileParams().toString();
      if (this._tiles && this._tilesUrl === url) return;
      if (this._tiles) map.removeLayer(this._tiles);
      const self = this;
      this._tilesUrl = url;
      this._tiles = L.vectorGrid.protobuf(url, {
        pane: this.spec.pane,
        rendererFactory: L.canvas.tile,
        interactive: true,
        maxNativeZoom: 22,
        fetchOptions: { credentials: "same-origin" },
        getFeatureId: function (feature) { return feature.properties.cluster ? undefined : feature.properties.id; },
        vectorTileLayerStyles: { cases: function (props) { return self._tileStyle(props); } },
      });
      this._tiles.on("click", function (event) {
        const props = (event.layer && event.layer.properties) || {};
        if (props.cluster) map.setView(event.latlng, Math.min(map.getZoom() + 2, map.getMaxZoom()));
        else if (props.id) G.emit("gis:select", { id: props.id });
      });
      this._tiles.addTo(map);
      this.fire("gis:mode", { mode: this.mode, markers: 0 });
    },

    _onCase: function (event) {
      const feature = event.detail.feature;
      const id = event.detail.event.id;
      if (this.mode === "markers") {
        const inView = feature && this._box && this._box.contains(
          L.latLng(feature.geometry.coordinates[1], feature.geometry.coordinates[0]));
        if (feature && inView && G.caseMatches(this.filter, feature.properties)) this._upsert(feature);
        else this._drop(id);
      } else if (this.mode === "tiles") {
        // Batch a burst of changes into one redraw of the aggregates.
        const self = this;
        clearTimeout(this._tileTimer);
        this._tileTimer = setTimeout(function () { self._version += 1; self._showTiles(); }, 2000);
      }
    },

    _onResync: function (event) {
      if (this.mode === "tiles" && event.detail && event.detail.reason === "ready") return;
      if (this.mode === "tiles") this._version += 1;
      this.refresh();
    },

    highlight: function (lat, lon) {
      const map = this._map;
      if (!map) return;
      if (this._ring) map.removeLayer(this._ring);
      this._ring = L.circleMarker([lat, lon], {
        pane: "highlight", radius: 16, color: "#ffcc00", weight: 4, fill: false, interactive: false,
        className: "gis-highlight",
      }).addTo(map);
    },
  });

  G.liveCases = function (options) { return new G.LiveCases(options); };

  // -- the event stream --------------------------------------------------------------------------------------
  // One EventSource per page. Case events are completed with the case's feature (what this user may see)
  // and re-announced as "gis:case"; "gis:resync" asks everything to reload; "gis:live" reports the state.
  G.connectEvents = function (options) {
    if (G._events) return G._events;
    const state = { source: null, retry: 5000, pending: new Map() };
    G._events = state;
    const live = function (status) { G.liveState = status; G.emit("gis:live", { state: status }); };

    const announce = function (payload) {
      // Several events for one case in a burst: fetch it once, after the last.
      clearTimeout(state.pending.get(payload.id));
      state.pending.set(payload.id, setTimeout(function () {
        state.pending.delete(payload.id);
        G.fetchJSON(options.itemsUrl + "/" + encodeURIComponent(payload.id)).then(function (feature) {
          G.emit("gis:case", { event: payload, feature: feature });
        }).catch(function (error) {
          // 404: the case is no longer visible to this user (or its status hides it).
          G.emit("gis:case", { event: payload, feature: null, error: error.status || true });
        });
      }, 150));
    };

    const open = function () {
      const source = (state.source = new EventSource(options.eventsUrl));
      live("connecting");
      source.addEventListener("ready", function () {
        state.retry = 5000;
        live("live");
        G.emit("gis:resync", { reason: "ready" });
      });
      source.addEventListener("case", function (message) {
        try { announce(JSON.parse(message.data)); } catch (error) { console.warn("event", error); }
      });
      source.addEventListener("resync", function () { G.emit("gis:resync", { reason: "resync" }); });
      source.addEventListener("close", function () { source.close(); live("reconnecting"); setTimeout(open, 1000); });
      source.onerror = function () {
        if (source.readyState === EventSource.CLOSED) {
          // The server refused (busy or signed out): try again later, more slowly each time.
          live("offline");
          setTimeout(open, state.retry);
          state.retry = Math.min(state.retry * 2, 60000);
        } else {
          live("reconnecting");
        }
      };
    };
    open();
    return state;
  };

  // -- the legend -------------------------------------------------------------------------------------------
  G.legend = function (map, options) {
    const control = L.control({ position: options.position });
    let collapsed = false;
    const render = function (box) {
      box.replaceChildren();
      const toggle = G.el("button", "gis-legend-toggle", G.label(options.title) + (collapsed ? " ▸" : " ▾"));
      toggle.type = "button";
      toggle.setAttribute("aria-expanded", String(!collapsed));
      toggle.addEventListener("click", function () { collapsed = !collapsed; render(box); });
      box.appendChild(toggle);
      if (collapsed) return;
      options.sections.forEach(function (section) {
        box.appendChild(G.el("div", "gis-legend-title", G.label(section.title)));
        section.entries.forEach(function (entry) {
          const row = G.el("div", "gis-legend-row");
          const swatch = G.el("span", "gis-swatch gis-swatch-" + section.geometry);
          const s = entry.style || {};
          swatch.style.borderColor = s.color || "#3388ff";
          swatch.style.borderWidth = Math.max(1, Math.min(s.weight || 1, 4)) + "px";
          if (s.fillOpacity !== 0) {
            swatch.style.backgroundColor = s.fillColor || s.color || "transparent";
            swatch.style.opacity = section.geometry === "area" ? "0.75" : "1";
          }
          row.appendChild(swatch);
          row.appendChild(G.el("span", null, G.label(entry.label)));
          box.appendChild(row);
        });
      });
    };
    control.onAdd = function () {
      const box = L.DomUtil.create("div", "gis-legend leaflet-control");
      L.DomEvent.disableClickPropagation(box);
      L.DomEvent.disableScrollPropagation(box);
      render(box);
      document.addEventListener("gis:lang", function () { render(box); });
      return box;
    };
    control.addTo(map);
    G.layers.legend = control;
    return control;
  };
})();
