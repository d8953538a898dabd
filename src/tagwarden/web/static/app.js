// tagwarden admin pages: small progressive enhancements; every form works without this file.
"use strict";

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const text = button.dataset.copy;
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // Clipboard API refused (not a secure context): fall back to a selected text area.
    const area = document.createElement("textarea");
    area.value = text;
    document.body.appendChild(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  const label = button.textContent;
  button.textContent = "Copied";
  setTimeout(() => { button.textContent = label; }, 1500);
});

function updateSelectedCount() {
  const out = document.querySelector("[data-selected-count]");
  if (!out) return;
  const n = document.querySelectorAll('input[name="ids"][form="bulk"]:checked').length;
  out.textContent = n ? `${n} selected` : "";
}

document.addEventListener("change", (event) => {
  const all = event.target.closest("input[data-select-all]");
  if (all) {
    document.querySelectorAll(`input[name="${all.dataset.selectAll}"][form="bulk"]`)
      .forEach((box) => { box.checked = all.checked; });
  }
  updateSelectedCount();
});

// Live rollout progress: the page names a JSON endpoint; we poll it and patch the bars and the
// device table in place, and stop once the rollout has finished.
function startLive(root) {
  const url = root.dataset.live;
  const every = Number(root.dataset.every || 1500);
  let timer = null;
  async function tick() {
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
      if (response.status === 401) { window.location.reload(); return; }
      if (!response.ok) return;
      const data = await response.json();
      render(root, data);
      if (data.finished) { clearInterval(timer); }
    } catch { /* a missed poll is retried at the next tick */ }
  }
  timer = setInterval(tick, every);
}

function setBar(bar, counts, total) {
  if (!bar) return;
  for (const kind of ["ok", "bad", "busy"]) {
    const part = bar.querySelector(`.${kind}`);
    if (part) part.style.width = total ? `${(100 * (counts[kind] || 0)) / total}%` : "0%";
  }
  bar.setAttribute("aria-valuenow", String(total ? Math.round((100 * (counts.ok || 0)) / total) : 0));
}

function render(root, data) {
  const status = root.querySelector("[data-field=status]");
  if (status) { status.textContent = data.status; status.className = `badge status-${data.status}`; }
  const summary = root.querySelector("[data-field=summary]");
  if (summary) summary.textContent = data.summary;
  setBar(root.querySelector("[data-bar=overall]"), data.overall, data.overall.total);
  for (const batch of data.batches) {
    const row = root.querySelector(`[data-batch="${batch.index}"]`);
    if (!row) continue;
    setBar(row.querySelector(".progress"), batch, batch.total);
    const text = row.querySelector("[data-field=batch-text]");
    if (text) text.textContent = batch.text;
  }
  for (const device of data.devices) {
    const row = root.querySelector(`[data-device="${device.id}"]`);
    if (!row) continue;
    const state = row.querySelector("[data-field=state]");
    if (state) { state.textContent = device.state; state.className = `badge status-${device.state}`; }
    const message = row.querySelector("[data-field=message]");
    if (message) message.textContent = device.message || "—";
  }
  for (const button of root.querySelectorAll("[data-needs]")) {
    const allowed = button.dataset.needs.split(" ").includes(data.status);
    button.closest("form").hidden = !allowed;
  }
}

document.querySelectorAll("[data-live]").forEach(startLive);
