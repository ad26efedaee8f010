// The ringfront feed page: plain JavaScript, no build step.
// The session (name and bearer token) is kept in localStorage; the token
// goes only into Authorization headers, never into a URL.
"use strict";

const SESSION_KEY = "ringfront.session";
const $ = (id) => document.getElementById(id);

let session = loadSession();
let streamAbort = null;
let timelineNext = "";
let feedNext = "";
let feedUser = "";
const shown = new Set(); // post ids in the home timeline

function loadSession() {
  try {
    const s = JSON.parse(localStorage.getItem(SESSION_KEY) || "null");
    return s && typeof s.name === "string" && typeof s.token === "string" ? s : null;
  } catch (e) {
    return null;
  }
}

function saveSession(s) {
  session = s;
  if (s) localStorage.setItem(SESSION_KEY, JSON.stringify(s));
  else localStorage.removeItem(SESSION_KEY);
}

function say(text, ok) {
  const st = $("status");
  st.textContent = text;
  st.className = ok ? "ok" : "";
}

// api sends a request to the member the page came from and returns the
// decoded JSON answer (null for 204); an error answer throws its message.
async function api(method, path, body, auth) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (auth && session) headers["Authorization"] = "Bearer " + session.token;
  const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store" });
  if (resp.status === 204) return null;
  let data = null;
  try {
    data = await resp.json();
  } catch (e) {
    data = null;
  }
  if (!resp.ok) {
    throw new Error((data && data.error) || resp.status + " " + resp.statusText);
  }
  return data;
}

function postItem(p, fresh) {
  const li = document.createElement("li");
  li.dataset.id = p.id;
  if (fresh) li.className = "new";
  const meta = document.createElement("div");
  meta.className = "meta";
  meta.textContent = "@" + p.author + " · " + new Date(p.created).toLocaleString();
  const text = document.createElement("div");
  text.className = "text";
  text.textContent = p.text;
  li.append(meta, text);
  return li;
}

// addToTimeline puts a post in the home timeline in id order (ids sort
// by time), once.
function addToTimeline(p, fresh) {
  if (shown.has(p.id)) return;
  shown.add(p.id);
  const list = $("timeline");
  const li = postItem(p, fresh);
  for (const other of list.children) {
    if (other.dataset.id < p.id) {
      list.insertBefore(li, other);
      return;
    }
  }
  list.append(li);
}

function render() {
  const signedIn = !!session;
  $("whoami").textContent = signedIn ? "Signed in as @" + session.name : "Not signed in.";
  $("signout-btn").hidden = !signedIn;
  $("compose").hidden = !signedIn;
  $("home").hidden = !signedIn;
  $("account").hidden = signedIn && $("token-once").hidden;
}

async function loadTimeline(more) {
  if (!session) return;
  const q = new URLSearchParams({ limit: "20" });
  if (more && timelineNext) q.set("before", timelineNext);
  const page = await api("GET", "/v1/users/" + session.name + "/timeline?" + q, undefined, true);
  for (const p of page.posts) addToTimeline(p, false);
  timelineNext = page.next;
  $("timeline-more").hidden = !page.next;
}

function setLive(on) {
  const l = $("live");
  l.textContent = on ? "live" : "offline";
  l.className = on ? "on" : "off";
}

// streamTimeline reads the live timeline (server-sent events) with
// fetch(), so the token goes in the Authorization header, and reconnects
// with Last-Event-ID after the newest event seen.
async function streamTimeline(name, signal) {
  let lastId = "";
  let retry = 2000;
  while (!signal.aborted) {
    try {
      const headers = { Authorization: "Bearer " + session.token, Accept: "text/event-stream" };
      if (lastId) headers["Last-Event-ID"] = lastId;
      const resp = await fetch("/v1/users/" + name + "/timeline/stream", { headers, signal, cache: "no-store" });
      if (!resp.ok) {
        let msg = resp.status + " " + resp.statusText;
        try { msg = (await resp.json()).error || msg; } catch (e) { /* not JSON */ }
        throw new Error(msg);
      }
      setLive(true);
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const ev = { id: "", data: [] };
          for (const line of block.split("\n")) {
            if (line === "" || line.startsWith(":")) continue;
            const colon = line.indexOf(":");
            const field = colon < 0 ? line : line.slice(0, colon);
            let val = colon < 0 ? "" : line.slice(colon + 1);
            if (val.startsWith(" ")) val = val.slice(1);
            if (field === "id") ev.id = val;
            else if (field === "data") ev.data.push(val);
            else if (field === "retry" && /^\d+$/.test(val)) retry = Number(val);
          }
          if (ev.id) lastId = ev.id;
          if (ev.data.length) {
            try {
              addToTimeline(JSON.parse(ev.data.join("\n")), true);
            } catch (e) {
              say("a timeline event could not be read: " + e.message);
            }
          }
        }
      }
    } catch (e) {
      if (signal.aborted) return;
      say("live timeline: " + e.message + " (reconnecting)");
    }
    setLive(false);
    if (!lastId && $("timeline").firstElementChild) lastId = $("timeline").firstElementChild.dataset.id;
    await new Promise((r) => setTimeout(r, retry));
  }
}

