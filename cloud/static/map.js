// Street maps for the console (Leaflet, vendored in static/vendor/leaflet: no CDN at run time) and
// the alert page's zoomable snapshot.
//  - [data-map]: JSON {tiles, attribution, markers: [{lat, lon, state, label, url}]}. With no tile
//    server configured (Settings.map_tile_url) the markers stand on a blank background.
//  - .zoomable[data-zoom]: opens the picture at full size in the page's <dialog id="zoom">.
(function () {
  "use strict";
  const COLOURS = {
    new: "#dc2626", delivered: "#ea580c", acknowledged: "#2563eb", resolved: "#16a34a",
    false_alarm: "#6b7280", ok: "#16a34a", warn: "#d97706", down: "#dc2626",
  };

  function setMarkers(layer, markers) {
    layer.clearLayers();
    for (const m of markers) {
      if (typeof m.lat !== "number" || typeof m.lon !== "number") continue;
      const colour = COLOURS[m.state] || "#6b7280";
      const marker = L.circleMarker([m.lat, m.lon], {
        radius: 9, color: "#fff", weight: 2, fillColor: colour, fillOpacity: 0.95,
      }).addTo(layer);
      marker.bindTooltip(m.label || "");
      if (m.url) marker.on("click", () => (location.href = m.url));
      // A handle for tests and for keyboard users: the marker's element gets its state and link.
      const path = marker.getElement && marker.getElement();
      if (path) {
        path.setAttribute("data-state", m.state || "");
        if (m.url) path.setAttribute("data-url", m.url);
        path.classList.add("map-marker");
      }
    }
  }

  function draw(elem) {
    let cfg;
    try {
      cfg = JSON.parse(elem.dataset.map);
    } catch (e) {
      return;
    }
    const map = L.map(elem, { scrollWheelZoom: false, attributionControl: !!cfg.tiles });
    if (cfg.tiles) {
      L.tileLayer(cfg.tiles, { maxZoom: 19, attribution: cfg.attribution || "" }).addTo(map);
    } else {
      elem.classList.add("blank");
    }
    // The view first: Leaflet projects a marker when it is added, which needs a centre and zoom.
    const first = (cfg.markers || []).filter((m) => typeof m.lat === "number" && typeof m.lon === "number");
    const points = first.map((m) => [m.lat, m.lon]);
    if (points.length > 1) map.fitBounds(points, { padding: [24, 24], maxZoom: 17 });
    else if (points.length === 1) map.setView(points[0], 16);
    else map.setView([10.7769, 106.7009], 13); // the district, until something has a position
    const layer = L.layerGroup().addTo(map);
    setMarkers(layer, first);
    // A live page (the fleet) re-renders its markers with the table: follow them, keep the view.
    const sourceId = elem.dataset.markersFrom;
    if (sourceId) {
      new MutationObserver(() => {
        const src = document.getElementById(sourceId);
        if (!src || src.dataset.drawn) return;
        src.dataset.drawn = "1";
        try {
          setMarkers(layer, JSON.parse(src.dataset.markers));
        } catch (e) {}
      }).observe(document.body, { childList: true, subtree: true });
    }
    elem.dataset.ready = "1";
  }

  function start() {
    if (window.L) document.querySelectorAll("[data-map]").forEach(draw);
    const dialog = document.getElementById("zoom");
    document.addEventListener("click", (evt) => {
      const z = evt.target.closest(".zoomable[data-zoom]");
      if (!z || !dialog) return;
      dialog.querySelector("img").src = z.dataset.zoom;
      dialog.showModal();
    });
    if (dialog) dialog.addEventListener("click", (evt) => evt.target === dialog && dialog.close());
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
