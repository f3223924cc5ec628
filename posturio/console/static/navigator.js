// Console Navigator page: stream a grounded answer (sources, text deltas, then the
// citations actually used) and send helpful / not helpful votes. Text is always set with
// textContent: answers and sources are never interpreted as HTML.
"use strict";

const csrf = () => document.querySelector("#csrf input[name=_csrf_token]").value;
const $ = (id) => document.getElementById(id);
let answerId = null;

function citationItem(c) {
  const li = document.createElement("li");
  li.value = c.n;
  li.dataset.n = c.n;
  const title = document.createElement("a");
  title.href = c.url;
  if (!c.url.startsWith("/") && !c.url.startsWith(location.origin)) title.rel = "noopener noreferrer";
  title.textContent = c.title || c.uri;
  const where = document.createElement("span");
  where.className = "muted";
  where.textContent = ` — ${c.source} · ${c.uri}${c.page ? ` · page ${c.page}` : ""}`;
  li.append(title, where);
  for (const [label, helpful] of [["Helpful", true], ["Not helpful", false]]) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "secondary vote";
    b.textContent = label;
    b.title = helpful ? "this source helped" : "this source did not help";
    b.dataset.citation = c.n;
    b.dataset.helpful = String(helpful);
    li.append(" ", b);
  }
  return li;
}

async function vote(button) {
  const response = await fetch(`/console/navigator/answers/${answerId}/feedback`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-csrftoken": csrf() },
    body: JSON.stringify({
      helpful: button.dataset.helpful === "true",
      citation: Number(button.dataset.citation),
    }),
  });
  $("vote-status").textContent = response.ok ? "Thanks, noted." : "Could not save your vote.";
}

function events(buffer, onEvent) {
  let at;
  while ((at = buffer.indexOf("\n\n")) >= 0) {
    const block = buffer.slice(0, at);
    buffer = buffer.slice(at + 2);
    let name = "message";
    let data = "";
    for (const line of block.split("\n")) {
      if (line.startsWith("event: ")) name = line.slice(7);
      else if (line.startsWith("data: ")) data += line.slice(6);
    }
    if (data) onEvent(name, JSON.parse(data));
  }
  return buffer;
}

async function ask() {
  const question = $("q").value.trim();
  if (!question) return;
  const body = { question, stream: true };
  if ($("source").value) body.source_ids = [$("source").value];
  if ($("kind").value) body.kinds = [$("kind").value];
  $("answer").hidden = false;
  $("answer-text").textContent = "…";
  $("answer-citations").replaceChildren();
  $("answer-votes").hidden = true;
  $("vote-status").textContent = "";
  $("answer-meta").textContent = "";
  const response = await fetch("/console/navigator/answer", {
    method: "POST",
    headers: { "content-type": "application/json", "x-csrftoken": csrf() },
    body: JSON.stringify(body),
  });
  const decision = response.headers.get("x-posturio-decision");
  if (!response.ok) {
    const error = await response.json().catch(() => ({}));
    $("answer-text").textContent = (error.error && error.error.message) || `Error ${response.status}`;
    $("answer-meta").textContent = `decision: ${decision || "—"}`;
    return;
  }
  let sources = [];
  let text = "";
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer = events(buffer + decoder.decode(value, { stream: true }), (name, data) => {
      if (name === "sources") {
        answerId = data.answer_id;
        sources = data.sources;
        $("answer-text").textContent = "";
      } else if (name === "delta") {
        text += data.text;
        $("answer-text").textContent = text;
      } else if (name === "done") {
        const cited = new Set(data.cited);
        $("answer-citations").replaceChildren(
          ...sources.filter((s) => cited.has(s.n)).map(citationItem),
        );
        $("answer-votes").hidden = false;
        $("answer-meta").textContent =
          `decision: ${data.decision}` + (data.output_decision ? ` · answer: ${data.output_decision}` : "") +
          ` · request ${data.request_id}`;
      } else if (name === "error") {
        $("answer-text").textContent = `${text}\n[${data.message}]`;
      }
    });
  }
}

$("ask").addEventListener("click", () => ask().catch((e) => { $("answer-text").textContent = String(e); }));
document.addEventListener("click", (e) => {
  const button = e.target.closest("button.vote");
  if (button && answerId) vote(button);
});