async function startHome() {
  if (streamAbort) streamAbort.abort();
  $("timeline").replaceChildren();
  shown.clear();
  setLive(false);
  render();
  if (!session) return;
  streamAbort = new AbortController();
  // Stream first, then read: an entry made in between shows once.
  streamTimeline(session.name, streamAbort.signal);
  try {
    await loadTimeline(false);
  } catch (e) {
    say("timeline: " + e.message);
  }
}

function guard(fn) {
  return async (ev) => {
    if (ev) ev.preventDefault();
    try {
      await fn();
    } catch (e) {
      say(e.message);
    }
  };
}

$("signup-form").addEventListener("submit", guard(async () => {
  const name = $("signup-name").value.trim();
  const ans = await api("POST", "/v1/users", { name });
  saveSession({ name: ans.name, token: ans.token });
  $("token-value").textContent = ans.token;
  $("token-once").hidden = false;
  $("signup-name").value = "";
  say("Welcome, @" + ans.name + ".", true);
  await startHome();
}));

$("signin-form").addEventListener("submit", guard(async () => {
  const s = { name: $("signin-name").value.trim(), token: $("signin-token").value.trim() };
  saveSession(s);
  try {
    // Any authorised read checks the token.
    await api("GET", "/v1/users/" + s.name + "/timeline?limit=1", undefined, true);
  } catch (e) {
    saveSession(null);
    throw e;
  }
  $("signin-token").value = "";
  say("Signed in as @" + s.name + ".", true);
  await startHome();
}));

$("signout-btn").addEventListener("click", guard(async () => {
  saveSession(null);
  $("token-once").hidden = true;
  $("token-value").textContent = "";
  say("Signed out.", true);
  await startHome();
}));

$("post-form").addEventListener("submit", guard(async () => {
  const text = $("post-text").value;
  const p = await api("POST", "/v1/users/" + session.name + "/posts", { text }, true);
  $("post-text").value = "";
  addToTimeline(p, true);
  say("Posted.", true);
}));

async function follow(method) {
  const other = $("follow-name").value.trim();
  await api(method, "/v1/users/" + session.name + "/following/" + other, undefined, true);
  say((method === "PUT" ? "Following @" : "Unfollowed @") + other + ".", true);
  $("follow-name").value = "";
}
$("follow-form").addEventListener("submit", guard(async () => {
  await follow("PUT");
  await loadTimeline(false);
}));
$("unfollow-btn").addEventListener("click", guard(async () => {
  await follow("DELETE");
  await startHome();
}));

// A new token for this browser: the old one is revoked (or, with the
// box ticked, every other token of the user), on every member.
$("rotate-form").addEventListener("submit", guard(async () => {
  const body = $("rotate-others").checked ? { revoke_others: true } : { revoke_current: true };
  const ans = await api("POST", "/v1/users/" + session.name + "/tokens", body, true);
  saveSession({ name: ans.name, token: ans.token });
  $("token-value").textContent = ans.token;
  $("token-once").hidden = false;
  $("rotate-others").checked = false;
  say("New token issued; the old one is revoked.", true);
  await startHome(); // the live stream reconnects with the new token
}));

$("timeline-more").addEventListener("click", guard(() => loadTimeline(true)));

async function loadFeed(more) {
  const q = new URLSearchParams({ limit: "20" });
  if (more && feedNext) q.set("before", feedNext);
  const page = await api("GET", "/v1/users/" + feedUser + "/posts?" + q);
  if (!more) $("feed-posts").replaceChildren();
  for (const p of page.posts) $("feed-posts").append(postItem(p, false));
  feedNext = page.next;
  $("feed-more").hidden = !page.next;
}
$("feed-form").addEventListener("submit", guard(async () => {
  feedUser = $("feed-name").value.trim();
  await loadFeed(false);
}));
$("feed-more").addEventListener("click", guard(() => loadFeed(true)));

startHome();
