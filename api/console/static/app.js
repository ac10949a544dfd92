// The API Keys settings screen: sign in with an admin key, list, create,
// rotate and revoke keys, and look at a key's usage. Everything is built
// with DOM methods and textContent; nothing from the API becomes HTML.

import { api, APIError, forgetKey, saveKey, savedKey } from "./api.js";
import { fillDays, lastDays, renderChart } from "./chart.js";

const $ = (id) => document.getElementById(id);
const state = { me: null, keys: [], search: "", routeSeq: 0, current: null };

// ---- small helpers ---------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    if (k === "class") e.className = v;
    else if (k === "dataset") Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

const rtf = new Intl.RelativeTimeFormat("en", { numeric: "auto" });
const units = [
  ["year", 365 * 86400], ["month", 30 * 86400], ["week", 7 * 86400],
  ["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1],
];

function relative(date) {
  const secs = (date.getTime() - Date.now()) / 1000;
  for (const [unit, size] of units) {
    if (Math.abs(secs) >= size || unit === "second") {
      return rtf.format(Math.round(secs / size), unit);
    }
  }
  return "";
}

// when renders a time as a relative <time> with the exact time as a tooltip.
function when(iso, none = "—") {
  if (!iso) return h("span", { class: "muted" }, none);
  const d = new Date(iso);
  return h("time", { datetime: d.toISOString(), title: d.toLocaleString() }, relative(d));
}

function filterText(filter) {
  const entries = Object.entries(filter || {});
  return entries.length ? entries.map(([k, v]) => `${k}=${v}`).join(", ") : "";
}

function rateText(rl) {
  return rl ? String(rl) : "default";
}

function badge(status) {
  return h("span", { class: "badge status-" + status, dataset: { status } }, status);
}

function scopesList(scopes) {
  return h("ul", { class: "chips" }, (scopes || []).map((s) => h("li", {}, s)));
}

function show(view) {
  for (const name of ["signin", "list", "detail"]) {
    $("view-" + name).hidden = name !== view;
  }
}

function showError(err, target = $("error")) {
  let text;
  if (err instanceof APIError) {
    text = err.message + (err.status ? ` (${err.code}, HTTP ${err.status})` : "");
  } else {
    text = "Something went wrong in the page: " + (err && err.message ? err.message : String(err));
    console.error(err);
  }
  target.textContent = text;
  target.hidden = false;
}

function clearError(target = $("error")) {
  target.textContent = "";
  target.hidden = true;
}

let flashTimer = 0;
function flash(text) {
  const f = $("flash");
  f.textContent = text;
  f.hidden = false;
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => { f.hidden = true; }, 8000);
}

// guard runs an API call for the page. A rejected admin key (401, or 410
// when it was revoked or has expired) signs the user out with the reason.
async function guard(fn, target) {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof APIError && (err.status === 401 || err.status === 410)) {
      signOut("Your admin key was refused: " + err.message);
      return undefined;
    }
    showError(err, target);
    return undefined;
  }
}

function hasScope(scope) {
  return !!state.me && (state.me.key.scopes || []).includes(scope);
}

// ---- sign in / out ----------------------------------------------------------

async function signIn(event) {
  event.preventDefault();
  clearError();
  const input = $("signin-key");
  const key = input.value.trim();
  if (!key) {
    showError(new APIError(0, "missing_key", "Paste an admin key to sign in."));
    input.focus();
    return;
  }
  let me;
  try {
    me = await api.me(key);
  } catch (err) {
    showError(err);
    return;
  }
  if (!(me.key.scopes || []).includes("admin:keys")) {
    showError(new APIError(403, "forbidden",
      `The key “${me.key.name}” lacks the admin:keys scope, so it cannot manage keys. Sign in with an admin key.`));
    return;
  }
  input.value = "";
  saveKey(key);
  setMe(me);
  if (!location.hash.startsWith("#/keys")) location.hash = "#/keys";
  else route();
}

function setMe(me) {
  state.me = me;
  $("whoami-text").textContent = `${me.workspace.name} · signed in as “${me.key.name}” (${me.key.prefix}…)`;
  $("whoami").hidden = false;
}

