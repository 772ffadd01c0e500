// taskhub console: small enhancements over pages that work without JavaScript.
// - [data-refresh-seconds] regions reload themselves from their page every N seconds.
// - form[data-preview] posts its fields, debounced, as one types, and shows the answer
//   (an HTML fragment) in the element its data-preview attribute names.
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

document.addEventListener("DOMContentLoaded", () => {
  refreshRegions();
  livePreviews();
});
