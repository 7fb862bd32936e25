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

// Live updates (server_stub/console/live.py). Each "update" event carries the tasks and multicast sessions
// that changed; every element of the page naming one is brought up to date:
//   [data-task="ID"]      with inside it (or being) .state .percent .bytes .rate .eta .stage .ratio .figures .error
//                         and <progress>; the element gets data-state="STATE".
//   [data-session="ID"]   with .session-state; inside it [data-client="TASK_ID"] with .client-state, .reason.
// "stale" means this page fell too far behind: reload it (the page is the newest state).
const TASK_FIELDS = ["percent", "bytes", "rate", "eta", "stage", "ratio", "figures"];

function within(el, selector) {
  const found = Array.from(el.querySelectorAll(selector));
  if (el.matches(selector)) found.unshift(el);
  return found;
}

function setText(el, selector, text) {
  for (const target of within(el, selector)) {
    if (target.textContent !== text) target.textContent = text;
  }
}

function applyTask(root, task) {
  for (const el of root.querySelectorAll(`[data-task="${task.id}"]`)) {
    el.dataset.state = task.state;
    for (const cell of within(el, ".state")) {
      cell.textContent = task.state;
      cell.className = cell.className.replace(/\bstate-\S+/g, "").trim() + " state-" + task.state;
    }
    for (const name of TASK_FIELDS) setText(el, "." + name, task.text[name]);
    if (task.error) setText(el, ".error", `${task.error.code || "error"}: ${task.error.message || ""}`);
    for (const bar of within(el, "progress")) {
      if (typeof task.percent === "number") {
        bar.max = 100;
        bar.value = task.percent;
        bar.textContent = task.text.percent;
      }
    }
  }
}

function applySession(root, session) {
  for (const el of root.querySelectorAll(`[data-session="${session.id}"]`)) {
    el.dataset.state = session.state;
    setText(el, ".session-state", session.state);
    for (const client of session.clients) {
      for (const row of el.querySelectorAll(`[data-client="${client.task_id}"]`)) {
        setText(row, ".client-state", client.state);
        setText(row, ".reason", client.reason || "–");
      }
    }
  }
}

window.imagerLive = function (main, source) {
  const status = document.getElementById("live-status");
  const say = (text) => { if (status) status.textContent = text; };
  source.addEventListener("open", () => say("live"));
  source.addEventListener("error", () =>
    say(source.readyState === EventSource.CLOSED ? "not live: reload the page" : "reconnecting…"));
  source.addEventListener("update", (message) => {
    const update = JSON.parse(message.data);
    for (const task of update.tasks) applyTask(document, task);
    for (const session of update.sessions) applySession(document, session);
  });
  source.addEventListener("stale", () => { source.close(); window.location.reload(); });
};
