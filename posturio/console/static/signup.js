// Signup: ask for a challenge, solve it in a Web Worker with visible progress, then sign up.
"use strict";

const form = document.getElementById("signup");
const csrf = () => form.querySelector("input[name=_csrf_token]").value;

async function post(url, body) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", "x-csrftoken": csrf() },
    body: JSON.stringify(body),
  });
  const json = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error((json.error && json.error.message) || response.statusText);
  return json;
}

function solve(challenge, difficulty, progress) {
  return new Promise((resolve, reject) => {
    const worker = new Worker("/static/pow-worker.js");
    worker.onmessage = (event) => {
      const m = event.data;
      if (m.done) { worker.terminate(); resolve(m.solution); return; }
      progress.value = Math.min(0.95, m.tries / m.expected);
    };
    worker.onerror = (e) => { worker.terminate(); reject(new Error(e.message)); };
    worker.postMessage({ challenge, difficulty });
  });
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = form.querySelector("button");
  const status = document.getElementById("status");
  const progress = document.getElementById("progress");
  const error = document.getElementById("error");
  error.hidden = true;
  button.disabled = true;
  progress.hidden = false;
  progress.value = 0;
  try {
    status.textContent = "Getting a challenge…";
    const c = await post("/signup/challenge", {});
    status.textContent = `Proving work (difficulty ${c.difficulty} bits) — this keeps bots out…`;
    const solution = await solve(c.challenge, c.difficulty, progress);
    progress.value = 1;
    status.textContent = "Creating your organisation…";
    const done = await post("/signup", {
      email: form.email.value,
      organisation: form.organisation.value,
      challenge: c.challenge,
      solution,
    });
    form.hidden = true;
    document.getElementById("api-key").textContent = done.api_key;
    document.getElementById("curl").textContent =
      `curl ${done.base_url}/chat/completions \\\n  -H "Authorization: Bearer ${done.api_key}" \\\n` +
      `  -H "Content-Type: application/json" \\\n` +
      `  -d '{"model": "echo", "messages": [{"role": "user", "content": "hello"}]}'`;
    document.getElementById("python").textContent =
      `from openai import OpenAI\nclient = OpenAI(base_url="${done.base_url}", api_key="${done.api_key}")\n` +
      `print(client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hello"}]))`;
    document.getElementById("welcome").hidden = false;
    status.textContent = "";
  } catch (e) {
    error.textContent = e.message;
    error.hidden = false;
    status.textContent = "";
    progress.hidden = true;
  } finally {
    button.disabled = false;
  }
});