function signOut(reason) {
  forgetKey();
  state.me = null;
  state.keys = [];
  $("keys-body").replaceChildren();
  $("logs-body").replaceChildren();
  $("chart").replaceChildren();
  $("whoami").hidden = true;
  for (const d of document.querySelectorAll("dialog[open]")) d.close();
  clearError();
  show("signin");
  if (reason) showError(new APIError(0, "", reason));
  else flash("Signed out. The admin key was removed from this tab.");
  $("signin-key").focus();
}

// ---- routing ----------------------------------------------------------------

async function route() {
  const seq = ++state.routeSeq;
  clearError();
  if (!savedKey()) {
    show("signin");
    return;
  }
  if (!state.me) {
    const me = await guard(() => api.me());
    if (!me || seq !== state.routeSeq) return;
    setMe(me);
  }
  const m = location.hash.match(/^#\/keys\/([^/]+)$/);
  if (m) {
    await showDetail(decodeURIComponent(m[1]), seq);
  } else {
    await showList(seq);
  }
}

// ---- key list ----------------------------------------------------------------

async function showList(seq) {
  show("list");
  state.current = null;
  const res = await guard(() => api.listKeys());
  if (!res || seq !== state.routeSeq) return;
  state.keys = res.data || [];
  renderList();
}

function matches(k, q) {
  if (!q) return true;
  const hay = [k.name, k.prefix, k.status, filterText(k.filter), ...(k.scopes || [])].join(" ").toLowerCase();
  return hay.includes(q);
}

function renderList() {
  const q = state.search.trim().toLowerCase();
  const rows = state.keys.filter((k) => matches(k, q)).map((k) => {
    const self = state.me && k.id === state.me.key.id;
    const usable = k.status === "active" || k.status === "expiring";
    const rotate = h("button", { type: "button", class: "secondary small", disabled: !usable,
      "aria-label": `Rotate ${k.name}` }, "Rotate");
    rotate.addEventListener("click", () => openRotate(k));
    const revoke = h("button", { type: "button", class: "danger small", disabled: k.status === "revoked",
      "aria-label": `Revoke ${k.name}` }, "Revoke");
    revoke.addEventListener("click", () => openRevoke(k));
    return h("tr", { dataset: { keyId: k.id, name: k.name } },
      h("th", { scope: "row" },
        h("a", { href: "#/keys/" + encodeURIComponent(k.id) }, k.name),
        self ? h("span", { class: "tag" }, "this key") : null),
      h("td", {}, h("code", {}, k.prefix + "…")),
      h("td", {}, scopesList(k.scopes)),
      h("td", {}, filterText(k.filter) ? h("code", {}, filterText(k.filter)) : h("span", { class: "muted" }, "—")),
      h("td", {}, rateText(k.rate_limit)),
      h("td", { class: "status" }, badge(k.status)),
      h("td", {}, when(k.expires_at, "never")),
      h("td", {}, when(k.last_used_at, "never")),
      h("td", { class: "num" }, String(k.requests_7d ?? 0)),
      h("td", { class: "row-actions" }, rotate, revoke));
  });
  $("keys-body").replaceChildren(...rows);
  $("keys-empty").hidden = rows.length > 0;
}

// ---- create -------------------------------------------------------------------

function openCreate() {
  const form = $("create-form");
  form.reset();
  clearError($("create-error"));
  $("create-date-wrap").hidden = true;
  const scopes = [...(state.me.key.scopes || [])].sort();
  $("create-scopes").replaceChildren(...scopes.map((s) => {
    const id = "scope-" + s.replace(/[^a-z0-9]+/gi, "-");
    return h("label", { class: "choice", for: id },
      h("input", { type: "checkbox", id, name: "scope", value: s }), " ", s);
  }));
  $("create-dialog").showModal();
  $("create-name").focus();
}

function parseFilter(text) {
  const filter = {};
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  for (const line of lines) {
    const i = line.indexOf("=");
    if (i <= 0) {
      throw new APIError(0, "bad_request", `Record filter line “${line}” is not field=value.`);
    }
    filter[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return lines.length ? filter : undefined;
}

async function submitCreate(event) {
  event.preventDefault();
  const errBox = $("create-error");
  clearError(errBox);
  const input = { name: $("create-name").value.trim() };
  input.scopes = [...document.querySelectorAll("#create-scopes input:checked")].map((c) => c.value);
  try {
    if (!input.name) throw new APIError(0, "bad_request", "Give the key a name, such as the integration that uses it.");
    if (!input.scopes.length) throw new APIError(0, "bad_request", "Choose at least one scope.");
    const filter = parseFilter($("create-filter").value);
    if (filter) input.filter = filter;
    const expiry = $("create-expiry").value;
    if (expiry === "date") {
      const date = $("create-date").value;
      if (!date) throw new APIError(0, "bad_request", "Choose the expiry date.");
      input.expires_at = date + "T23:59:59Z";
    } else if (expiry) {
      input.expires_in = expiry;
    }
    const rate = $("create-rate").value.trim();
    if (rate) input.rate_limit = rate;
  } catch (err) {
    showError(err, errBox);
    return;
  }
  const res = await guard(() => api.createKey(input), errBox);
  if (!res) return;
  $("create-dialog").close();
  reveal(res.key, `Key “${res.name}” (${res.prefix}…) with ${(res.scopes || []).join(", ")}.`);
  flash(`Key “${res.name}” created.`);
  refresh();
}

// ---- the raw key, once ----------------------------------------------------------

function reveal(raw, about) {
  $("reveal-key").value = raw;
  $("reveal-about").textContent = about;
  $("reveal-copied").textContent = "";
  $("reveal-dialog").showModal();
  $("reveal-key").select();
}

async function copyKey() {
  const input = $("reveal-key");
  let ok = false;
  try {
    await navigator.clipboard.writeText(input.value);
    ok = true;
  } catch {
    input.select();
    ok = document.execCommand && document.execCommand("copy");
  }
  $("reveal-copied").textContent = ok ? "Copied to the clipboard." : "Copy failed: select the key and copy it by hand.";
}

function forgetRevealed() {
  $("reveal-key").value = "";
  $("reveal-about").textContent = "";
  $("reveal-copied").textContent = "";
}

// ---- revoke -------------------------------------------------------------------

function openRevoke(k) {
  state.pending = k;
  clearError($("revoke-error"));
  $("revoke-title").textContent = `Revoke “${k.name}”?`;
  $("revoke-text").textContent = `Every request with the key ${k.prefix}… will be refused from now on ` +
    "(HTTP 410). Integrations that use it stop working. This cannot be undone." +
    (state.me && k.id === state.me.key.id ? " It is the key you are signed in with: you will be signed out." : "");
  $("revoke-dialog").showModal();
  $("revoke-dialog").querySelector("[data-close]").focus();
}

async function confirmRevoke() {
  const k = state.pending;
  if (!k) return;
  const btn = $("revoke-confirm");
  btn.disabled = true;
  const res = await guard(() => api.revokeKey(k.id), $("revoke-error"));
  btn.disabled = false;
  if (!res) return;
  $("revoke-dialog").close();
  flash(`Key “${res.name}” revoked.`);
  refresh();
}

// ---- rotate -------------------------------------------------------------------

function openRotate(k) {
  state.pending = k;
  $("rotate-form").reset();
  clearError($("rotate-error"));
  $("rotate-title").textContent = `Rotate “${k.name}”`;
  $("rotate-text").textContent = `A new key with the same name, scopes, record filter and rate limit replaces ` +
    `${k.prefix}…. Choose how long the old key keeps working, so integrations can switch over.`;
  $("rotate-dialog").showModal();
}

async function submitRotate(event) {
  event.preventDefault();
  const k = state.pending;
  if (!k) return;
  const overlap = new FormData($("rotate-form")).get("overlap") || "7d";
  const res = await guard(() => api.rotateKey(k.id, overlap), $("rotate-error"));
  if (!res) return;
  $("rotate-dialog").close();
  const old = res.old_key || {};
  const oldText = overlap === "now" || old.status === "expired"
    ? `The old key ${old.prefix || k.prefix}… no longer works.`
    : `The old key ${old.prefix || k.prefix}… works until ${new Date(old.expires_at).toLocaleString()}.`;
  reveal(res.key, `New key for “${res.name}” (${res.prefix}…). ${oldText}`);
  flash(`Key “${res.name}” rotated.`);
  if (state.current) location.hash = "#/keys/" + encodeURIComponent(res.id);
  else refresh();
}

// ---- detail -------------------------------------------------------------------

async function showDetail(id, seq) {
  show("detail");
  $("detail-title").textContent = "Key";
  $("detail-fields").replaceChildren();
  $("chart").replaceChildren(h("p", { class: "muted" }, "Loading…"));
  $("chart-note").textContent = "";
  $("logs-body").replaceChildren();
  $("logs-empty").hidden = true;

  const k = await guard(() => api.getKey(id));
  if (!k || seq !== state.routeSeq) return;
  state.current = k;
  $("detail-title").replaceChildren(k.name + " ", badge(k.status));
  $("detail-rotate").disabled = !(k.status === "active" || k.status === "expiring");
  $("detail-revoke").disabled = k.status === "revoked";

  const fields = [
    ["Prefix", h("code", {}, k.prefix + "…")],
    ["Id", h("code", {}, k.id)],
    ["Scopes", scopesList(k.scopes)],
    ["Record filter", filterText(k.filter) ? h("code", {}, filterText(k.filter)) : "none"],
    ["Rate limit", rateText(k.rate_limit)],
    ["Created", when(k.created_at)],
    ["Expires", when(k.expires_at, "never")],
    ["Revoked", when(k.revoked_at, "no")],
    ["Last used", when(k.last_used_at, "never")],
    ["Requests (7 days)", String(k.requests_7d ?? 0)],
  ];
  $("detail-fields").replaceChildren(...fields.flatMap(([dt, dd]) => [h("dt", {}, dt), h("dd", {}, dd)]));

  if (!hasScope("read:usage")) {
    $("chart").replaceChildren();
    $("chart-note").textContent = "Usage needs the read:usage scope, which your admin key does not have.";
    return;
  }
  const days = lastDays(30);
  const from = days[0] + "T00:00:00Z";
  const [counts, logs] = await Promise.all([
    guard(() => api.usageByDay(k.id, from)),
    guard(() => api.usageLogs(k.id, 20)),
  ]);
  if (seq !== state.routeSeq) return;
  if (counts) {
    const points = fillDays(days, counts.data || []);
    const { total, errors } = renderChart($("chart"), points);
    $("chart-note").textContent = `${total} requests, ${errors} errors since ${days[0]} (UTC days).`;
    $("chart-table").tBodies[0].replaceChildren(...points.slice().reverse().map((p) =>
      h("tr", {}, h("td", {}, p.day), h("td", { class: "num" }, String(p.count)), h("td", { class: "num" }, String(p.errors)))));
  } else {
    $("chart").replaceChildren();
  }
  if (logs) {
    const entries = logs.data || [];
    $("logs-body").replaceChildren(...entries.map((e) =>
      h("tr", {},
        h("td", {}, when(e.time)),
        h("td", {}, e.method),
        h("td", {}, h("code", {}, e.route)),
        h("td", { class: "num" }, h("span", { class: e.status >= 400 ? "code-error" : "code-ok" }, String(e.status))),
        h("td", { class: "num" }, `${Number(e.duration_ms).toFixed(1)} ms`),
        h("td", {}, e.transport),
        h("td", {}, h("code", { class: "small" }, e.request_id)))));
    $("logs-empty").hidden = entries.length > 0;
  }
}

function refresh() {
  route();
}

// ---- wiring -------------------------------------------------------------------

function init() {
  $("signin-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", () => signOut());
  $("refresh").addEventListener("click", refresh);
  $("new-key").addEventListener("click", openCreate);
  $("list-search").addEventListener("input", (e) => {
    state.search = e.target.value;
    renderList();
  });
  $("create-form").addEventListener("submit", submitCreate);
  $("create-expiry").addEventListener("change", (e) => {
    $("create-date-wrap").hidden = e.target.value !== "date";
  });
  $("reveal-copy").addEventListener("click", copyKey);
  $("reveal-done").addEventListener("click", () => {
    forgetRevealed();
    $("reveal-dialog").close();
  });
  // The raw key leaves the page as soon as its dialog closes; Escape does
  // not close it, so that it is not dismissed by accident.
  $("reveal-dialog").addEventListener("cancel", (e) => e.preventDefault());
  $("reveal-dialog").addEventListener("close", forgetRevealed);
  $("revoke-confirm").addEventListener("click", confirmRevoke);
  $("rotate-form").addEventListener("submit", submitRotate);
  $("detail-revoke").addEventListener("click", () => state.current && openRevoke(state.current));
  $("detail-rotate").addEventListener("click", () => state.current && openRotate(state.current));
  for (const b of document.querySelectorAll("[data-close]")) {
    b.addEventListener("click", () => b.closest("dialog").close());
  }
  window.addEventListener("hashchange", route);
  route();
}

init();
