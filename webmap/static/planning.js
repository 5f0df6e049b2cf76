/*
 * The planning page: the heat map, cases per grid cell, the hot-spot layers of the analytics API, the
 * month slider and category filter, indicator charts per squad and per township, exports (map and chart
 * PNG, CSV) and the weekly briefing picker.
 *
 * Loaded after the map's own scripts (Leaflet, gismap.js, Leaflet.heat) and before the map is built: the
 * Folium elements of webmap/planning.py call GisPlanning.heatLayer / cellCountsLayer / analyticsLayer.
 * The page itself starts once the document is parsed.
 *
 * Every value from data is placed with textContent or as a DOM property, never as HTML; no inline
 * handlers, no eval (the page runs under a strict Content-Security-Policy).
 */
(function () {
  "use strict";

  const P = (window.GisPlanning = window.GisPlanning || {});
  const G = window.GisMap;
  const DEBOUNCE_MS = 200;
  const PLAY_MS = 1500;
  const HOT_COLOURS = { "-3": "#2166ac", "-2": "#67a9cf", "-1": "#d1e5f0", 0: null, 1: "#fddbc7", 2: "#ef8a62",
    3: "#b2182b" };
  const CHART_SERIES = [
    { key: "due", type: "bar", axis: "y", color: "#4a90d9" },
    { key: "closed", type: "bar", axis: "y", color: "#1a9641" },
    { key: "closure_rate", type: "line", axis: "y1", color: "#d7191c", rate: true },
    { key: "on_time_handling_rate", type: "line", axis: "y1", color: "#7b3294", rate: true },
  ];

  P.state = {
    filter: null, // {start, end, category}: months YYYY-MM, inclusive
    layers: {}, // data layers by key, each with reload(filter)
    loaded: {}, // what each part last showed: {key: filterKey}
    cells: null, // the last counts per cell (GeoJSON with totals and classes)
    heat: null, // the last heat-map answer
    indicators: {}, // the last indicator answers by grouping
    charts: {}, // Chart.js charts by grouping
    analytics: {}, // state of the analytics layers by key: {status, legend, message}
  };

  let MESSAGES = null;
  let CONFIG = null;

  function config() {
    if (!CONFIG) CONFIG = JSON.parse(document.getElementById("gis-config").textContent);
    return CONFIG;
  }

  function t(key, vars) {
    if (!MESSAGES) MESSAGES = JSON.parse(document.getElementById("gis-messages").textContent);
    let text = (MESSAGES[G.lang] && MESSAGES[G.lang][key]) || MESSAGES.zh[key] || key;
    Object.keys(vars || {}).forEach(function (name) { text = text.split("{" + name + "}").join(String(vars[name])); });
    return text;
  }

  P.t = t;

  // -- months and filters ------------------------------------------------------------------------------------
  function nextMonth(month) {
    const year = Number(month.slice(0, 4));
    const number = Number(month.slice(5, 7));
    return number === 12 ? (year + 1) + "-01" : year + "-" + String(number + 1).padStart(2, "0");
  }

  // The window's instants in Asia/Shanghai, for the APIs that take ISO 8601 date-times.
  function period(filter) {
    return { start: filter.start + "-01T00:00:00+08:00", end: nextMonth(filter.end) + "-01T00:00:00+08:00" };
  }

  function monthLabel(month) {
    const year = Number(month.slice(0, 4));
    const number = Number(month.slice(5, 7));
    if (G.lang === "en") {
      return new Intl.DateTimeFormat("en-GB", { month: "short", year: "numeric", timeZone: "UTC" })
        .format(new Date(Date.UTC(year, number - 1, 1)));
    }
    return year + "年" + number + "月";
  }

  function periodLabel(filter) {
    return filter.start === filter.end ? monthLabel(filter.start)
      : monthLabel(filter.start) + " – " + monthLabel(filter.end);
  }

  function filterKey(filter) { return [filter.start, filter.end, filter.category || ""].join("|"); }

  function monthParams(filter) {
    const params = new URLSearchParams({ start: filter.start, end: filter.end });
    if (filter.category) params.set("category", filter.category);
    return params;
  }

  // -- a data layer's loading: one request at a time, the last filter wins -------------------------------------
  function loader(name, url, paramsOf, show) {
    let control = null;
    return function (filter) {
      if (!url) return Promise.resolve(null);
      if (control) control.abort();
      const mine = (control = new AbortController());
      const key = filterKey(filter);
      return G.fetchJSON(url + "?" + paramsOf(filter).toString(), { signal: mine.signal }).then(function (data) {
        if (mine !== control) return null;
        show(data, filter);
        P.state.loaded[name] = key;
        G.emit("gis:planning", { part: name, key: key });
        return data;
      }).catch(function (error) {
        if (error.name === "AbortError") return null;
        P.state.loaded[name] = "error:" + key;
        G.emit("gis:planning", { part: name, key: key, error: error.message });
        throw error;
      });
    };
  }

  // A layer put on the map (at start, or ticked in the layer control) loads unless it shows the filter already.
  function whenAdded(layer, map, key) {
    P.state.layers[key] = layer;
    const filter = P.state.filter;
    if (filter && layer.reload && P.state.loaded[key] !== filterKey(filter)) layer.reload(filter).catch(report);
  }

  // -- the heat map -----------------------------------------------------------------------------------------
  P.heatLayer = function (options) {
    const Heat = L.HeatLayer.extend({
      onAdd: function (map) {
        G.pane(map, options.pane, options.paneZ);
        L.HeatLayer.prototype.onAdd.call(this, map);
        whenAdded(this, map, options.key);
      },
    });
    const layer = new Heat([], {
      pane: options.pane, radius: options.radius, blur: options.blur, minOpacity: options.minOpacity,
      gradient: options.gradient,
    });
    layer.spec = options;
    // Weighted points [lat, lon, cases]. This build of Leaflet.heat scales the colours to the busiest spot in
    // view, so the map reads "where, relatively"; the counts per cell give the numbers.
    layer.reload = loader(options.key, options.url, monthParams, function (data) {
      P.state.heat = data;
      layer.setLatLngs(data.points);
    });
    return layer;
  };

  // -- cases per grid cell ----------------------------------------------------------------------------------
  P.cellCountsLayer = function (options) {
    const Cells = L.GeoJSON.extend({
      onAdd: function (map) {
        G.pane(map, options.pane, options.paneZ);
        L.GeoJSON.prototype.onAdd.call(this, map);
        whenAdded(this, map, options.key);
      },
    });
    const layer = new Cells(null, {
      pane: options.pane,
      style: function (feature) {
        const classes = (P.state.cells && P.state.cells.classes) || [];
        const entry = classes[feature.properties["class"]];
        return { color: "#3f007d", weight: 0.5, opacity: 0.6, fillColor: entry ? entry.color : "#cccccc",
          fillOpacity: 0.6 };
      },
      onEachFeature: function (feature, shape) {
        const props = feature.properties || {};
        shape.bindPopup(function () {
          const shown = Object.assign({}, props, {
            township: G.lang === "en" ? props.township_en || props.township : props.township,
            squad: G.lang === "en" ? props.squad_en || props.squad : props.squad,
          });
          return G.infoNode(props.code, options.fields, shown);
        });
      },
    });
    layer.spec = options;
    layer.reload = loader(options.key, options.url, monthParams, function (data, filter) {
      P.state.cells = data;
      layer.clearLayers();
      layer.addData(data);
      showSummary(data, filter);
      renderLegend();
    });
    return layer;
  };

  // -- hot spots and emerging hot spots (the analytics API) ---------------------------------------------------
  function analyticsStyle(options, props) {
    const value = props[options.property];
    if (options.quiet.some(function (q) { return String(q) === String(value); })) {
      return { stroke: false, fill: false }; // not significant, no pattern: the layers under it stay readable
    }
    const legend = (P.state.analytics[options.key] || {}).legend || [];
    const entry = legend.find(function (e) { return String(e.value) === String(value); });
    const colour = (entry && entry.color) || HOT_COLOURS[value];
    if (!colour) return { stroke: false, fill: false };
    return { color: "#555555", weight: 0.4, fillColor: colour, fillOpacity: 0.75 };
  }

  // The legend of an answer for one property, as [{value, color, label: {zh, en}}]: the API sends a list, or
  // lists by property name (gi_bin, moran_quadrant).
  function analyticsLegend(data, property) {
    let raw = data.legend || (data.metadata && data.metadata.legend) || [];
    if (!Array.isArray(raw)) raw = raw[property] || raw.entries || [];
    return raw.map(function (e) {
      return {
        value: e.value != null ? e.value : e.key,
        color: e.color || e.colour || (e.style && (e.style.fillColor || e.style.color)),
        label: e.label && typeof e.label === "object" ? e.label
          : { zh: e.label_zh || e.label || String(e.value), en: e.label_en || e.label || String(e.value) },
      };
    });
  }

  // The window an analytics layer asks for: the filter's, or the months up to its last one (at most the
  // slider's first month) when the layer studies a trend.
  function analyticsWindow(options, filter) {
    if (!options.trailingMonths) return filter;
    const months = config().months;
    const last = months.indexOf(filter.end);
    const first = Math.max(0, last - options.trailingMonths + 1);
    return { start: months[first] || filter.start, end: filter.end, category: filter.category };
  }

  P.analyticsLayer = function (options) {
    const Analytics = L.GeoJSON.extend({
      onAdd: function (map) {
        G.pane(map, options.pane, options.paneZ);
        L.GeoJSON.prototype.onAdd.call(this, map);
        whenAdded(this, map, options.key);
        renderLegend();
      },
      onRemove: function (map) {
        L.GeoJSON.prototype.onRemove.call(this, map);
        renderLegend();
      },
    });
    const layer = new Analytics(null, {
      pane: options.pane,
      style: function (feature) { return analyticsStyle(options, feature.properties || {}); },
      onEachFeature: function (feature, shape) {
        const props = feature.properties || {};
        shape.bindPopup(function () {
          const value = props[options.property];
          const entry = ((P.state.analytics[options.key] || {}).legend || []).find(function (e) {
            return String(e.value) === String(value);
          });
          return G.infoNode(entry ? G.label(entry.label) : G.label(options.title), options.fields, props);
        });
      },
    });
    layer.spec = options;
    P.state.analytics[options.key] = { status: options.url ? "idle" : "unavailable", legend: [] };
    const load = loader(options.key, options.url, function (filter) {
      const params = new URLSearchParams(period(analyticsWindow(options, filter)));
      if (filter.category) params.set("category", filter.category);
      Object.keys(options.params).forEach(function (name) { params.set(name, options.params[name]); });
      return params;
    }, function (data) {
      // The legend lists what the answer holds (the emerging categories are seventeen).
      const present = new Set((data.features || []).map(function (f) {
        return String((f.properties || {})[options.property]);
      }));
      const legend = analyticsLegend(data, options.property);
      P.state.analytics[options.key] = { status: "ready", summary: data.summary || null, legend: legend,
        shown: legend.filter(function (e) { return present.has(String(e.value)); }) };
      layer.clearLayers();
      layer.addData(data);
      renderLegend();
    });
    layer.reload = function (filter) {
      if (!options.url) { analyticsNote(); return Promise.resolve(null); }
      P.state.analytics[options.key] = Object.assign({}, P.state.analytics[options.key], { status: "loading" });
      analyticsNote();
      renderLegend();
      return load(filter).catch(function (error) {
        P.state.analytics[options.key] = { status: "failed", legend: [], message: error.message };
        layer.clearLayers();
        renderLegend();
      }).then(analyticsNote);
    };
    return layer;
  };

  function analyticsNote() {
    const note = document.getElementById("analytics-note");
    if (!note || !G.map) return;
    const shown = Object.keys(P.state.analytics).filter(function (key) {
      return P.state.layers[key] && G.map.hasLayer(P.state.layers[key]);
    }).map(function (key) { return P.state.analytics[key]; });
    let text = "";
    if (shown.some(function (s) { return s.status === "unavailable"; })) text = t("planning.analytics_unavailable");
    else if (shown.some(function (s) { return s.status === "loading"; })) text = t("planning.analytics_loading");
    else {
      const failed = shown.find(function (s) { return s.status === "failed"; });
      if (failed) text = t("planning.failed") + failed.message;
    }
    note.textContent = text;
    note.hidden = !text;
  }

  // -- the legend ------------------------------------------------------------------------------------------
  function legendRow(box, colour, text) {
    const row = G.el("div", "gis-legend-row");
    const swatch = G.el("span", "gis-swatch gis-swatch-area");
    swatch.style.backgroundColor = colour;
    swatch.style.borderColor = "#3f007d";
    swatch.style.borderWidth = "1px";
    row.appendChild(swatch);
    row.appendChild(G.el("span", null, text));
    box.appendChild(row);
  }

  function renderLegend() {
    const box = P.legendBox;
    if (!box || !G.map) return;
    box.replaceChildren();
    const layers = P.state.layers;
    if (layers.heat && G.map.hasLayer(layers.heat)) {
      box.appendChild(G.el("div", "gis-legend-title", t("legend.heat")));
      const ramp = G.el("div", "gis-heat-ramp");
      const stops = Object.keys(layers.heat.spec.gradient).sort(function (a, b) { return a - b; });
      ramp.style.backgroundImage = "linear-gradient(to right, " + stops.map(function (stop) {
        return layers.heat.spec.gradient[stop] + " " + Math.round(stop * 100) + "%";
      }).join(", ") + ")";
      box.appendChild(ramp);
      const ends = G.el("div", "gis-heat-ends");
      ends.appendChild(G.el("span", null, t("legend.few")));
      ends.appendChild(G.el("span", null, t("legend.many")));
      box.appendChild(ends);
    }
    if (layers.cells && G.map.hasLayer(layers.cells)) {
      box.appendChild(G.el("div", "gis-legend-title", t("legend.cells")));
      const classes = (P.state.cells && P.state.cells.classes) || [];
      if (!classes.length) box.appendChild(G.el("div", "gis-legend-row", t("legend.none")));
      classes.forEach(function (entry) {
        legendRow(box, entry.color, entry.min === entry.max ? t("legend.case", entry) : t("legend.cases", entry));
      });
    }
    ["hotspots", "emerging"].forEach(function (key) {
      const layer = layers[key];
      const state = P.state.analytics[key];
      if (!layer || !G.map.hasLayer(layer) || !state) return;
      box.appendChild(G.el("div", "gis-legend-title", G.label(layer.spec.title)));
      if (state.status !== "ready") {
        const text = { loading: t("planning.analytics_loading"), failed: t("planning.failed") + (state.message || ""),
          idle: t("planning.loading") }[state.status] || t("planning.analytics_unavailable");
        box.appendChild(G.el("div", "gis-legend-row", text));
        return;
      }
      if (!state.shown.length) box.appendChild(G.el("div", "gis-legend-row", t("legend.none_significant")));
      state.shown.forEach(function (entry) {
        const quiet = layer.spec.quiet.some(function (q) { return String(q) === String(entry.value); });
        if (entry.color) legendRow(box, quiet ? "transparent" : entry.color, G.label(entry.label));
      });
    });
  }

  function addLegend(map) {
    const control = L.control({ position: "bottomright" });
    control.onAdd = function () {
      const box = L.DomUtil.create("div", "gis-legend leaflet-control gis-planning-legend");
      L.DomEvent.disableClickPropagation(box);
      L.DomEvent.disableScrollPropagation(box);
      P.legendBox = box;
      return box;
    };
    control.addTo(map);
    map.on("overlayadd overlayremove", function () { renderLegend(); analyticsNote(); });
    renderLegend();
  }

  // -- summary ---------------------------------------------------------------------------------------------
  function showSummary(data, filter) {
    const node = document.getElementById("summary");
    if (!node) return;
    let text = t("planning.summary", { period: periodLabel(filter), n: data.total.toLocaleString(),
      cells: data.features.length.toLocaleString() });
    if (data.outside) text += t("planning.outside", { n: data.outside.toLocaleString() });
    node.textContent = text;
    node.removeAttribute("data-i18n");
  }

  function report(error) {
    const node = document.getElementById("summary");
    if (node && error) node.textContent = t("planning.failed") + (error.message || error);
  }

  // -- charts ----------------------------------------------------------------------------------------------
  // Chart PNGs get a white background (a canvas is transparent by default).
  const WHITE_BACKGROUND = {
    id: "gisWhiteBackground",
    beforeDraw: function (chart) {
      const ctx = chart.ctx;
      ctx.save();
      ctx.globalCompositeOperation = "destination-over";
      ctx.fillStyle = "#ffffff";
      ctx.fillRect(0, 0, chart.width, chart.height);
      ctx.restore();
    },
  };

  function groupLabel(grouping, row) {
    const names = config().names[grouping] || {};
    const pair = row.key != null ? names[row.key] : null;
    if (pair) return G.lang === "en" ? pair.en || pair.zh : pair.zh;
    if (G.lang === "en") return row.label_en || (row.key == null ? "Unspecified" : row.label);
    return row.label;
  }

  // "+3 (+25.0%)": a row's change on the same period a year earlier, for one indicator.
  function yoyText(row, key, rate) {
    const change = row.year_on_year && row.year_on_year[key];
    if (!change || change.change == null) return null;
    if (!change.base) return t("planning.yoy_none");
    const sign = change.change > 0 ? "+" : "";
    const amount = rate ? (change.change * 100).toFixed(1) + " pp" : String(change.change);
    const pct = change.change_pct == null ? "" : " (" + (change.change_pct > 0 ? "+" : "") +
      change.change_pct.toFixed(1) + "%)";
    return sign + amount + (rate ? "" : pct);
  }

  function columnLabel(data, key) {
    const column = (data.columns || []).find(function (c) { return c.key === key; });
    if (!column) return key;
    return G.lang === "en" ? column.label_en : column.label_zh;
  }

  function chartRows(data) {
    return (data.rows || []).filter(function (row) { return row.group_by != null; })
      .sort(function (a, b) { return b.due - a.due || String(a.key).localeCompare(String(b.key)); });
  }

  function drawChart(grouping) {
    const data = P.state.indicators[grouping];
    const canvas = document.getElementById("chart-" + grouping);
    if (!data || !canvas || !window.Chart) return;
    const rows = chartRows(data);
    const empty = document.querySelector('[data-chart-empty="' + grouping + '"]');
    if (empty) empty.hidden = rows.some(function (row) { return row.due > 0; });
    const chartData = {
      labels: rows.map(function (row) { return groupLabel(grouping, row); }),
      datasets: CHART_SERIES.map(function (series) {
        return {
          type: series.type, label: columnLabel(data, series.key), yAxisID: series.axis,
          backgroundColor: series.color, borderColor: series.color, borderWidth: series.type === "line" ? 2 : 0,
          pointRadius: series.type === "line" ? 2 : 0, order: series.type === "line" ? 0 : 1,
          data: rows.map(function (row) {
            const value = row[series.key];
            return series.rate ? (value == null ? null : Math.round(value * 1000) / 10) : value;
          }),
        };
      }),
    };
    let chart = P.state.charts[grouping];
    if (chart) {
      chart.data = chartData;
      chart.options.scales.y.title.text = t("planning.axis_count");
      chart.options.scales.y1.title.text = t("planning.axis_rate");
      chart.update();
      return;
    }
    chart = new window.Chart(canvas, {
      type: "bar",
      data: chartData,
      plugins: [WHITE_BACKGROUND],
      options: {
        animation: false, responsive: true, maintainAspectRatio: false, devicePixelRatio: 2, // sharp PNGs
        interaction: { mode: "index", intersect: false },
        plugins: {
          legend: { position: "bottom", labels: { boxWidth: 12, font: { size: 11 } } },
          tooltip: {
            callbacks: {
              // Year on year (同比) for the row under the pointer, from the indicators API's yoy answer.
              footer: function (items) {
                const rows = chartRows(P.state.indicators[grouping] || {});
                const row = items.length ? rows[items[0].dataIndex] : null;
                if (!row) return "";
                const text = yoyText(row, "due", false);
                return text ? t("planning.yoy") + " · " + columnLabel(P.state.indicators[grouping], "due") + " " +
                  text : "";
              },
            },
          },
        },
        scales: {
          x: { ticks: { autoSkip: false, maxRotation: 60, minRotation: 30, font: { size: 10 } } },
          y: { beginAtZero: true, position: "left", title: { display: true, text: t("planning.axis_count") } },
          y1: { beginAtZero: true, max: 100, position: "right", grid: { drawOnChartArea: false },
            title: { display: true, text: t("planning.axis_rate") } },
        },
      },
    });
    P.state.charts[grouping] = chart;
  }

  function chartLoader(grouping) {
    return loader("chart-" + grouping, config().urls.indicators, function (filter) {
      const params = new URLSearchParams(period(filter));
      params.set("group_by", grouping);
      params.set("yoy", "true");
      if (filter.category) params.set("category", filter.category);
      return params;
    }, function (data) {
      P.state.indicators[grouping] = data;
      drawChart(grouping);
    });
  }

  // -- exports ---------------------------------------------------------------------------------------------
  function download(url, name) {
    const link = document.createElement("a");
    link.href = url;
    link.download = name;
    link.hidden = true;
    document.body.appendChild(link);
    link.click();
    link.remove();
  }

  function fileStem(filter) {
    return filter.start + "_" + filter.end + "_" + (filter.category || "all").replace(/[^A-Za-z0-9_-]/g, "");
  }

  // A CSV cell that a spreadsheet shows as text: quoted when needed, never read as a formula.
  function csvCell(value) {
    let text = value == null ? "" : String(value);
    if (/^[=+\-@\t\r]/.test(text)) text = "'" + text;
    return /[",\r\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
  }

  function exportProblem(error) {
    const node = document.getElementById("export-problem");
    node.textContent = error ? t("planning.export_failed") + (error.message || error) : "";
    node.hidden = !error;
  }

  P.chartCsv = function (grouping) {
    const data = P.state.indicators[grouping];
    if (!data) return "";
    const zh = { squad: "中队及承办单位", township: "街道/乡镇" }[grouping];
    const en = { squad: "Squad or unit", township: "Township" }[grouping];
    const keys = CHART_SERIES.map(function (s) { return s.key; });
    const header = [zh + " " + en].concat(keys.map(function (key) {
      const column = (data.columns || []).find(function (c) { return c.key === key; }) || {};
      return (column.label_zh || key) + (keys.indexOf(key) >= 2 ? "（%）" : "") + " " + (column.label_en || "");
    }));
    const due = (data.columns || []).find(function (c) { return c.key === "due"; }) || {};
    header.push((due.label_zh || "due") + "去年同期 " + (due.label_en || "") + ", a year earlier");
    header.push((due.label_zh || "due") + "同比（%） Change in " + (due.label_en || "due").toLowerCase() + " (%)");
    const lines = [header.map(csvCell).join(",")];
    chartRows(data).forEach(function (row) {
      const change = (row.year_on_year && row.year_on_year.due) || {};
      lines.push([row.label].concat(keys.map(function (key, i) {
        const value = row[key];
        return i >= 2 ? (value == null ? "" : (value * 100).toFixed(1)) : value;
      })).concat([change.base == null ? "" : change.base,
        change.change_pct == null ? "" : change.change_pct.toFixed(1)]).map(csvCell).join(","));
    });
    return "\ufeff" + lines.join("\r\n") + "\r\n";
  };

  function exportChart(grouping, format) {
    const filter = P.state.filter;
    const chart = P.state.charts[grouping];
    exportProblem(null);
    if (format === "csv") {
      const blob = new Blob([P.chartCsv(grouping)], { type: "text/csv;charset=utf-8" });
      const url = URL.createObjectURL(blob);
      download(url, "indicators-" + grouping + "_" + fileStem(filter) + ".csv");
      setTimeout(function () { URL.revokeObjectURL(url); }, 10000);
    } else if (chart) {
      // The picture says what it shows: the chart's title and window, drawn for the export only.
      const heading = document.querySelector("#chart-" + grouping + "-title [data-i18n]");
      chart.options.plugins.title = { display: true, text: [heading ? heading.textContent : "", periodLabel(filter)] };
      chart.update("none");
      const url = chart.toBase64Image("image/png", 1);
      chart.options.plugins.title = { display: false };
      chart.update("none");
      download(url, "indicators-" + grouping + "_" + fileStem(filter) + ".png");
    }
  }

  // The map as shown (layers, legend, scale) without its buttons, drawn by html-to-image in the browser.
  P.exportMap = function () {
    const node = document.querySelector(".gis-map .folium-map");
    exportProblem(null);
    const skip = ["leaflet-control-zoom", "leaflet-control-layers"];
    return window.htmlToImage.toPng(node, {
      skipFonts: true, pixelRatio: 1, backgroundColor: "#e8edf1",
      filter: function (child) {
        return !(child.classList && skip.some(function (name) { return child.classList.contains(name); }));
      },
    }).then(function (url) {
      download(url, "planning-map_" + fileStem(P.state.filter) + ".png");
      return url;
    }).catch(function (error) { exportProblem(error); throw error; });
  };

  // -- the weekly briefing ---------------------------------------------------------------------------------
  // The ISO 8601 week (YYYY-Www) of a calendar day.
  function isoWeek(year, month, day) {
    const date = new Date(Date.UTC(year, month - 1, day));
    const weekday = date.getUTCDay() || 7;
    date.setUTCDate(date.getUTCDate() + 4 - weekday);
    const yearStart = Date.UTC(date.getUTCFullYear(), 0, 1);
    const week = Math.ceil(((date.getTime() - yearStart) / 86400000 + 1) / 7);
    return date.getUTCFullYear() + "-W" + String(week).padStart(2, "0");
  }

  P.isoWeek = isoWeek;

  function lastWeekOf(month) {
    const year = Number(month.slice(0, 4));
    const number = Number(month.slice(5, 7));
    const lastDay = new Date(Date.UTC(year, number, 0)).getUTCDate();
    return isoWeek(year, number, lastDay);
  }

  function updateBriefing() {
    const form = document.getElementById("briefing");
    const url = config().analytics.briefing;
    const township = form.elements.township.value;
    const week = form.elements.week.value;
    ["html", "csv"].forEach(function (format) {
      const link = document.getElementById("briefing-" + format);
      const ready = Boolean(url && township && /^\d{4}-W\d{2}$/.test(week));
      if (ready) {
        link.href = url + "?" + new URLSearchParams({ township: township, week: week, format: format }).toString();
      } else {
        link.removeAttribute("href");
      }
      link.classList.toggle("disabled", !ready);
      link.setAttribute("aria-disabled", String(!ready));
    });
  }

  // -- the page --------------------------------------------------------------------------------------------
  function readFilter(form) {
    const months = config().months;
    const all = form.elements.all.checked;
    const index = Math.min(Math.max(Number(form.elements.month.value) || 0, 0), months.length - 1);
    return {
      start: all ? months[0] : months[index],
      end: all ? months[months.length - 1] : months[index],
      category: form.elements.category.value || "",
    };
  }

  function applyLanguage() {
    document.querySelectorAll("[data-i18n]").forEach(function (node) { node.textContent = t(node.dataset.i18n); });
    document.querySelectorAll("[data-i18n-title]").forEach(function (node) { node.title = t(node.dataset.i18nTitle); });
    document.querySelectorAll("option[data-zh]").forEach(function (option) {
      option.textContent = G.lang === "en" ? option.dataset.en : option.dataset.zh;
    });
    document.title = t("planning.title");
    if (P.state.filter) {
      document.getElementById("month-label").textContent = periodLabel(P.state.filter);
      if (P.state.cells) showSummary(P.state.cells, P.state.filter);
    }
    renderLegend();
    analyticsNote();
    Object.keys(P.state.indicators).forEach(drawChart);
  }

  function start() {
    const form = document.getElementById("filters");
    const slider = form.elements.month;
    const play = document.getElementById("play");
    const charts = { squad: chartLoader("squad"), township: chartLoader("township") };
    let timer = null;
    let playing = null;

    function apply() {
      const filter = readFilter(form);
      P.state.filter = filter;
      document.getElementById("month-label").textContent = periodLabel(filter);
      const csv = document.getElementById("export-cells");
      csv.href = config().urls.cellsCsv + "?" + monthParams(filter).toString();
      const briefing = document.getElementById("briefing");
      briefing.elements.week.value = lastWeekOf(filter.end);
      updateBriefing();
      clearTimeout(timer);
      timer = setTimeout(function () {
        Object.keys(P.state.layers).forEach(function (key) {
          const layer = P.state.layers[key];
          if (G.map && G.map.hasLayer(layer)) layer.reload(filter).catch(report);
        });
        Object.keys(charts).forEach(function (key) { charts[key](filter).catch(report); });
      }, DEBOUNCE_MS);
    }

    function stop() {
      if (!playing) return;
      clearInterval(playing);
      playing = null;
      play.setAttribute("aria-pressed", "false");
      play.querySelector("span").dataset.i18n = "planning.play";
      play.querySelector("span").textContent = t("planning.play");
      play.querySelector("i").className = "fa-solid fa-play";
    }

    slider.addEventListener("input", function () {
      form.elements.all.checked = false;
      apply();
    });
    form.addEventListener("change", function (event) {
      if (event.target === slider) return; // handled on input
      if (event.target.name === "all" || event.target.name === "category") apply();
    });
    form.addEventListener("submit", function (event) { event.preventDefault(); apply(); });
    play.addEventListener("click", function () {
      if (playing) { stop(); return; }
      form.elements.all.checked = false;
      play.setAttribute("aria-pressed", "true");
      play.querySelector("span").dataset.i18n = "planning.pause";
      play.querySelector("span").textContent = t("planning.pause");
      play.querySelector("i").className = "fa-solid fa-pause";
      playing = setInterval(function () {
        slider.value = String((Number(slider.value) + 1) % config().months.length);
        apply();
      }, PLAY_MS);
      apply();
    });
    slider.addEventListener("pointerdown", stop);

    document.getElementById("lang-switch").addEventListener("click", function () {
      const next = G.lang === "en" ? "zh" : "en";
      document.cookie = "gis_lang=" + next + "; path=/; max-age=31536000; samesite=lax";
      G.setLang(next);
    });
    document.addEventListener("gis:lang", applyLanguage);

    document.getElementById("export-map").addEventListener("click", function () { P.exportMap().catch(report); });
    document.querySelectorAll("[data-export-chart]").forEach(function (button) {
      button.addEventListener("click", function () { exportChart(button.dataset.exportChart, button.dataset.format); });
    });
    document.getElementById("briefing").addEventListener("input", updateBriefing);
    document.getElementById("briefing").addEventListener("submit", function (event) { event.preventDefault(); });

    if (G.map) addLegend(G.map);
    apply();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
