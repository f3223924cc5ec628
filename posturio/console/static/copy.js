// Copy buttons: <button class="copy" data-copy="element-id"> copies that element's text
// (or an input's value). The clipboard API needs a secure context; elsewhere the text is
// selected so that one keystroke copies it.
"use strict";

function textOf(el) {
  return el.value !== undefined ? el.value : el.textContent;
}

function selectText(el) {
  if (el.select) { el.select(); return; }
  const range = document.createRange();
  range.selectNodeContents(el);
  const selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
}

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button.copy");
  if (!button) return;
  const target = document.getElementById(button.dataset.copy);
  if (!target) return;
  const label = button.dataset.label || button.textContent;
  button.dataset.label = label;
  try {
    await navigator.clipboard.writeText(textOf(target).trim());
    button.textContent = "Copied";
  } catch (e) {
    selectText(target);
    button.textContent = "Selected: press Ctrl+C";
  }
  setTimeout(() => { button.textContent = label; }, 2000);
});
