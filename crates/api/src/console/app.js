// The Tollgate console: a single-page app over the management API. Every
// call goes through `call(operationId, …)`, resolved by the client the
// gateway generates from its OpenAPI document (client.js). What a caller
// sees follows its role exactly as the API decides it: the platform admin
// (admin token or platform_admin user) manages everything; an org_admin its
// organization; an org_member reads its organization, keys and usage.

import { operations } from "./client.js";

// ------------------------------------------------------------------ state

const session = {
  token: sessionStorage.getItem("tollgate.token"),
  role: sessionStorage.getItem("tollgate.role"),
  org: sessionStorage.getItem("tollgate.org") || null,
  email: sessionStorage.getItem("tollgate.email") || "",
};

function signIn(token, role, org, email) {
  Object.assign(session, { token, role, org, email });
  sessionStorage.setItem("tollgate.token", token);
  sessionStorage.setItem("tollgate.role", role);
  sessionStorage.setItem("tollgate.email", email || "");
  if (org) sessionStorage.setItem("tollgate.org", org);
  else sessionStorage.removeItem("tollgate.org");
}

function signOut() {
  sessionStorage.clear();
  Object.assign(session, { token: null, role: null, org: null, email: "" });
  location.hash = "#/signin";
  route();
}

const isPlatform = () => session.role === "platform_admin";
const isOrgAdmin = (org) => isPlatform() || (session.role === "org_admin" && session.org === org);

// ------------------------------------------------------------- the client

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Calls one operation of the document; answers its JSON (or null). */
async function call(operationId, { path = {}, query = {}, body, raw = false } = {}) {
  const op = operations[operationId];
  if (!op) throw new ApiError(0, `the console asked for an unknown operation: ${operationId}`);
  const [method, template, fields] = op;
  let url = template.replace(/\{(\w+)\}/g, (_, name) => encodeURIComponent(path[name]));
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== "") params.set(k, v);
  if ([...params].length) url += "?" + params;
  const headers = { Authorization: `Bearer ${session.token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, "The gateway could not be reached. Check your connection and try again.");
  }
  if (response.status === 401 && operationId !== "login") {
    signOut();
    throw new ApiError(401, "Your session has ended: sign in again.");
  }
  if (!response.ok) {
    let message = `The gateway answered HTTP ${response.status}.`;
    try {
      const err = await response.json();
      if (err && err.error && err.error.message) message = sentence(err.error.message);
    } catch { /* not JSON: keep the status */ }
    if (response.status === 403) message = `Not allowed: ${message}`;
    throw new ApiError(response.status, message);
  }
  if (raw) return response;
  if (response.status === 204) return null;
  const answer = await response.json();
  checkAnswer(operationId, fields, answer);
  return answer;
}

/** The console reads answers by the fields the document lists: an answer
 * with a field more or less than its schema is a wrong document, said on the
 * browser's console (the browser test fails on it). */
function checkAnswer(operationId, fields, answer) {
  if (!fields.length || answer === null || typeof answer !== "object" || Array.isArray(answer)) return;
  const missing = fields.filter((f) => !(f in answer));
  const extra = Object.keys(answer).filter((k) => !fields.includes(k));
  if (missing.length || extra.length) {
    console.error(`${operationId}: the answer does not match the OpenAPI document (missing: ${missing.join(", ") || "none"}; not documented: ${extra.join(", ") || "none"})`);
  }
}

const sentence = (s) => (s ? s[0].toUpperCase() + s.slice(1) + (/[.!?]$/.test(s) ? "" : ".") : s);

// -------------------------------------------------------------- DOM bits

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

const main = () => document.getElementById("main");

function show(...nodes) {
  main().replaceChildren(...nodes);
}

function banner(message, ok = false) {
  const el = document.getElementById("banner");
  el.textContent = message || "";
  el.className = ok ? "ok" : "";
  el.hidden = !message;
}

/** Runs an action, showing its error in words instead of failing silently
 * (and `done`, when given, once it succeeds). */
async function attempt(action, done) {
  try {
    const result = await action();
    if (done) banner(done, true);
    return result;
  } catch (e) {
    banner(e instanceof ApiError ? e.message : `Something went wrong: ${e.message}`);
    return undefined;
  }
}

function field(label, name, attrs = {}) {
  return h("label", {}, label, h("input", { name, ...attrs }));
}

function select(label, name, options, value) {
  return h("label", {}, label, h("select", { name },
    options.map(([v, text]) => h("option", { value: v, selected: v === value }, text))));
}

function form(children, submit, label) {
  const f = h("form", { class: "inline" }, children, h("button", { type: "submit" }, label));
  f.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const values = Object.fromEntries(new FormData(f).entries());
    for (const box of f.querySelectorAll("input[type=checkbox]")) values[box.name] = box.checked;
    await submit(values, f);
  });
  return f;
}

function table(headers, rows, empty) {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h("div", { class: "scroll" }, h("table", {},
    h("thead", {}, h("tr", {}, headers.map(([text, cls]) => h("th", { class: cls }, text)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c, i) => h("td", { class: headers[i][1] }, c)))))));
}

const int = (v) => (v === "" || v === undefined ? undefined : Number.parseInt(v, 10));
const when = (secs) => (secs ? new Date(secs * 1000).toISOString().replace("T", " ").slice(0, 16) : "—");
const unitName = { usd_micros: "USD", tokens: "tokens", requests: "requests" };
const unitOf = (org) => ({ usd: "usd_micros", tokens: "tokens", requests: "requests" })[org.billing_mode];

function amount(value, unit) {
  if (value === null || value === undefined) return "—";
  if (unit === "usd_micros") {
    const dollars = Math.abs(value / 1e6).toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 6 });
    return `${value < 0 ? "-" : ""}$${dollars}`;
  }
  return `${value.toLocaleString()} ${unitName[unit] || unit}`;
}

function secretBox(what, value) {
  const copy = h("button", { type: "button", class: "plain", onclick: async () => {
    try { await navigator.clipboard.writeText(value); copy.textContent = "Copied"; } catch { copy.textContent = "Select and copy it"; }
  } }, "Copy");
  return h("div", { class: "secret", "data-secret": what }, h("span", {}, `${what} (shown only now):`), h("code", {}, value), copy);
}

/** A list with "Older" / "Newest" buttons over `next_cursor`. */
function pager(load, render) {
  const box = h("div");
  const stack = [];
  async function go(cursor) {
    const page = await attempt(() => load(cursor));
    if (!page) return;
    const buttons = h("div", { class: "pager" },
      stack.length ? h("button", { class: "plain", type: "button", onclick: () => { stack.length = 0; go(undefined); } }, "Newest") : null,
      page.has_more ? h("button", { class: "plain", type: "button", onclick: () => { stack.push(cursor); go(page.next_cursor); } }, "Older") : null);
    box.replaceChildren(render(page), buttons);
  }
  go(undefined);
  return box;
}

// ---------------------------------------------------------------- routes

function nav() {
  const here = location.hash;
  const link = (href, text) => h("a", { href, class: here.startsWith(href) ? "on" : "" }, text);
  const items = [];
  if (session.token) {
    if (isPlatform()) items.push(link("#/orgs", "Organizations"), link("#/catalog", "Model catalog"), link("#/users", "Users"));
    else if (session.org) items.push(link(`#/org/${session.org}`, "My organization"));
    items.push(h("a", { href: "#/signin", onclick: (e) => { e.preventDefault(); signOut(); } }, "Sign out"));
  }
  document.getElementById("nav").replaceChildren(...items);
  document.getElementById("who").textContent = session.token ? `${session.email || "admin token"} · ${session.role}` : "";
}

