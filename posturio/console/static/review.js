// Review queue keyboard: j/k select, c confirm, f false positive, e escalate, o open.
"use strict";

const rows = Array.from(document.querySelectorAll("#queue tr.item"));
let current = rows.length ? 0 : -1;

function select(i) {
  if (!rows.length) return;
  current = Math.max(0, Math.min(rows.length - 1, i));
  rows.forEach((r, n) => r.classList.toggle("selected", n === current));
  rows[current].scrollIntoView({ block: "nearest" });
}

function press(selector) {
  if (current < 0) return;
  const button = rows[current].querySelector(selector);
  if (button) button.click();
}

document.addEventListener("keydown", (event) => {
  const tag = (event.target.tagName || "").toLowerCase();
  if (["input", "select", "textarea"].includes(tag) || event.ctrlKey || event.metaKey || event.altKey) return;
  const keys = {
    j: () => select(current + 1),
    k: () => select(current - 1),
    c: () => press("button.confirm"),
    f: () => press("button.false-positive"),
    e: () => press("button.escalate"),
    o: () => press("a.open"),
  };
  if (keys[event.key]) { event.preventDefault(); keys[event.key](); }
});
select(0);
