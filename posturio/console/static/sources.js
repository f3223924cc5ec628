// Sources page: while a sync runs (or an approved source waits for its first), the page
// is fetched again every few seconds and each row's status, progress and last sync are
// replaced by the new rendering (the forms in the row are left alone: a reason being
// typed is kept). It stops once nothing is syncing.
"use strict";

(function () {
  const EVERY_MS = 3000;
  const PENDING_POLLS = 40; // a first sync not started after two minutes: stop asking
  const ACTIVE = ["running", "queued", "pending"];
  const CELLS = ["td.status", "td.progress", "td.last-sync"];
  let polls = 0;

  const rows = (root) => Array.from(root.querySelectorAll("#sources tr[data-id]"));
  const busy = (root) =>
    rows(root).some((r) => r.dataset.state === "running" || r.dataset.state === "queued") ||
    (polls < PENDING_POLLS && rows(root).some((r) => r.dataset.state === "pending"));

  async function refresh() {
    polls += 1;
    try {
      const response = await fetch(location.pathname, { headers: { accept: "text/html" } });
      if (response.ok) {
        const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
        for (const row of rows(fresh)) {
          const here = document.querySelector(`#sources tr[data-id="${row.dataset.id}"]`);
          if (!here) continue;
          here.dataset.state = row.dataset.state;
          for (const cell of CELLS) {
            const old = here.querySelector(cell);
            const now = row.querySelector(cell);
            if (old && now) old.replaceWith(document.importNode(now, true));
          }
        }
      }
    } catch (e) {
      // The server was briefly unreachable: the next poll tries again.
    }
    if (busy(document)) setTimeout(refresh, EVERY_MS);
  }

  if (busy(document)) setTimeout(refresh, EVERY_MS);
})();
