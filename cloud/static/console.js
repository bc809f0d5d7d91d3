// Console behaviour shared by every page, in plain JS (no framework, no CDN):
//  - [data-refresh-url]: the element's content is re-rendered by the server every few seconds,
//    so the fleet table and the zone sync state follow the devices without a page reload;
//  - [data-stream-url]: the live alert feed, an EventSource; each alert is fetched as a
//    server-rendered row (a.alert-row) so the feed and the first page load share one template;
//  - form.act: acknowledge / resolve / false alarm without leaving the page;
//  - attention: a new alert in the live feed plays a tone (unless muted; remembered in
//    localStorage), raises a desktop notification while the tab is hidden (once the user allowed
//    it), and counts in the tab title until the user is back (click, key, or the tab shown again).
(function () {
  "use strict";
  // The page's texts in the reader's language, from the same catalogue as the page (see base.html).
  const MESSAGES = JSON.parse((document.getElementById("i18n-messages") || {}).textContent || "{}");
  const _ = (text) => MESSAGES[text] || text;

  // ---- attention ---------------------------------------------------------------------------
  const attention = (function () {
    const MUTE_KEY = "matthan.muted";
    const baseTitle = document.title;
    let unread = 0;
    let audio = null;
    const muted = () => localStorage.getItem(MUTE_KEY) === "1";

    function showTitle() {
      document.title = unread > 0 ? `(${unread}) ${baseTitle}` : baseTitle;
    }
    function seen() {
      if (unread === 0) return;
      unread = 0;
      showTitle();
    }
    function tone() {
      if (muted()) return;
      try {
        audio = audio || new (window.AudioContext || window.webkitAudioContext)();
        if (audio.state === "suspended") audio.resume(); // browsers wait for a first click
        const osc = audio.createOscillator();
        const gain = audio.createGain();
        osc.frequency.value = 880;
        gain.gain.setValueAtTime(0.25, audio.currentTime);
        gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.6);
        osc.connect(gain).connect(audio.destination);
        osc.start();
        osc.stop(audio.currentTime + 0.6);
      } catch (e) {
        // No audio device: the title and the notification still tell.
      }
    }
    function desktop(text, url) {
      if (!document.hidden || !("Notification" in window) || Notification.permission !== "granted") return;
      const n = new Notification(_("matthan — new alert"), { body: text, tag: url });
      n.onclick = () => {
        window.focus();
        location.href = url;
      };
    }
    function newAlert(row) {
      unread += 1;
      showTitle();
      tone();
      // The feed's row: what happened and where, as the operator reads it in the list.
      const id = row.dataset.eventId;
      const text = [".what", ".where"]
        .map((sel) => row.querySelector(sel))
        .filter(Boolean)
        .map((el) => el.textContent.trim().replace(/\s+/g, " "))
        .join(" — ");
      desktop(text || id, row.getAttribute("href") || `/console/alerts/${encodeURIComponent(id)}`);
    }
    function setup() {
      for (const evt of ["click", "keydown"]) document.addEventListener(evt, seen, { passive: true });
      document.addEventListener("visibilitychange", () => document.hidden || seen());
      const mute = document.getElementById("mute");
      if (mute) {
        const paint = () => {
          mute.textContent = muted() ? _("🔇 Sound off") : _("🔔 Sound on");
          mute.setAttribute("aria-pressed", String(muted()));
        };
        mute.addEventListener("click", () => {
          localStorage.setItem(MUTE_KEY, muted() ? "0" : "1");
          paint();
        });
        paint();
      }
      const ask = document.getElementById("notify-permission");
      if (ask && "Notification" in window) {
        const paint = () => {
          ask.hidden = Notification.permission === "granted";
          ask.disabled = Notification.permission === "denied";
        };
        ask.addEventListener("click", async () => {
          await Notification.requestPermission();
          paint();
        });
        paint();
      }
    }
    return { newAlert, setup };
  })();
  attention.setup();

  async function replaceFrom(elem) {
    try {
      const resp = await fetch(elem.dataset.refreshUrl, { credentials: "same-origin" });
      // A session that ended answers with the login page: reload, and the browser goes there.
      if (resp.redirected || resp.status === 401) return location.reload();
      if (resp.ok) {
        elem.innerHTML = await resp.text();
        elem.dataset.refreshedAt = new Date().toISOString();
      }
    } catch (e) {
      // The server restarting is normal; the next tick tries again.
    }
  }
  for (const elem of document.querySelectorAll("[data-refresh-url]")) {
    const every = Number(elem.dataset.refreshEvery || 5) * 1000;
    setInterval(() => document.hidden || replaceFrom(elem), every);
    document.addEventListener("console:refresh", () => replaceFrom(elem));
  }

  // ---- live alert feed ---------------------------------------------------------------------
  const feed = document.querySelector("[data-stream-url]");
  if (feed) {
    const badge = document.getElementById("live");
    const cardUrl = feed.dataset.cardUrl; // ends with "/", the event id is appended
    const query = location.search;
    const seen = new Map(); // event_id -> last payload text, so replays change nothing
    let source = null;
    const oldest = feed.dataset.order === "oldest";
    const rowFor = (eventId) => feed.querySelector(`.alert-row[data-event-id="${CSS.escape(eventId)}"]`);
    const bumpCount = (by) => {
      const count = document.getElementById("feed-count");
      if (count) count.textContent = String(Math.max(0, Number(count.textContent || 0) + by));
    };

    // Rows are kept in the page's order by start time (data-started, epoch seconds): an alert that
    // arrives late (a device's outbox draining) lands where it belongs, not at the top or bottom.
    function insertRow(row) {
      const t = Number(row.dataset.started);
      for (const other of feed.querySelectorAll(".alert-row[data-started]")) {
        const o = Number(other.dataset.started);
        if (oldest ? o > t : o < t) return other.before(row);
      }
      feed.append(row);
    }

    async function showCard(eventId, fresh) {
      const resp = await fetch(cardUrl + encodeURIComponent(eventId) + query, { credentials: "same-origin" });
      if (resp.redirected) return location.reload();
      const old = rowFor(eventId);
      if (resp.status === 204) {
        // No longer matches this page's filters (e.g. acknowledged under "unacknowledged").
        if (old) {
          old.remove();
          bumpCount(-1);
        }
        return;
      }
      if (resp.status !== 200) return; // 404/403: not for this user
      const tmp = document.createElement("div");
      tmp.innerHTML = (await resp.text()).trim();
      const row = tmp.firstElementChild;
      if (!row) return;
      if (old) {
        old.replaceWith(row);
      } else {
        if (fresh) row.classList.add("fresh");
        insertRow(row);
        if (fresh) attention.newAlert(row);
        const empty = document.getElementById("feed-empty");
        if (empty) empty.remove();
        bumpCount(1);
      }
      // Counters elsewhere on the page (the "Last 7 days" panel) follow every change.
      document.dispatchEvent(new CustomEvent("console:refresh"));
    }

    // The stream starts at the page's render time; after a drop we reconnect from the last change
    // we saw (the server's `since`), so nothing that happened while disconnected is missed.
    let streamUrl = feed.dataset.streamUrl;
    let lastId = null;

    function connect() {
      source = new EventSource(streamUrl, { withCredentials: true });
      source.onopen = () => badge && badge.classList.add("on");
      source.onerror = () => {
        if (badge) badge.classList.remove("on");
        source.close();
        if (lastId) {
          const u = new URL(streamUrl, location.href);
          u.searchParams.set("since", lastId);
          streamUrl = u.pathname + u.search;
        }
        setTimeout(connect, 2000);
      };
      const onEvent = (msg) => {
        if (msg.lastEventId) lastId = msg.lastEventId;
        let data;
        try {
          data = JSON.parse(msg.data);
        } catch (e) {
          return;
        }
        const eventId = data.event_id || (data.alert && data.alert.event_id);
        if (!eventId || seen.get(eventId) === msg.data) return;
        const isNew = !seen.has(eventId) && !rowFor(eventId);
        seen.set(eventId, msg.data);
        showCard(eventId, isNew);
      };
      source.onmessage = onEvent;
      for (const name of ["alert", "event", "state", "alert-state", "update"]) source.addEventListener(name, onEvent);
    }
    connect();
  }

  // ---- alert actions -------------------------------------------------------------------------
  document.addEventListener("submit", async (evt) => {
    const form = evt.target;
    if (!form.matches("form.act")) return;
    evt.preventDefault();
    const button = evt.submitter;
    const data = new FormData(form);
    if (button && button.name) data.set(button.name, button.value);
    form.querySelectorAll("button").forEach((b) => (b.disabled = true));
    // getAttribute: the buttons are named "action", which shadows form.action in the DOM.
    const resp = await fetch(form.getAttribute("action"), {
      method: "POST",
      body: data,
      headers: { "X-Requested-With": "fetch" },
      credentials: "same-origin",
    });
    const card = form.closest("[data-event-id]");
    // Redirected: signed out meanwhile, or a page form (the alert page's pin) that answers with
    // the page itself; either way the reload shows the truth.
    if (resp.redirected || (resp.ok && !card)) return location.reload();
    if (resp.ok) {
      const tmp = document.createElement("div");
      tmp.innerHTML = (await resp.text()).trim();
      card.replaceWith(tmp.firstElementChild);
    } else {
      form.querySelectorAll("button").forEach((b) => (b.disabled = false));
      let msg = _("The server refused (HTTP {status}); reload the page and try again.").replace("{status}", resp.status);
      try {
        msg = (await resp.json()).detail || msg;
      } catch (e) {}
      let err = form.querySelector(".flash");
      if (!err) {
        err = document.createElement("div");
        err.className = "flash error";
        form.appendChild(err);
      }
      err.textContent = msg;
    }
  });
})();
