// Playground: stream a reply through the gateway and show what the gateway did.
"use strict";

const form = document.getElementById("chat-form");
const log = document.getElementById("chat");
const csrf = () => form.querySelector("input[name=_csrf_token]").value;
const history = [];

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;  // never innerHTML: prompts are untrusted
  return node;
}

function showMeta(meta, into) {
  const box = el("div", "meta");
  const head = el("div");
  head.append(el("span", `badge ${meta.decision}`, meta.decision), " ");
  if (meta.output_decision) head.append("answer: ", el("span", `badge ${meta.output_decision}`, meta.output_decision), " ");
  head.append(`route ${meta.route || "—"} · ${meta.usage.prompt_tokens}+${meta.usage.completion_tokens} tokens` +
              ` · gateway ${meta.overhead_ms} ms · ${meta.policy || ""} · request ${meta.request_id}`);
  box.append(head);
  if (meta.findings.length) {
    const list = el("ul", "findings");
    for (const f of meta.findings) {
      list.append(el("li", null, `${f.direction}: ${f.category} (${f.rule}) in ${f.where} ` +
        `[${f.span[0]}–${f.span[1]}] ${f.preview} → ${f.action}` + (f.policy_rule ? ` by ${f.policy_rule}` : "")));
    }
    box.append(list);
  }
  box.dataset.decision = meta.decision;
  into.append(box);
}

async function send(text, model) {
  history.push({ role: "user", content: text });
  log.append(el("div", "msg user", text));
  const answer = el("div", "msg assistant", "");
  log.append(answer);
  const response = await fetch("/playground/chat", {
    method: "POST",
    headers: { "content-type": "application/json", "x-csrftoken": csrf() },
    body: JSON.stringify({ model, messages: history, stream: true }),
  });
  const type = response.headers.get("content-type") || "";
  if (!type.startsWith("text/event-stream")) {
    const body = await response.json();
    const err = body.response && body.response.error;
    answer.className = "msg error";
    answer.textContent = err ? `${err.code}: ${err.message}` : `HTTP ${response.status}`;
    if (body.posturio) showMeta(body.posturio, log);
    history.pop();
    return;
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "", reply = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const raw = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const event = (raw.match(/^event: (.*)$/m) || [])[1];
      const data = raw.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
      if (!data || data === "[DONE]") continue;
      const json = JSON.parse(data);
      if (event === "posturio") { showMeta(json, log); continue; }
      if (json.error) { answer.className = "msg error"; answer.textContent = json.error.message; continue; }
      for (const choice of json.choices || []) {
        if (choice.delta && choice.delta.content) { reply += choice.delta.content; answer.textContent = reply; }
      }
    }
  }
  history.push({ role: "assistant", content: reply });
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = form.prompt.value.trim();
  if (!text) return;
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    await send(text, form.model.value);
    form.prompt.value = "";
  } catch (e) {
    log.append(el("div", "msg error", e.message));
  } finally {
    button.disabled = false;
  }
});
