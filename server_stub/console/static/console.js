// imager console: the only script. It shows times in the browser's local time and, on pages that ask for
// it (data-live on <main>), applies the server's live updates (one EventSource per page).
"use strict";

function localTimes(root) {
  for (const el of root.querySelectorAll("time[datetime]")) {
    const when = new Date(el.getAttribute("datetime"));
    if (!isNaN(when)) {
      el.textContent = when.toLocaleString([], {dateStyle: "short", timeStyle: "short"});
      el.title = when.toString();
    }
  }
}

document.addEventListener("DOMContentLoaded", () => {
  localTimes(document);
  const main = document.querySelector("main[data-live]");
  if (main && window.EventSource && window.imagerLive) {
    window.imagerLive(main, new EventSource(main.dataset.live));
  }
});