/** A success message for the page the next `route()` draws (drawing a
 * page clears the banner). */
let flash = null;

function reroute(message, hash) {
  flash = message;
  if (hash && location.hash !== hash) location.hash = hash; // hashchange routes
  else route();
}

async function route() {
  banner(flash || "", Boolean(flash));
  flash = null;
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean);
  if (!session.token) {
    nav();
    return signInPage();
  }
  if (!parts.length) {
    location.hash = isPlatform() ? "#/orgs" : `#/org/${session.org}`;
    return;
  }
  nav();
  const [page, id, tab] = parts;
  const adminOnly = ["orgs", "catalog", "users"];
  if (adminOnly.includes(page) && !isPlatform()) {
    return show(h("h1", {}, "Not allowed"), h("p", { class: "empty", id: "forbidden" },
      "This page is for platform admins. Your role does not allow it."));
  }
  if (page === "orgs") return organizationsPage();
  if (page === "catalog") return catalogPage();
  if (page === "users") return usersPage();
  if (page === "org" && id) return organizationPage(id, tab || "overview");
  if (page === "signin") return signInPage();
  show(h("h1", {}, "Not found"), h("p", { class: "empty" }, "There is no such page."));
}

// --------------------------------------------------------------- sign-in

function signInPage() {
  show(
    h("h1", {}, "Sign in"),
    h("section", { class: "card" }, h("h2", {}, "With your email"),
      form([field("Email", "email", { type: "email", required: true, autocomplete: "username" }),
        field("Password", "password", { type: "password", required: true, autocomplete: "current-password" })],
      async (v) => {
        session.token = null;
        const token = await attempt(() => call("login", { body: { email: v.email, password: v.password } }));
        if (!token) return;
        const claims = JSON.parse(atob(token.access_token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
        signIn(token.access_token, claims.role, claims.org || null, v.email);
        location.hash = "#/";
      }, "Sign in")),
    h("section", { class: "card" }, h("h2", {}, "With the admin token"),
      form([field("Admin token", "token", { type: "password", required: true })], async (v) => {
        signIn(v.token, "platform_admin", null, "");
        const ok = await attempt(() => call("listOrganizations", { query: { limit: 1 } }));
        if (!ok) return signOut();
        location.hash = "#/orgs";
      }, "Sign in")));
}

// -------------------------------------------------------- organizations

function organizationsPage() {
  const list = pager((before) => call("listOrganizations", { query: { before, limit: 20 } }), (page) =>
    table([["Name"], ["Id", "opt"], ["Billing"], ["State"], ["Created", "opt"]], page.data.map((o) => [
      h("a", { href: `#/org/${o.id}` }, o.name), o.id, o.billing_mode,
      o.suspended ? h("span", { class: "badge off" }, "suspended") : h("span", { class: "badge" }, "active"),
      when(o.created_at)]), "No organizations yet: create the first one above."));
  show(h("h1", {}, "Organizations"),
    h("section", { class: "card" }, h("h2", {}, "New organization"),
      form([field("Name", "name", { required: true, maxlength: 200 }),
        select("Billing mode", "billing_mode", [["usd", "USD"], ["tokens", "Tokens"], ["requests", "Requests"]], "usd")],
      async (v) => {
        const org = await attempt(() => call("createOrganization", { body: { name: v.name, billing_mode: v.billing_mode } }));
        if (org) location.hash = `#/org/${org.id}`;
      }, "Create")),
    h("section", { class: "card" }, list));
}

async function organizationPage(orgId, tab) {
  if (!isPlatform() && orgId !== session.org) {
    return show(h("h1", {}, "Not allowed"), h("p", { class: "empty", id: "forbidden" }, "You can see only your own organization."));
  }
  const org = await attempt(() => call("getOrganization", { path: { org_id: orgId } }));
  if (!org) return show(h("h1", {}, "Organization"), h("p", { class: "empty" }, "This organization could not be read."));
  const admin = isOrgAdmin(orgId);
  const tabs = [["overview", "Overview"], ["keys", "API keys"], ["usage", "Usage"], ["requests", "Requests"]];
  if (admin) tabs.splice(1, 0, ["credits", "Credits"]);
  if (admin) tabs.push(["byok", "Provider keys"], ["members", "Members"], ["webhooks", "Webhooks"]);
  if (!tabs.some(([t]) => t === tab)) {
    return show(h("h1", {}, org.name), h("p", { class: "empty", id: "forbidden" }, "Not allowed: your role does not include this page."),
      h("a", { href: `#/org/${orgId}` }, "Back to the organization"));
  }
  const body = h("div");
  show(h("h1", {}, org.name, " ", org.suspended ? h("span", { class: "badge off" }, "suspended") : null),
    h("nav", { class: "tabs" }, tabs.map(([t, text]) => h("a", { href: `#/org/${orgId}/${t}`, class: t === tab ? "on" : "" }, text))),
    body);
  const views = { overview, credits, keys, usage, requests, byok, members, webhooks };
  await views[tab](org, body, admin);
}

async function overview(org, body, admin) {
  const unit = unitOf(org);
  const facts = [["Id", org.id], ["Billing mode", org.billing_mode], ["Default power level", org.default_power_level || "balanced"],
    ["Markup", `${org.markup_percent}%`], ["Overdraft limit", amount(org.overdraft_limit, unit)],
    ["Allowed models", org.allowed_models ? org.allowed_models.join(", ") : "all"],
    ["Rate limits", `rpm ${org.rpm_limit ?? "default"} · tpm ${org.tpm_limit ?? "default"} · concurrency ${org.max_concurrency ?? "default"}`],
    ["Created", when(org.created_at)]];
  body.append(h("section", { class: "card" }, table([["Setting"], ["Value"]], facts, "")));
  if (admin) {
    const fields = [field("Name", "name", { value: org.name, maxlength: 200 }),
      select("Default power level", "default_power_level", [["", "balanced (default)"], ["eco", "eco"], ["balanced", "balanced"], ["precision", "precision"]], org.default_power_level || "")];
    if (isPlatform()) {
      fields.push(field("Markup %", "markup_percent", { type: "number", min: 0, max: 1000, value: org.markup_percent }),
        field("Overdraft limit", "overdraft_limit", { type: "number", min: 0, value: org.overdraft_limit }),
        field("Requests/min", "rpm_limit", { type: "number", min: 1, value: org.rpm_limit ?? "" }),
        field("Tokens/min", "tpm_limit", { type: "number", min: 1, value: org.tpm_limit ?? "" }));
    }
    body.append(h("section", { class: "card" }, h("h2", {}, "Settings"), form(fields, async (v) => {
      const change = { name: v.name, default_power_level: v.default_power_level || null };
      if (isPlatform()) Object.assign(change, { markup_percent: int(v.markup_percent), overdraft_limit: int(v.overdraft_limit),
        rpm_limit: int(v.rpm_limit) ?? null, tpm_limit: int(v.tpm_limit) ?? null });
      if (await attempt(() => call("updateOrganization", { path: { org_id: org.id }, body: change }))) reroute("Settings saved.");
    }, "Save")));
  }
  if (isPlatform()) {
    body.append(h("section", { class: "card" }, h("h2", {}, "Danger zone"), h("div", { class: "pager" },
      h("button", { class: "plain", type: "button", onclick: async () => {
        if (await attempt(() => call(org.suspended ? "resumeOrganization" : "suspendOrganization", { path: { org_id: org.id } }))) {
          reroute(org.suspended ? "Resumed." : "Suspended: its keys are refused within a second.");
        }
      } }, org.suspended ? "Resume" : "Suspend"),
      h("button", { class: "danger", type: "button", onclick: async () => {
        if (!confirm(`Delete ${org.name}? Its keys stop working at once.`)) return;
        const gone = await attempt(() => call("deleteOrganization", { path: { org_id: org.id } }));
        if (gone) reroute(`${org.name} deleted; its balance was ${amount(gone.balance, gone.unit)}.`, "#/orgs");
      } }, "Delete"))));
  }
}

async function credits(org, body) {
  const balance = await attempt(() => call("getCredits", { path: { org_id: org.id } }));
  if (balance) {
    body.append(h("div", { class: "stats", id: "balance" },
      h("div", { class: "stat" }, "Balance", h("b", { "data-value": balance.balance }, amount(balance.balance, balance.unit))),
      h("div", { class: "stat" }, "Reserved", h("b", {}, amount(balance.reserved, balance.unit))),
      h("div", { class: "stat" }, "Overdraft limit", h("b", {}, amount(balance.overdraft_limit, balance.unit)))));
  }
  if (isPlatform()) {
    body.append(h("section", { class: "card" }, h("h2", {}, "Grant credits"),
      h("p", { class: "muted" }, balance && balance.unit === "usd_micros" ? "In micro-dollars (1 USD = 1 000 000)." : `In ${balance ? unitName[balance.unit] : "the organization's unit"}.`),
      form([field("Amount", "amount", { type: "number", min: 1, required: true }), field("Reason", "reason", { maxlength: 4096 })],
        async (v) => {
          const body_ = { amount: int(v.amount), reason: v.reason || undefined, idempotency_key: `console-${crypto.randomUUID()}` };
          if (await attempt(() => call("grantCredits", { path: { org_id: org.id }, body: body_ }))) reroute("Credits granted.");
        }, "Grant")));
  }
  body.append(h("section", { class: "card" }, h("h2", {}, "Ledger"),
    pager((before) => call("listCreditTransactions", { path: { org_id: org.id }, query: { before, limit: 25 } }), (page) =>
      table([["When"], ["Kind"], ["Amount"], ["Balance after"], ["Reason / request", "opt"]], page.data.map((e) => [
        when(e.created_at), e.kind, amount(e.amount, page.unit), amount(e.balance_after, page.unit), e.reason || e.request_id || ""]),
      "No ledger entries yet."))));
}

async function keys(org, body, admin) {
  const reveal = h("div");
  const list = h("div");
  function load() {
    list.replaceChildren(pager((before) => call("listApiKeys", { path: { org_id: org.id }, query: { before, limit: 25 } }), (page) =>
      table([["Name"], ["Prefix", "opt"], ["Limits", "opt"], ["Budget"], ["State"], [""]], page.data.map((k) => [
      k.name, h("code", {}, k.key_prefix),
      `rpm ${k.rpm_limit ?? "—"} · tpm ${k.tpm_limit ?? "—"} · conc ${k.max_concurrency ?? "—"}`,
      k.budget ? `${amount(k.budget.spent, unitOf(org))} of ${amount(k.budget.amount, unitOf(org))} ${k.budget.period}` : "none",
      k.revoked_at ? h("span", { class: "badge off" }, "revoked") : h("span", { class: "badge" }, "active"),
      admin && !k.revoked_at ? h("button", { class: "danger", type: "button", "data-revoke": k.name, onclick: async () => {
        if (await attempt(() => call("revokeApiKey", { path: { org_id: org.id, key_id: k.id } }), `Key ${k.name} revoked.`)) load();
      } }, "Revoke") : ""]), "No API keys yet.")));
  }
  if (admin) {
    body.append(h("section", { class: "card" }, h("h2", {}, "New key"),
      form([field("Name", "name", { required: true }), field("Requests/min", "rpm_limit", { type: "number", min: 1 }),
        field("Tokens/min", "tpm_limit", { type: "number", min: 1 }), field("Concurrency", "max_concurrency", { type: "number", min: 1 }),
        field(unitOf(org) === "usd_micros" ? "Budget (µ$)" : "Budget", "budget", { type: "number", min: 1 }),
        select("Budget period", "period", [["daily", "daily"], ["weekly", "weekly"], ["monthly", "monthly"], ["total", "total"]], "monthly")],
      async (v, f) => {
        const request = { name: v.name, rpm_limit: int(v.rpm_limit), tpm_limit: int(v.tpm_limit), max_concurrency: int(v.max_concurrency),
          budget: v.budget ? { amount: int(v.budget), period: v.period } : undefined };
        const created = await attempt(() => call("createApiKey", { path: { org_id: org.id }, body: request }));
        if (!created) return;
        f.reset();
        reveal.replaceChildren(secretBox("API key", created.key));
        load();
      }, "Create"), reveal));
  }
  body.append(h("section", { class: "card" }, h("h2", {}, "Keys"), list));
  await load();
}

// ------------------------------------------------------------------ usage

/** Horizontal bars, one per group: plain elements, so that the text keeps
 * its size on any screen. */
function barChart(title, rows, value, format) {
  if (!rows.length) return h("div", { class: "chart" }, h("h2", {}, title), h("p", { class: "empty" }, "No usage in this range."));
  const max = Math.max(1, ...rows.map(value));
  return h("div", { class: "chart", "data-chart": title, role: "img", "aria-label": title }, h("h2", {}, title),
    rows.map((row) => h("div", { class: "row" },
      h("span", { class: "label", title: row.key ?? "(no key)" }, row.key ?? "(no key)"),
      h("span", { class: "track" }, h("span", { class: "bar", style: `width: ${Math.max(0.5, (100 * value(row)) / max)}%` })),
      h("span", { class: "value" }, format(value(row))))));
}

async function usage(org, body) {
  const day = 86400000;
  const iso = (ms) => new Date(ms).toISOString().slice(0, 10);
  const today = Date.now();
  const charts = h("div");
  const records = h("div");
  let filter = {};
  async function draw(v) {
    const from = Date.parse(v.from), to = Date.parse(v.to) + day;
    if (Number.isNaN(from) || Number.isNaN(to) || from >= to) return banner("Choose a start day before the end day.");
    filter = { from, to };
    const summary = await attempt(() => call("summarizeUsage", { path: { org_id: org.id }, query: { group_by: v.group_by, ...filter } }));
    if (!summary) return;
    charts.replaceChildren(
      barChart(`Cost by ${v.group_by}`, summary.data, (r) => r.cost, (n) => amount(n, summary.unit)),
      barChart(`Tokens by ${v.group_by}`, summary.data, (r) => r.prompt_tokens + r.completion_tokens, (n) => n.toLocaleString()));
    records.replaceChildren(pager((before) => call("listUsage", { path: { org_id: org.id }, query: { before, limit: 25, ...filter } }), (page) =>
      table([["When"], ["Model"], ["Provider", "opt"], ["Tokens"], ["Cost"], ["BYOK", "opt"], ["Key", "opt"]], page.data.map((r) => [
        when(r.created_at), r.model, r.provider, `${r.prompt_tokens} + ${r.completion_tokens}`, amount(r.cost, page.unit),
        r.byok ? "yes" : "no", r.api_key_id || "—"]), "No calls in this range.")));
  }
  async function exportCsv() {
    const response = await attempt(() => call("exportUsage", { path: { org_id: org.id }, query: filter, raw: true }));
    if (!response) return;
    const link = h("a", { href: URL.createObjectURL(await response.blob()), download: `usage-${org.id}.csv` });
    document.body.append(link);
    link.click();
    link.remove();
  }
  const controls = form([field("From", "from", { type: "date", value: iso(today - 6 * day), required: true }),
    field("To", "to", { type: "date", value: iso(today), required: true }),
    select("Group by", "group_by", [["day", "day"], ["model", "model"], ["api_key", "API key"], ["provider", "provider"]], "day")],
  draw, "Show");
  body.append(h("section", { class: "card" }, controls,
    h("div", { class: "pager" }, h("button", { class: "plain", type: "button", onclick: exportCsv }, "Export CSV"))),
  h("section", { class: "card" }, charts), h("section", { class: "card" }, h("h2", {}, "Calls"), records));
  await draw(Object.fromEntries(new FormData(controls).entries()));
}

// ----------------------------------------------------------- request log

async function requests(org, body) {
  const detail = h("div", { id: "request-detail" });
  async function open(id) {
    const call_ = await attempt(() => call("getRequest", { path: { org_id: org.id, request_id: id } }));
    if (!call_) return;
    detail.replaceChildren(...[h("h2", {}, `Call ${call_.request_id}`),
      call_.error_message ? h("p", { class: "error" }, sentence(call_.error_message)) : null,
      table([["Attempt"], ["Provider"], ["Model", "opt"], ["Outcome"], ["HTTP", "opt"], ["Duration"], ["Error", "opt"]],
        call_.attempts.map((a) => [String(a.attempt), a.provider, a.model, a.status, a.http_status ?? "—", `${a.duration_ms} ms`, a.error || ""]),
        "No provider was called."),
      call_.request_body ? h("details", {}, h("summary", {}, "Request body"), h("pre", {}, call_.request_body)) : null,
      call_.response_body ? h("details", {}, h("summary", {}, "Response body"), h("pre", {}, call_.response_body)) : null].filter(Boolean));
    detail.scrollIntoView();
  }
  body.append(h("section", { class: "card" }, h("h2", {}, "Request log"),
    h("p", { class: "muted" }, "Every call that reached routing, newest first, with its outcome and provider attempts."),
    pager((before) => call("listRequests", { path: { org_id: org.id }, query: { before, limit: 25 } }), (page) =>
      table([["When"], ["Model"], ["Provider", "opt"], ["Status"], ["Tokens", "opt"], ["Cost"], ["Duration", "opt"], [""]], page.data.map((r) => [
        when(r.created_at), r.model || r.requested_model || "—", r.provider || "—",
        h("span", { class: r.status < 400 ? "badge" : "badge off" }, String(r.status)),
        `${r.prompt_tokens} + ${r.completion_tokens}`, amount(r.cost, page.unit), `${r.duration_ms} ms`,
        h("button", { class: "plain", type: "button", "data-request": r.request_id, onclick: () => open(r.request_id) }, "Details")]),
      "No calls logged yet.")),
    detail));
}

// ------------------------------------------------------- provider keys

async function byok(org, body) {
  const catalog = await attempt(() => call("listCatalogModels"));
  const providers = [...new Set((catalog ? catalog.data : []).flatMap((m) => m.deployments.map((d) => d.provider)))].sort();
  const list = h("div");
  async function load() {
    const page = await attempt(() => call("listProviderCredentials", { query: { organization_id: org.id } }));
    if (!page) return;
    list.replaceChildren(table([["Name"], ["Provider"], ["Key"], ["State"], [""]], page.data.map((c) => [
      c.credential_name, c.provider, h("code", {}, `…${c.key_hint}`),
      c.active ? h("span", { class: "badge" }, "active") : h("span", { class: "badge off" }, "inactive"),
      h("span", { class: "pager" },
        h("button", { class: "plain", type: "button", "data-toggle": c.credential_name, onclick: async () => {
          if (await attempt(() => call(c.active ? "deactivateProviderCredential" : "activateProviderCredential", { path: { id: c.id } }),
            c.active ? "Deactivated." : "Activated.")) load();
        } }, c.active ? "Deactivate" : "Activate"),
        h("button", { class: "danger", type: "button", onclick: async () => {
          if (confirm(`Delete ${c.credential_name}?`) && await attempt(() => call("deleteProviderCredential", { path: { id: c.id } }), "Deleted.")) load();
        } }, "Delete"))]), "No provider keys: calls use the platform's keys."));
  }
  body.append(h("section", { class: "card" }, h("h2", {}, "Add a provider key"),
    h("p", { class: "muted" }, "The key is stored encrypted and never shown again, only its last four characters."),
    form([select("Provider", "provider", providers.map((p) => [p, p]), providers[0]),
      field("Name", "credential_name"), field("API key", "api_key", { type: "password", required: true, autocomplete: "off" }),
      h("label", { class: "check" }, h("input", { type: "checkbox", name: "validate" }), " Test it first")],
    async (v, f) => {
      const request = { organization_id: org.id, provider: v.provider, api_key: v.api_key, credential_name: v.credential_name || undefined, validate: v.validate };
      if (await attempt(() => call("createProviderCredential", { body: request }), v.validate ? "The key works and is stored." : "Stored.")) { f.reset(); load(); }
    }, "Add")),
  h("section", { class: "card" }, h("h2", {}, "Provider keys"), list));
  await load();
}

// ---------------------------------------------------- members, webhooks

async function members(org, body) {
  const reveal = h("div");
  const list = h("div");
  const pending = h("div");
  async function load() {
    const page = await attempt(() => call("listMembers", { path: { org_id: org.id } }));
    if (!page) return;
    list.replaceChildren(table([["Email"], ["Role"], ["Since", "opt"], [""]], page.data.map((u) => [u.email, u.role, when(u.created_at),
      h("button", { class: "danger", type: "button", onclick: async () => {
        if (confirm(`Remove ${u.email}?`) && await attempt(() => call("removeMember", { path: { org_id: org.id, user_id: u.id } }), "Removed.")) load();
      } }, "Remove")]), "No members yet: invite someone."));
  }
  // Revoking answers 204 (no body): `true` tells `attempt` it worked.
  const revoke = (i) => attempt(async () => {
    await call("revokeInvitation", { path: { org_id: org.id, invitation_id: i.id } });
    return true;
  }, `The invitation for ${i.email} is revoked.`);
  function loadPending() {
    pending.replaceChildren(pager((before) => call("listInvitations", { path: { org_id: org.id }, query: { before, limit: 25 } }), (p) =>
      table([["Email"], ["Role"], ["Expires", "opt"], [""]], p.data.map((i) => [i.email, i.role, when(i.expires_at),
        h("button", { class: "danger", type: "button", onclick: async () => {
          if (confirm(`Revoke the invitation for ${i.email}?`) && await revoke(i)) loadPending();
        } }, "Revoke")]), "No pending invitations.")));
  }
  body.append(h("section", { class: "card" }, h("h2", {}, "Invite"),
    form([field("Email", "email", { type: "email", required: true }),
      select("Role", "role", [["org_member", "member (read only)"], ["org_admin", "admin"]], "org_member")],
    async (v, f) => {
      const inv = await attempt(() => call("createInvitation", { path: { org_id: org.id }, body: { email: v.email, role: v.role } }));
      if (inv) { f.reset(); reveal.replaceChildren(secretBox(`Invitation for ${inv.email}, until ${when(inv.expires_at)}`, inv.token)); loadPending(); }
    }, "Invite"), reveal),
  h("section", { class: "card" }, h("h2", {}, "Pending invitations"), pending),
  h("section", { class: "card" }, h("h2", {}, "Members"), list));
  loadPending();
  await load();
}

async function webhooks(org, body) {
  const events = ["credits.granted", "credits.low", "credits.depleted", "budget.exceeded", "usage.batch"];
  const reveal = h("div");
  const list = h("div");
  const deliveries = h("div");
  async function load() {
    const page = await attempt(() => call("listWebhooks", { path: { org_id: org.id } }));
    if (!page) return;
    list.replaceChildren(table([["URL"], ["Events", "opt"], [""]], page.data.map((w) => [w.url, w.events.join(", "),
      h("span", { class: "pager" },
        h("button", { class: "plain", type: "button", onclick: () => deliveries.replaceChildren(h("h2", {}, `Deliveries to ${w.url}`),
          pager((before) => call("listWebhookDeliveries", { path: { org_id: org.id, id: w.id }, query: { before, limit: 20 } }), (p) =>
            table([["When"], ["Event"], ["Status"], ["Attempts"]], p.data.map((d) => [when(d.created_at), d.event_type, d.status,
              d.attempts.map((a) => `${a.status_code ?? a.error ?? "?"}`).join(", ")]), "Nothing delivered yet."))) }, "Deliveries"),
        h("button", { class: "danger", type: "button", onclick: async () => {
          if (await attempt(() => call("deleteWebhook", { path: { org_id: org.id, id: w.id } }), "Removed.")) load();
        } }, "Remove"))]), "No webhooks yet."));
  }
  body.append(h("section", { class: "card" }, h("h2", {}, "New webhook"),
    form([field("URL", "url", { type: "url", required: true }),
      ...events.map((e) => h("label", { class: "check" }, h("input", { type: "checkbox", name: e }), ` ${e}`)),
      field("Low-credit threshold", "threshold", { type: "number", min: 0 })],
    async (v, f) => {
      const request = { url: v.url, events: events.filter((e) => v[e]), credits_low_threshold: int(v.threshold) };
      const created = await attempt(() => call("createWebhook", { path: { org_id: org.id }, body: request }));
      if (created) { f.reset(); reveal.replaceChildren(secretBox("Signing secret", created.secret)); load(); }
    }, "Create"), reveal),
  h("section", { class: "card" }, h("h2", {}, "Webhooks"), list, deliveries));
  await load();
}

// ------------------------------------------------------ catalog, users

async function catalogPage() {
  const list = h("div");
  async function load() {
    const page = await attempt(() => call("listCatalogModels"));
    if (!page) return;
    const micros = (n) => `$${(n / 1e6).toFixed(4)}`;
    list.replaceChildren(table([["Model"], ["Provider", "opt"], ["Input / Mtok"], ["Output / Mtok"], ["State"], [""]], page.data.map((m) => [
      m.id, m.provider, micros(m.price.input_per_mtok_usd_micros), micros(m.price.output_per_mtok_usd_micros),
      m.disabled ? h("span", { class: "badge off" }, "disabled") : h("span", { class: "badge" }, "enabled"),
      h("span", { class: "pager" },
        form([field("Input µ$", "input", { type: "number", min: 0, value: m.price.input_per_mtok_usd_micros }),
          field("Output µ$", "output", { type: "number", min: 0, value: m.price.output_per_mtok_usd_micros })], async (v) => {
          const price = { input_per_mtok_usd_micros: int(v.input), output_per_mtok_usd_micros: int(v.output) };
          if (await attempt(() => call("updateCatalogModel", { path: { id: m.id }, body: { price } }), `Price of ${m.id} changed.`)) load();
        }, "Set price"),
        h("button", { class: m.disabled ? "plain" : "danger", type: "button", onclick: async () => {
          const done = m.disabled
            ? await attempt(() => call("updateCatalogModel", { path: { id: m.id }, body: { disabled: false } }), "Enabled.")
            : await attempt(() => call("disableCatalogModel", { path: { id: m.id } }), "Disabled.");
          if (done) load();
        } }, m.disabled ? "Enable" : "Disable"))]), "The catalog is empty."));
  }
  show(h("h1", {}, "Model catalog"),
    h("section", { class: "card" }, h("h2", {}, "Add a model"),
      form([field("Id", "id", { required: true }), field("Provider", "provider", { required: true }), field("Upstream name", "upstream"),
        field("Input µ$ / Mtok", "input", { type: "number", min: 0 }), field("Output µ$ / Mtok", "output", { type: "number", min: 0 })],
      async (v, f) => {
        const spec = { id: v.id, provider: v.provider, upstream: v.upstream || undefined,
          price: { input_per_mtok_usd_micros: int(v.input) ?? 0, output_per_mtok_usd_micros: int(v.output) ?? 0 } };
        if (await attempt(() => call("createCatalogModel", { body: spec }), `${v.id} added.`)) { f.reset(); load(); }
      }, "Add")),
    h("section", { class: "card" }, list));
  await load();
}

function usersPage() {
  const list = pager((before) => call("listUsers", { query: { before, limit: 25 } }), (page) =>
    table([["Email"], ["Role"], ["Organization"], ["Since", "opt"]], page.data.map((u) => [u.email, u.role,
      u.organization_id ? h("a", { href: `#/org/${u.organization_id}` }, u.organization_id) : "—", when(u.created_at)]),
    "No users yet: the admin token is the only way in."));
  show(h("h1", {}, "Users"),
    h("section", { class: "card" }, h("h2", {}, "New user"),
      h("p", { class: "muted" }, "Organization users need the organization's id; a platform admin has none."),
      form([field("Email", "email", { type: "email", required: true }), field("Password", "password", { type: "password", minlength: 12, required: true }),
        select("Role", "role", [["org_admin", "org_admin"], ["org_member", "org_member"], ["platform_admin", "platform_admin"]], "org_admin"),
        field("Organization id", "organization_id")],
      async (v, f) => {
        const user = await attempt(() => call("createUser", { body: { email: v.email, password: v.password, role: v.role,
          organization_id: v.organization_id || undefined } }));
        if (user) reroute(`User ${user.email} created (${user.role}).`);
      }, "Create")),
    h("section", { class: "card" }, h("h2", {}, "Users"), list));
}

window.addEventListener("hashchange", route);
route();
