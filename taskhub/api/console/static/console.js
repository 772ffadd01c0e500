// taskhub console: small enhancements over pages that work without JavaScript.
// - [data-refresh-seconds] regions reload themselves from their page every N seconds.
// - form[data-preview] posts its fields, debounced, as one types, and shows the answer
//   (an HTML fragment) in the element its data-preview attribute names.
// - <time datetime data-local> shown in UTC by the server is rewritten into the
//   browser's zone, and [data-local-zone] names that zone.
"use strict";

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

function refreshRegions() {
  document.querySelectorAll("[data-refresh-seconds]").forEach((region) => {
    const seconds = Number(region.dataset.refreshSeconds) || 30;
    setInterval(async () => {
      if (document.hidden) return;
      const response = await fetch(window.location.href, { headers: { "X-Requested-With": "fetch" } });
      if (!response.ok) return;
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = region.id ? page.getElementById(region.id) : null;
      if (fresh) region.innerHTML = fresh.innerHTML;
    }, seconds * 1000);
  });
}

function livePreviews() {
  document.querySelectorAll("form[data-preview]").forEach((form) => {
    const out = document.getElementById(form.dataset.preview);
    const url = form.dataset.previewUrl;
    if (!out || !url) return;
    let sent = 0;
    const update = debounce(async () => {
      const mine = ++sent;
      const body = new URLSearchParams(new FormData(form));
      const response = await fetch(url, {
        method: "POST",
        body,
        headers: { "X-CSRF-Token": csrfToken() },
      });
      if (mine === sent && response.ok) out.innerHTML = await response.text();
    }, 300);
    form.addEventListener("input", update);
    form.addEventListener("change", update);
  });
}

function pad(n) {
  return String(n).padStart(2, "0");
}

function localTimes(root) {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";
  root.querySelectorAll("time[data-local][datetime]").forEach((el) => {
    const when = new Date(el.getAttribute("datetime"));
    if (Number.isNaN(when.getTime())) return;
    const seconds = when.getSeconds() ? `:${pad(when.getSeconds())}` : "";
    el.textContent = `${when.getFullYear()}-${pad(when.getMonth() + 1)}-${pad(when.getDate())} ` +
      `${pad(when.getHours())}:${pad(when.getMinutes())}${seconds}`;
    el.title = `${el.getAttribute("datetime")} (${zone})`;
  });
  root.querySelectorAll("[data-local-zone]").forEach((el) => {
    el.textContent = zone;
  });
}

document.addEventListener("DOMContentLoaded", () => {
  refreshRegions();
  livePreviews();
  localTimes(document);
});
