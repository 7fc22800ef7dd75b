/* sagedock dashboard: a read-only view of the local SageMaker emulator.
 *
 * One file, no framework, no build step: the sagedock binary embeds it and the page must
 * work offline. Top to bottom:
 *   1. DOM and formatting helpers
 *   2. API clients (SageMaker, CloudWatch Logs, sagedock's own routes)
 *   3. Widgets: keyed tables, status badges, notices, log follower, live charts
 *   4. Page lifecycle and the hash router
 *   5. One render function per page
 *
 * A rule kept throughout: never make a call that is expected to fail. Chrome logs every
 * 4xx/5xx answer as a console error, so a resource's existence is checked first with a
 * List call (or DescribeLogGroups for a log group), which never fails.
 */
"use strict";

// ============================================================ 1. DOM and formatting

/** DOM properties that setAttribute would not set (a textarea's value, a checkbox's state). */
const PROPERTY_KEYS = new Set(["value", "checked", "selected", "disabled"]);

/** Builds an element: h("a", {href: "#/"}, "text", child, [more children]). */
function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else if (PROPERTY_KEYS.has(key)) {
      node[key] = value;
    } else {
      node.setAttribute(key, value === true ? "" : String(value));
    }
  }
  return appendChildren(node, children);
}

function appendChildren(node, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/**
 * Replaces target's content only when it differs. The page polls every second or two; an
 * unchanged node keeps its identity, so nothing flickers, a text selection survives and a
 * browser test holding an element does not get a stale reference.
 */
function patch(target, content) {
  const fresh = h("div", null, content);
  if (target.innerHTML !== fresh.innerHTML) target.replaceChildren(...fresh.childNodes);
}

/** A label for the hash route of a resource; names are URI-encoded so any name round-trips. */
function routeHref(kind, name) {
  return `#/${kind}/${encodeURIComponent(name)}`;
}

function link(kind, name) {
  return name ? h("a", { href: routeHref(kind, name) }, name) : "—";
}

function mono(text) {
  return text === null || text === undefined || text === "" ? "—" : h("code", null, String(text));
}

const pad2 = (n) => String(n).padStart(2, "0");

/** SageMaker times arrive as epoch seconds; accept ISO strings too in case a client sends them. */
function toDate(value) {
  if (value === null || value === undefined || value === "") return null;
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

function formatTime(value) {
  const d = toDate(value);
  if (!d) return "—";
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ` +
    `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

/** Clock time with milliseconds, for log lines (epoch milliseconds in). */
function formatClock(ms) {
  const d = new Date(ms);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}.` +
    String(d.getMilliseconds()).padStart(3, "0");
}

function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

/** Seconds between two SageMaker times, or from the first to now when the second is missing. */
function secondsBetween(start, end) {
  const a = toDate(start);
  if (!a) return null;
  const b = toDate(end) || new Date();
  return (b.getTime() - a.getTime()) / 1000;
}

/** Binary units, as `docker stats` shows memory. */
function formatBytes(bytes) {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
}

/** A metric or objective value: six significant digits, no padding zeros. */
function formatMetric(value) {
  if (value === null || value === undefined || !Number.isFinite(Number(value))) return "—";
  return String(Number(Number(value).toPrecision(6)));
}

/** "1 warning", "2 warnings". */
function plural(count, noun) {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

function formatNumber(value, digits = 2) {
  if (value === null || value === undefined || !Number.isFinite(Number(value))) return "—";
  const n = Number(value);
  return Number.isInteger(n) ? String(n) : n.toFixed(digits);
}

function sortByCreationDesc(items) {
  const time = (item) => (toDate(item.CreationTime) || new Date(0)).getTime();
  return [...items].sort((a, b) => time(b) - time(a));
}

function errorText(error) {
  if (!error) return "Unknown error";
  return error.message || String(error);
}

// ============================================================ 2. API clients

class ApiError extends Error {
  constructor(message, { status = 0, type = "" } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.type = type;
  }
}

/** fetch, with a network failure turned into a message a person can act on. */
async function request(url, options, what) {
  try {
    return await fetch(url, options);
  } catch (error) {
    throw new ApiError(`${what}: the sagedock server did not answer (${errorText(error)}); is \`sagedock up\` still running?`);
  }
}

async function readJson(response, what) {
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : {};
  } catch (_) {
    body = null;
  }
  if (!response.ok) {
    const rawType = (body && (body.__type || body.code)) || response.headers.get("x-amzn-errortype") || "";
    const type = String(rawType).split("#").pop().split(":")[0];
    const message = (body && (body.message || body.Message)) || text || response.statusText;
    throw new ApiError(`${what}: ${type ? `${type}: ` : ""}${message}`, { status: response.status, type });
  }
  if (body === null) throw new ApiError(`${what}: the answer is not JSON`, { status: response.status });
  return body;
}

async function awsJson(target, input) {
  const response = await request("/", {
    method: "POST",
    headers: { "X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1" },
    body: JSON.stringify(input || {}),
  }, target);
  return readJson(response, target);
}

const sagemaker = (operation, input) => awsJson(`SageMaker.${operation}`, input);
const cloudwatchLogs = (operation, input) => awsJson(`Logs_20140328.${operation}`, input);

async function getJson(path) {
  const response = await request(path, { headers: { Accept: "application/json" } }, `GET ${path}`);
  return readJson(response, `GET ${path}`);
}

/** Follows NextToken so a long list is shown whole; the page cap guards against a token loop. */
async function listAll(operation, input, key, maxPages = 50) {
  const items = [];
  let token = null;
  for (let page = 0; page < maxPages; page += 1) {
    const answer = await sagemaker(operation, { ...input, MaxResults: 100, ...(token ? { NextToken: token } : {}) });
    items.push(...(answer[key] || []));
    if (!answer.NextToken || answer.NextToken === token) break;
    token = answer.NextToken;
  }
  return items;
}

/** How each kind of resource is listed, to check it exists before describing it. */
const RESOURCES = {
  endpoint: { list: "ListEndpoints", key: "Endpoints", name: "EndpointName" },
  endpointConfig: { list: "ListEndpointConfigs", key: "EndpointConfigs", name: "EndpointConfigName" },
  model: { list: "ListModels", key: "Models", name: "ModelName" },
  trainingJob: { list: "ListTrainingJobs", key: "TrainingJobSummaries", name: "TrainingJobName" },
  tuningJob: { list: "ListHyperParameterTuningJobs", key: "HyperParameterTuningJobSummaries", name: "HyperParameterTuningJobName" },
  transformJob: { list: "ListTransformJobs", key: "TransformJobSummaries", name: "TransformJobName" },
};

/** NameContains only accepts this pattern; a name outside it cannot exist either. */
const NAME_PATTERN = /^[A-Za-z0-9-]{1,63}$/;

/** The list summary of the named resource, or null: Describe on a missing name would be a 400. */
async function findResource(kind, name) {
  if (!NAME_PATTERN.test(name)) return null;
  const spec = RESOURCES[kind];
  const items = await listAll(spec.list, { NameContains: name }, spec.key);
  return items.find((item) => item[spec.name] === name) || null;
}

async function logGroupExists(group) {
  let token = null;
  for (let page = 0; page < 20; page += 1) {
    const answer = await cloudwatchLogs("DescribeLogGroups", {
      logGroupNamePrefix: group,
      ...(token ? { nextToken: token } : {}),
    });
    if ((answer.logGroups || []).some((g) => g.logGroupName === group)) return true;
    if (!answer.nextToken || answer.nextToken === token) return false;
    token = answer.nextToken;
  }
  return false;
}

/** A first read of a log goes this far back, so that opening a page never reads a long,
 * chatty log whole. */
const FIRST_READ_MS = 30 * 60 * 1000;

/** FilterLogEvents, every page of it (capped), oldest first. */
async function filterLogEvents(input, maxPages = 10) {
  const events = [];
  let token = null;
  for (let page = 0; page < maxPages; page += 1) {
    const answer = await cloudwatchLogs("FilterLogEvents", { ...input, ...(token ? { nextToken: token } : {}) });
    const batch = answer.events || [];
    events.push(...batch);
    if (!answer.nextToken || answer.nextToken === token || batch.length === 0) break;
    token = answer.nextToken;
  }
  // Streams are interleaved by time; a stable sort keeps each stream's own order on ties.
  return events.sort((a, b) => a.timestamp - b.timestamp);
}

/** The last `count` events of a log group, all streams; null when the group does not exist.
 * The last half hour is read first, the whole group (capped) only when that is empty. */
async function tailLogGroup(group, count) {
  if (!(await logGroupExists(group))) return null;
  let events = await filterLogEvents({ logGroupName: group, startTime: Date.now() - FIRST_READ_MS });
  if (events.length === 0) events = await filterLogEvents({ logGroupName: group });
  return events.slice(-count);
}

// ============================================================ 3. Widgets

const STATUS_TONES = {
  ok: ["InService", "Completed", "running", "Succeeded"],
  busy: ["Creating", "Updating", "InProgress", "Stopping", "SystemUpdating", "RollingBack", "Deleting",
    "Pending", "Starting", "Downloading", "Training", "Uploading", "Transforming", "created", "restarting"],
  failed: ["Failed", "dead", "error"],
};

function statusTone(status) {
  for (const [tone, names] of Object.entries(STATUS_TONES)) if (names.includes(status)) return tone;
  return "other";
}

function statusBadge(status, attrs = {}) {
  return h("span", { ...attrs, class: `status status-${statusTone(status)}` }, status || "Unknown");
}

/** Updates a persistent badge in place (tests and people keep looking at the same element). */
function setStatus(badge, status) {
  const text = status || "Unknown";
  if (badge.textContent !== text) badge.textContent = text;
  const className = `status status-${statusTone(status)}`;
  if (badge.className !== className) badge.className = className;
}

/** A place for one part of the page to say what went wrong, cleared on its next success. */
function makeNotice() {
  const element = h("div", { class: "notice", role: "alert", hidden: true });
  return {
    element,
    show(error) {
      element.textContent = errorText(error);
      element.hidden = false;
    },
    clear() {
      if (!element.hidden) {
        element.hidden = true;
        element.textContent = "";
      }
    },
  };
}

/** Runs fn; a failure is shown in the notice instead of rejecting (no unhandled rejections). */
async function guarded(notice, fn) {
  try {
    const result = await fn();
    notice.clear();
    return result;
  } catch (error) {
    notice.show(error);
    return undefined;
  }
}

/** A definition list of [label, value] pairs; pairs whose value is missing are left out. */
function fieldList(pairs) {
  const present = pairs.filter((pair) => pair && pair[1] !== null && pair[1] !== undefined && pair[1] !== "");
  return h("dl", { class: "fields" },
    present.map(([label, value]) => h("div", { class: "field" }, h("dt", null, label), h("dd", null, value))));
}

function section(title, ...children) {
  return h("section", { class: "card" }, h("h2", null, title), children);
}

/**
 * A table whose rows are matched by key between updates: rows and cells that did not change
 * keep their DOM identity while the page polls.
 */
class KeyedTable {
  constructor({ id, columns, key, rowAttrs = () => ({}), empty = "Nothing here yet." }) {
    this.columns = columns;
    this.key = key;
    this.rowAttrs = rowAttrs;
    this.rows = new Map();
    this.body = h("tbody");
    this.emptyRow = h("tr", { class: "empty-row" }, h("td", { colspan: columns.length }, empty));
    this.element = h("table", { id, class: "data" },
      h("thead", null, h("tr", null, columns.map((c) => h("th", { class: c.class }, c.title)))),
      this.body);
    this.body.append(this.emptyRow);
  }

  update(items) {
    if (items.length > 0) this.emptyRow.remove();
    const seen = new Set();
    let previous = null;
    items.forEach((item, index) => {
      const key = String(this.key(item, index));
      seen.add(key);
      let row = this.rows.get(key);
      if (!row) {
        row = h("tr", null, this.columns.map((c) => h("td", { class: c.class })));
        this.rows.set(key, row);
      }
      this.fillRow(row, item);
      // Move a row only when it is out of place, to keep DOM mutations to what changed.
      const expected = previous ? previous.nextSibling : this.body.firstChild;
      if (expected !== row) this.body.insertBefore(row, expected);
      previous = row;
    });
    for (const [key, row] of this.rows) {
      if (!seen.has(key)) {
        row.remove();
        this.rows.delete(key);
      }
    }
    if (items.length === 0 && !this.emptyRow.isConnected) this.body.append(this.emptyRow);
  }

  fillRow(row, item) {
    for (const [name, value] of Object.entries(this.rowAttrs(item))) {
      if (value === null || value === undefined || value === false) row.removeAttribute(name);
      else if (row.getAttribute(name) !== String(value)) row.setAttribute(name, String(value));
    }
    this.columns.forEach((column, index) => patch(row.cells[index], column.cell(item)));
  }
}

/** A table built once from rows (for data that does not change while the page is open). */
function staticTable(options, items) {
  const table = new KeyedTable({ key: (_, index) => index, ...options });
  table.update(items);
  return table.element;
}

// ------------------------------------------------------------ logs

/** Identifies an event, to drop the ones already shown when polling from an inclusive start. */
function eventKey(event) {
  return event.eventId || `${event.logStreamName}\u0000${event.timestamp}\u0000${event.message}`;
}

/**
 * Follows a log group (optionally one stream or a stream prefix): each next() returns the
 * events not returned before, oldest first.
 */
class LogFollower {
  /** since: where the first read starts (epoch ms); null reads the log from its start. */
  constructor({ group, streamPrefix = null, stream = null, since = null }) {
    this.group = group;
    this.since = since;
    this.stream = stream;
    // An exact stream is asked for by prefix: FilterLogEvents with logStreamNames fails on a
    // stream that does not exist yet, a prefix never does.
    this.streamPrefix = stream || streamPrefix;
    this.groupSeen = false;
    this.lastTimestamp = null;
    this.seenAtLast = new Map();
  }

  async next() {
    if (!this.groupSeen) {
      this.groupSeen = await logGroupExists(this.group);
      if (!this.groupSeen) return [];
    }
    const input = { logGroupName: this.group };
    if (this.streamPrefix) input.logStreamNamePrefix = this.streamPrefix;
    // Inclusive start: a line written later may share the last line's millisecond.
    const start = this.lastTimestamp ?? this.since;
    if (start !== null) input.startTime = start;
    let events = await filterLogEvents(input);
    if (this.stream) events = events.filter((e) => e.logStreamName === this.stream);
    return this.dropSeen(events);
  }

  dropSeen(events) {
    const skip = new Map(this.seenAtLast);
    const fresh = [];
    for (const event of events) {
      if (this.lastTimestamp !== null && event.timestamp < this.lastTimestamp) continue;
      if (event.timestamp === this.lastTimestamp) {
        const key = eventKey(event);
        const left = skip.get(key) || 0;
        if (left > 0) {
          skip.set(key, left - 1);
          continue;
        }
      }
      fresh.push(event);
    }
    for (const event of fresh) {
      if (event.timestamp !== this.lastTimestamp) {
        this.lastTimestamp = event.timestamp;
        this.seenAtLast = new Map();
      }
      const key = eventKey(event);
      this.seenAtLast.set(key, (this.seenAtLast.get(key) || 0) + 1);
    }
    return fresh;
  }
}

function formatLogLine(event, showStream) {
  const message = String(event.message ?? "").replace(/\r?\n$/, "");
  return showStream
    ? `${formatClock(event.timestamp)}  ${event.logStreamName}  ${message}`
    : `${formatClock(event.timestamp)}  ${message}`;
}

/** A <pre> that keeps the last maxLines lines and follows the end unless scrolled up. */
class LogView {
  constructor({ id, maxLines = 1000, placeholder = "No log lines yet." }) {
    this.maxLines = maxLines;
    this.lines = [];
    this.pre = h("pre", { id, class: "log", "data-placeholder": placeholder, tabindex: "0" });
  }

  reset(placeholder) {
    this.lines = [];
    this.pre.textContent = "";
    if (placeholder) this.pre.dataset.placeholder = placeholder;
  }

  append(events, showStream) {
    if (events.length === 0) return;
    const pre = this.pre;
    // Follow the end only if the reader is already there: someone scrolled up to read keeps
    // their place.
    const atEnd = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 24;
    this.lines.push(...events.map((e) => formatLogLine(e, showStream)));
    if (this.lines.length > this.maxLines) this.lines.splice(0, this.lines.length - this.maxLines);
    pre.textContent = this.lines.join("\n");
    if (atEnd) pre.scrollTop = pre.scrollHeight;
  }
}

/** A log panel for a job: the lines of every stream starting `JOB/` in the job's group. */
function jobLogPanel(ctx, group, jobName, isActive) {
  const view = new LogView({ id: "log", placeholder: `Waiting for ${group} streams ${jobName}/…` });
  const notice = makeNotice();
  const follower = new LogFollower({ group, streamPrefix: `${jobName}/` });
  const element = section("Log",
    h("p", { class: "hint" }, h("code", null, group), " · streams ", h("code", null, `${jobName}/…`)),
    notice.element, view.pre);
  const poll = () => guarded(notice, async () => view.append(await follower.next(), true));
  // Keep polling while the job runs, and a few more times after: its last lines may land
  // in CloudWatch Logs just after the status changes.
  let pollsAfterEnd = 0;
  const poller = ctx.every(2000, async () => {
    await poll();
    if (!isActive()) {
      pollsAfterEnd += 1;
      if (pollsAfterEnd >= 3) poller.stop();
    } else {
      pollsAfterEnd = 0;
    }
  });
  return { element, firstPoll: poll };
}

// ------------------------------------------------------------ charts

const CHART_COLORS = ["#2563eb", "#ea580c", "#059669", "#9333ea", "#0891b2", "#ca8a04", "#db2777"];
const CHART_WINDOW_MS = 5 * 60 * 1000;
// A page just opened shows its first minute across the whole width, not a sliver of five.
const CHART_MIN_SPAN_MS = 60 * 1000;

/** 1, 2 or 5 times a power of ten, at least value: a y-axis maximum that reads well. */
function niceCeiling(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (value <= step * power) return step * power;
  return 10 * power;
}

function formatAxis(value) {
  if (value >= 1000) return `${value / 1000}k`;
  return String(Number(value.toPrecision(3)));
}

/**
 * A line chart of the last five minutes of a live series, hand-drawn on a canvas. Each
 * canvas carries data-samples and data-latest so a test can read what was plotted.
 */
class LiveChart {
  constructor({ key, title, unit, minimumMax = 1 }) {
    this.unit = unit;
    this.minimumMax = minimumMax;
    this.series = new Map(); // label -> [{t, v}], v null for a gap
    this.colors = new Map();
    this.samples = 0;
    this.endMs = null;
    this.firstMs = null;
    this.readout = h("span", { class: "chart-readout" }, "—");
    this.canvas = h("canvas", { class: "chart", "data-chart": key, "data-samples": "0", "data-latest": "" });
    this.element = h("figure", { class: "chart-card" },
      h("figcaption", null, h("span", null, title), this.readout), this.canvas);
  }

  colorOf(label) {
    if (!this.colors.has(label)) this.colors.set(label, CHART_COLORS[this.colors.size % CHART_COLORS.length]);
    return this.colors.get(label);
  }

  /** values: {label: number|null}; latest: the single value exposed as data-latest. */
  push(timeMs, values, latest, readout) {
    for (const [label, value] of Object.entries(values)) {
      if (!this.series.has(label)) this.series.set(label, []);
      this.series.get(label).push({ t: timeMs, v: value });
    }
    this.endMs = timeMs;
    if (this.firstMs === null) this.firstMs = timeMs;
    const cutoff = timeMs - CHART_WINDOW_MS;
    for (const [label, points] of this.series) {
      while (points.length && points[0].t < cutoff) points.shift();
      if (points.length === 0) this.series.delete(label);
    }
    this.samples += 1;
    this.canvas.setAttribute("data-samples", String(this.samples));
    this.canvas.setAttribute("data-latest", latest === null || latest === undefined ? "" : String(latest));
    this.readout.textContent = readout;
    this.draw();
  }

  draw() {
    const canvas = this.canvas;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (!width || !height) return;
    // Back the canvas with device pixels so lines stay sharp on high-density screens.
    const dpr = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(width * dpr) || canvas.height !== Math.round(height * dpr)) {
      canvas.width = Math.round(width * dpr);
      canvas.height = Math.round(height * dpr);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);

    const plot = { left: 6, right: width - 6, top: 20, bottom: height - 16 };
    let max = 0;
    for (const points of this.series.values()) for (const p of points) if (p.v !== null && p.v > max) max = p.v;
    const yMax = niceCeiling(Math.max(max, this.minimumMax));
    const end = this.endMs ?? Date.now();
    const span = this.span();
    const x = (t) => plot.left + ((t - (end - span)) / span) * (plot.right - plot.left);
    const y = (v) => plot.bottom - (v / yMax) * (plot.bottom - plot.top);

    this.drawGrid(ctx, plot, yMax);
    this.drawLines(ctx, x, y);
    this.drawLegend(ctx, plot);
  }

  /** The time across the chart: what has been seen, from one minute up to five. */
  span() {
    const seen = this.firstMs === null ? 0 : this.endMs - this.firstMs;
    return Math.min(CHART_WINDOW_MS, Math.max(CHART_MIN_SPAN_MS, Math.ceil(seen / 60000) * 60000));
  }

  drawGrid(ctx, plot, yMax) {
    ctx.lineWidth = 1;
    ctx.strokeStyle = "#e5e7eb";
    for (const fraction of [0, 0.5, 1]) {
      const gy = Math.round(plot.bottom - fraction * (plot.bottom - plot.top)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(plot.left, gy);
      ctx.lineTo(plot.right, gy);
      ctx.stroke();
    }
    ctx.fillStyle = "#6b7280";
    ctx.font = "11px system-ui, -apple-system, 'Segoe UI', sans-serif";
    ctx.textBaseline = "bottom";
    ctx.textAlign = "left";
    ctx.fillText(`${formatAxis(yMax)} ${this.unit}`, plot.left, plot.top - 2);
    ctx.textBaseline = "top";
    const seconds = Math.round(this.span() / 1000);
    ctx.fillText(seconds % 60 === 0 ? `−${seconds / 60} min` : `−${seconds} s`, plot.left, plot.bottom + 3);
    ctx.textAlign = "right";
    ctx.fillText("now", plot.right, plot.bottom + 3);
  }

  drawLines(ctx, x, y) {
    ctx.lineWidth = 1.5;
    ctx.lineJoin = "round";
    for (const [label, points] of this.series) {
      const color = this.colorOf(label);
      ctx.strokeStyle = color;
      ctx.fillStyle = color;
      ctx.beginPath();
      let drawing = false;
      for (const p of points) {
        // A null value (no request answered that second) is a gap, not a zero.
        if (p.v === null) {
          drawing = false;
          continue;
        }
        if (drawing) ctx.lineTo(x(p.t), y(p.v));
        else ctx.moveTo(x(p.t), y(p.v));
        drawing = true;
      }
      ctx.stroke();
      const last = points[points.length - 1];
      if (last && last.v !== null) {
        ctx.beginPath();
        ctx.arc(x(last.t), y(last.v), 2.5, 0, Math.PI * 2);
        ctx.fill();
      }
    }
  }

  drawLegend(ctx, plot) {
    ctx.font = "11px system-ui, -apple-system, 'Segoe UI', sans-serif";
    ctx.textBaseline = "bottom";
    ctx.textAlign = "left";
    let right = plot.right;
    const labels = [...this.series.keys()].reverse();
    for (const label of labels) {
      const textWidth = ctx.measureText(label).width;
      const left = right - textWidth - 14;
      ctx.fillStyle = this.colorOf(label);
      ctx.fillRect(left, plot.top - 10, 9, 3);
      ctx.fillStyle = "#374151";
      ctx.fillText(label, left + 12, plot.top - 2);
      right = left - 10;
    }
  }
}

// ============================================================ 4. Page lifecycle and router

/**
 * What one route owns while it is shown: its pollers and streams, all stopped when the
 * route changes, so a page left behind makes no more requests.
 */
class PageContext {
  constructor() {
    this.alive = true;
    this.disposers = [];
  }

  onDispose(fn) {
    this.disposers.push(fn);
  }

  dispose() {
    this.alive = false;
    for (const fn of this.disposers.splice(0)) {
      try {
        fn();
      } catch (error) {
        showBanner(error);
      }
    }
  }

  /**
   * Runs task every ms milliseconds, each run starting after the previous one settled: a
   * slow server is never sent overlapping polls.
   */
  every(ms, task) {
    let timer = null;
    let stopped = false;
    const tick = async () => {
      if (!this.alive || stopped) return;
      try {
        await task();
      } catch (error) {
        showBanner(error);
      }
      if (this.alive && !stopped) timer = setTimeout(tick, ms);
    };
    timer = setTimeout(tick, ms);
    const stop = () => {
      stopped = true;
      clearTimeout(timer);
    };
    this.onDispose(stop);
    return { stop };
  }
}

const ROUTES = [
  { pattern: /^#?\/?$/, render: renderOverview },
  { pattern: /^#\/endpoints\/([^/]+)$/, render: renderEndpoint },
  { pattern: /^#\/models\/([^/]+)$/, render: renderModel },
  { pattern: /^#\/training-jobs\/([^/]+)$/, render: renderTrainingJob },
  { pattern: /^#\/tuning-jobs\/([^/]+)$/, render: renderTuningJob },
  { pattern: /^#\/transform-jobs\/([^/]+)$/, render: renderTransformJob },
];

function matchRoute(hash) {
  for (const route of ROUTES) {
    const match = route.pattern.exec(hash);
    if (!match) continue;
    try {
      return { render: route.render, params: match.slice(1).map(decodeURIComponent) };
    } catch (_) {
      break; // a malformed %-escape: no page has that name
    }
  }
  return { render: renderNotFound, params: [hash] };
}

let currentPage = null;

function navigate() {
  if (currentPage) currentPage.dispose();
  document.body.removeAttribute("data-ready");
  const ctx = new PageContext();
  currentPage = ctx;
  const root = h("div", { class: "page" });
  document.getElementById("main").replaceChildren(root);
  window.scrollTo(0, 0);
  const { render, params } = matchRoute(location.hash);
  Promise.resolve()
    .then(() => render(ctx, root, ...params))
    .catch((error) => root.append(h("div", { class: "notice" }, errorText(error))))
    .finally(() => {
      if (ctx.alive) document.body.setAttribute("data-ready", "true");
    });
}

function showBanner(error) {
  const banner = document.getElementById("banner");
  if (!banner) return;
  banner.replaceChildren(h("span", null, errorText(error)),
    h("button", { type: "button", class: "link-button", onclick: () => { banner.hidden = true; } }, "dismiss"));
  banner.hidden = false;
}

async function loadServerInfo() {
  const slot = document.getElementById("server-info");
  try {
    const info = await getJson("/_sagedock/info");
    slot.replaceChildren(
      h("span", null, `v${info.version}`),
      h("span", null, info.region),
      h("span", null, `account ${info.account}`));
  } catch (error) {
    slot.replaceChildren(h("span", { class: "bad" }, "server unreachable"));
    showBanner(error);
  }
}

function pageHeader(kind, name, ...extra) {
  return h("header", { class: "page-header" },
    h("nav", { class: "breadcrumb" }, h("a", { href: "#/" }, "Overview"), " / ", kind),
    h("h1", null, name, extra));
}

// ============================================================ 5. Pages

// ------------------------------------------------------------ overview

function overviewSections() {
  const origin = location.origin;
  const created = { title: "Created", cell: (x) => formatTime(x.CreationTime), class: "time" };
  return [
    {
      title: "Endpoints",
      operation: "ListEndpoints",
      key: "Endpoints",
      name: "EndpointName",
      wide: true,
      empty: `No endpoints yet: create one with boto3, the AWS CLI or the SageMaker SDK against this port (${origin}).`,
      rowAttrs: (x) => ({ "data-endpoint": x.EndpointName }),
      columns: [
        { title: "Name", cell: (x) => link("endpoints", x.EndpointName) },
        { title: "Status", cell: (x) => statusBadge(x.EndpointStatus) },
        { title: "Config", cell: (x) => x.EndpointConfigName || "…" },
        created,
        { title: "Last modified", cell: (x) => formatTime(x.LastModifiedTime), class: "time" },
      ],
    },
    {
      title: "Models",
      operation: "ListModels",
      key: "Models",
      name: "ModelName",
      empty: "No models yet: CreateModel (or the SDK's Model.deploy) against this port creates one.",
      rowAttrs: (x) => ({ "data-model": x.ModelName }),
      columns: [{ title: "Name", cell: (x) => link("models", x.ModelName) }, created],
    },
    {
      title: "Endpoint configs",
      operation: "ListEndpointConfigs",
      key: "EndpointConfigs",
      name: "EndpointConfigName",
      empty: "No endpoint configs yet.",
      rowAttrs: (x) => ({ "data-endpoint-config": x.EndpointConfigName }),
      columns: [
        { title: "Name", cell: (x) => x.EndpointConfigName },
        { title: "Used by", cell: (x) => (x.UsedBy && x.UsedBy.length ? x.UsedBy.map((n) => [link("endpoints", n), " "]) : "—") },
        created,
      ],
    },
    {
      title: "Training jobs",
      operation: "ListTrainingJobs",
      key: "TrainingJobSummaries",
      name: "TrainingJobName",
      empty: "No training jobs yet: CreateTrainingJob (or an SDK estimator's fit()) against this port starts one.",
      rowAttrs: (x) => ({ "data-training-job": x.TrainingJobName }),
      columns: [
        { title: "Name", cell: (x) => link("training-jobs", x.TrainingJobName) },
        { title: "Status", cell: (x) => statusBadge(x.TrainingJobStatus) },
        created,
        { title: "Ended", cell: (x) => formatTime(x.TrainingEndTime), class: "time" },
      ],
    },
    {
      title: "Tuning jobs",
      operation: "ListHyperParameterTuningJobs",
      key: "HyperParameterTuningJobSummaries",
      name: "HyperParameterTuningJobName",
      empty: "No hyperparameter tuning jobs yet.",
      rowAttrs: (x) => ({ "data-tuning-job": x.HyperParameterTuningJobName }),
      columns: [
        { title: "Name", cell: (x) => link("tuning-jobs", x.HyperParameterTuningJobName) },
        { title: "Status", cell: (x) => statusBadge(x.HyperParameterTuningJobStatus) },
        created,
        { title: "Ended", cell: (x) => formatTime(x.HyperParameterTuningEndTime), class: "time" },
      ],
    },
    {
      title: "Transform jobs",
      operation: "ListTransformJobs",
      key: "TransformJobSummaries",
      name: "TransformJobName",
      empty: "No batch transform jobs yet.",
      rowAttrs: (x) => ({ "data-transform-job": x.TransformJobName }),
      columns: [
        { title: "Name", cell: (x) => link("transform-jobs", x.TransformJobName) },
        { title: "Status", cell: (x) => statusBadge(x.TransformJobStatus) },
        created,
        { title: "Ended", cell: (x) => formatTime(x.TransformEndTime), class: "time" },
      ],
    },
  ];
}

/**
 * ListEndpoints has no config name; DescribeEndpoint has. Describing every endpoint on
 * every poll is wasteful, so a description is kept until the endpoint's LastModifiedTime
 * moves.
 */
class EndpointConfigNames {
  constructor() {
    this.cache = new Map(); // name -> {modified, config}
  }

  async fill(endpoints) {
    const live = new Set(endpoints.map((e) => e.EndpointName));
    for (const name of this.cache.keys()) if (!live.has(name)) this.cache.delete(name);
    await Promise.all(endpoints.map(async (endpoint) => {
      const cached = this.cache.get(endpoint.EndpointName);
      if (!cached || cached.modified !== endpoint.LastModifiedTime) {
        const described = await sagemaker("DescribeEndpoint", { EndpointName: endpoint.EndpointName });
        this.cache.set(endpoint.EndpointName, { modified: endpoint.LastModifiedTime, config: described.EndpointConfigName });
      }
    }));
    return endpoints.map((e) => ({ ...e, EndpointConfigName: this.cache.get(e.EndpointName).config }));
  }
}

/** Adds to each endpoint its config's name, and to each config the endpoints using it. */
async function linkEndpointsAndConfigs(lists, configNames, notice) {
  const endpoints = lists.get("ListEndpoints");
  if (!endpoints) return;
  const enriched = await guarded(notice, () => configNames.fill(endpoints));
  if (!enriched) return;
  lists.set("ListEndpoints", enriched);
  const configs = lists.get("ListEndpointConfigs");
  if (!configs) return;
  lists.set("ListEndpointConfigs", configs.map((c) => ({
    ...c,
    UsedBy: enriched.filter((e) => e.EndpointConfigName === c.EndpointConfigName).map((e) => e.EndpointName),
  })));
}

async function renderOverview(ctx, root) {
  document.title = "sagedock";
  const configNames = new EndpointConfigNames();
  const sections = overviewSections().map((spec) => {
    const table = new KeyedTable({ columns: spec.columns, key: (x) => x[spec.name], rowAttrs: spec.rowAttrs, empty: spec.empty });
    const count = h("span", { class: "count" });
    const notice = makeNotice();
    const element = h("section", { class: `card${spec.wide ? " wide" : ""}`, id: `section-${spec.operation}` },
      h("h2", null, spec.title, " ", count), notice.element, table.element);
    return { spec, table, count, notice, element };
  });
  root.append(
    h("header", { class: "page-header" }, h("h1", null, "Overview")),
    h("div", { class: "grid" }, sections.map((s) => s.element)));

  const endpointNotice = sections.find((s) => s.spec.operation === "ListEndpoints").notice;
  const refresh = async () => {
    const results = await Promise.all(sections.map((s) =>
      guarded(s.notice, async () => sortByCreationDesc(await listAll(s.spec.operation, {}, s.spec.key)))));
    const lists = new Map(sections.map((s, i) => [s.spec.operation, results[i]]));
    await linkEndpointsAndConfigs(lists, configNames, endpointNotice);
    for (const s of sections) {
      const items = lists.get(s.spec.operation);
      if (items === undefined) continue; // the section's notice says why
      s.table.update(items);
      s.count.textContent = `(${items.length})`;
    }
  };
  await refresh();
  ctx.every(2000, refresh);
}

// ------------------------------------------------------------ endpoint

/** Joins the live variant state (DescribeEndpoint) with what was configured. */
function mergeVariants(endpoint, config) {
  const configured = (config && config.ProductionVariants) || [];
  const live = (endpoint && endpoint.ProductionVariants) || [];
  const names = [...new Set([...live.map((v) => v.VariantName), ...configured.map((v) => v.VariantName)])];
  return names.map((name) => ({
    name,
    live: live.find((v) => v.VariantName === name) || {},
    configured: configured.find((v) => v.VariantName === name) || {},
  }));
}

function formatServerless(config) {
  if (!config) return "—";
  const parts = [`${config.MemorySizeInMB} MB`, `max ${config.MaxConcurrency} concurrent`];
  if (config.ProvisionedConcurrency) parts.push(`${config.ProvisionedConcurrency} provisioned`);
  return parts.join(", ");
}

const orDash = (v) => (v === null || v === undefined || v === "" ? "—" : v);

function variantColumns() {
  return [
    { title: "Variant", cell: (v) => v.name },
    { title: "Model", cell: (v) => link("models", v.configured.ModelName) },
    { title: "Instance type", cell: (v) => v.configured.InstanceType || (v.configured.ServerlessConfig ? "serverless" : "—") },
    {
      title: "Instances (current / desired)",
      cell: (v) => `${orDash(v.live.CurrentInstanceCount)} / ${orDash(v.live.DesiredInstanceCount ?? v.configured.InitialInstanceCount)}`,
    },
    {
      title: "Weight (current / desired)",
      cell: (v) => `${formatNumber(v.live.CurrentWeight)} / ${formatNumber(v.live.DesiredWeight ?? v.configured.InitialVariantWeight)}`,
    },
    { title: "Routing", cell: (v) => (v.configured.RoutingConfig ? v.configured.RoutingConfig.RoutingStrategy : "default") },
    { title: "Serverless", cell: (v) => formatServerless(v.live.CurrentServerlessConfig || v.configured.ServerlessConfig) },
  ];
}

function containerColumns() {
  const now = () => Date.now() / 1000;
  return [
    { title: "Container", cell: (c) => mono(c.name) },
    { title: "Variant", cell: (c) => orDash(c.variant) },
    { title: "Image", cell: (c) => mono(c.image), class: "wrap" },
    { title: "State", cell: (c) => statusBadge(c.state) },
    { title: "Status", cell: (c) => orDash(c.status) },
    { title: "Age", cell: (c) => (c.created_unix ? formatDuration(now() - c.created_unix) : "—"), class: "num" },
    { title: "CPU", cell: (c) => (c.cpu_percent === null || c.cpu_percent === undefined ? "—" : `${c.cpu_percent.toFixed(1)} %`), class: "num" },
    {
      title: "Memory (used / limit)",
      cell: (c) => (c.memory_bytes === null || c.memory_bytes === undefined
        ? "—"
        : `${formatBytes(c.memory_bytes)} / ${c.memory_limit_bytes ? formatBytes(c.memory_limit_bytes) : "no limit"}`),
      class: "num",
    },
    { title: "Host port", cell: (c) => orDash(c.host_port), class: "num" },
  ];
}

function endpointConfigFields(config) {
  if (!config) return fieldList([]);
  const capture = config.DataCaptureConfig;
  const async = config.AsyncInferenceConfig;
  return fieldList([
    ["Data capture", capture ? [
      capture.EnableCapture === false ? "disabled" : `${capture.InitialSamplingPercentage} % of requests`,
      " → ", mono(capture.DestinationS3Uri)] : null],
    ["Async inference output", async && async.OutputConfig ? mono(async.OutputConfig.S3OutputPath) : null],
  ]);
}

/** Sums one per-second rate over the variants of the endpoint's series. */
function sumRate(series, field) {
  return series.reduce((total, s) => total + (Number(s[field]) || 0), 0);
}

/**
 * Combines per-variant latency into one p50 and p99. With one variant (the usual case) they
 * are exact; with several, p50 is the invocation-weighted mean of the variants' p50s and
 * p99 the largest p99, which is close enough for a live chart.
 */
function combineLatency(series, field) {
  const answered = series.filter((s) => s[field]);
  if (answered.length === 0) return { p50: null, p99: null };
  if (answered.length === 1) return { p50: answered[0][field].p50, p99: answered[0][field].p99 };
  const weight = (s) => Math.max(Number(s.invocations_per_s) || 0, 1e-9);
  const totalWeight = answered.reduce((t, s) => t + weight(s), 0);
  const p50 = answered.reduce((t, s) => t + weight(s) * s[field].p50, 0) / totalWeight;
  const p99 = Math.max(...answered.map((s) => s[field].p99));
  return { p50, p99 };
}

const formatMs = (v) => (v === null || v === undefined ? "—" : `${v.toFixed(2)} ms`);

/** The four live charts of an endpoint, fed by the metrics events of /_sagedock/events. */
function endpointCharts(ctx, endpointName, knownVariants) {
  const charts = {
    invocations: new LiveChart({ key: "invocations", title: "Invocations", unit: "/s" }),
    modelLatency: new LiveChart({ key: "model-latency", title: "Model latency", unit: "ms" }),
    overheadLatency: new LiveChart({ key: "overhead-latency", title: "Overhead latency", unit: "ms" }),
    errors: new LiveChart({ key: "errors", title: "Errors", unit: "/s" }),
  };
  const live = h("span", { class: "live-indicator connecting" }, "connecting…");
  const element = h("section", { class: "card", id: "metrics" },
    h("h2", null, "Live metrics ", live),
    h("p", { class: "hint" }, "Per second, up to the last five minutes, from the counters /metrics serves (latency quantiles are estimated from its histogram buckets)."),
    h("div", { class: "charts" }, Object.values(charts).map((c) => c.element)));

  // Every metrics event is a one-second sample for this endpoint: a second in which it had
  // no traffic (and so no series) is plotted as zero requests with no latency.
  const onMetrics = (sample) => {
    const t = Number(sample.time_ms) || Date.now();
    const series = (sample.series || []).filter((s) => s.endpoint === endpointName);
    const variants = [...new Set([...knownVariants(), ...series.map((s) => s.variant)])];
    const perVariant = {};
    for (const variant of variants) {
      perVariant[variant] = sumRate(series.filter((s) => s.variant === variant), "invocations_per_s");
    }
    const invocations = sumRate(series, "invocations_per_s");
    charts.invocations.push(t, perVariant, invocations, `${formatNumber(invocations, 1)}/s`);

    const model = combineLatency(series, "model_latency_ms");
    charts.modelLatency.push(t, { p50: model.p50, p99: model.p99 }, model.p50, `p50 ${formatMs(model.p50)}`);
    const overhead = combineLatency(series, "overhead_latency_ms");
    charts.overheadLatency.push(t, { p50: overhead.p50, p99: overhead.p99 }, overhead.p50, `p50 ${formatMs(overhead.p50)}`);

    // sagedock counts an invocation by the model's final status: each model error is a
    // 4xx or a 5xx, so these two lines are all of them.
    const errors = { "4xx": sumRate(series, "errors_4xx_per_s"), "5xx": sumRate(series, "errors_5xx_per_s") };
    const errorRate = errors["4xx"] + errors["5xx"];
    charts.errors.push(t, errors, errorRate, `${formatNumber(errorRate, 1)}/s`);
  };

  const source = new EventSource("/_sagedock/events");
  source.addEventListener("metrics", (event) => {
    try {
      onMetrics(JSON.parse(event.data));
    } catch (error) {
      showBanner(new Error(`A metrics event could not be read: ${errorText(error)}`));
    }
  });
  source.addEventListener("open", () => {
    live.className = "live-indicator on";
    live.textContent = "live";
  });
  // EventSource reconnects by itself; say so rather than leave a silent, frozen chart.
  source.addEventListener("error", () => {
    live.className = "live-indicator off";
    live.textContent = source.readyState === EventSource.CLOSED ? "disconnected" : "reconnecting…";
  });
  const redraw = () => Object.values(charts).forEach((c) => c.draw());
  window.addEventListener("resize", redraw);
  ctx.onDispose(() => {
    source.close();
    window.removeEventListener("resize", redraw);
  });
  return { element, redraw };
}

/** Reads a response body as text whatever its type; binary bytes show as replacement marks. */
async function readBodyText(response) {
  const buffer = await response.arrayBuffer();
  return new TextDecoder("utf-8").decode(buffer);
}

function prettyBody(text, contentType) {
  const looksJson = /json/i.test(contentType || "") || /^\s*[[{]/.test(text);
  if (!looksJson) return text;
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch (_) {
    return text;
  }
}

/** The test-request form: one InvokeEndpoint call through sagemaker-runtime's route. */
function invokeForm(endpointName) {
  const body = h("textarea", { id: "invoke-body", rows: "6", spellcheck: "false", placeholder: '{"instances": [[1.0, 2.0, 3.0]]}' });
  const contentType = h("input", { id: "invoke-content-type", type: "text", value: "application/json" });
  const accept = h("input", { id: "invoke-accept", type: "text", placeholder: "e.g. application/json" });
  const customAttributes = h("input", { id: "invoke-custom-attributes", type: "text", placeholder: "optional" });
  const targetVariant = h("select", { id: "invoke-target-variant" }, h("option", { value: "" }, "any"));
  const send = h("button", { id: "invoke-send", type: "submit", class: "primary" }, "Send");
  const sending = h("span", { class: "hint", hidden: true }, "sending…");

  const status = h("span", { id: "invoke-status" });
  const statusText = h("span", { class: "status-text" });
  const latency = h("span", { id: "invoke-latency" });
  const errorDetail = h("div", { class: "invoke-error", hidden: true });
  const headers = h("table", { id: "invoke-headers", class: "data compact" });
  const response = h("pre", { id: "invoke-response", class: "response" });
  const result = h("div", { id: "invoke-result", hidden: true },
    h("div", { class: "invoke-summary" },
      h("span", null, "Status ", status, " ", statusText),
      h("span", null, "Latency ", latency)),
    errorDetail,
    h("div", { class: "invoke-columns" },
      h("div", null, h("h3", null, "Response headers"), headers),
      h("div", null, h("h3", null, "Body"), response)));

  const field = (label, input) => h("label", { class: "form-field" }, h("span", null, label), input);
  const form = h("form", { id: "invoke-form", autocomplete: "off" },
    field("Body", body),
    h("div", { class: "form-row" },
      field("Content-Type", contentType),
      field("Accept", accept),
      field("Custom attributes", customAttributes),
      field("Target variant", targetVariant)),
    h("div", { class: "form-actions" }, send, sending));

  const showResult = (answer, elapsedMs, text) => {
    status.textContent = String(answer.status);
    status.className = answer.ok ? "http-ok" : "http-error";
    statusText.textContent = answer.statusText || "";
    latency.textContent = `${elapsedMs.toFixed(2)} ms`;
    headers.replaceChildren(h("tbody", null,
      [...answer.headers.entries()].map(([name, value]) => h("tr", null, h("th", null, name), h("td", null, value)))));
    response.textContent = prettyBody(text, answer.headers.get("content-type"));
    errorDetail.replaceChildren(...invokeErrorDetail(answer, text));
    errorDetail.hidden = answer.ok;
  };

  const clearResult = () => {
    for (const node of [status, statusText, latency, response]) node.textContent = "";
    headers.replaceChildren();
    errorDetail.hidden = true;
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearResult();
    result.hidden = false;
    send.disabled = true;
    sending.hidden = false;
    const requestHeaders = {};
    const setIfFilled = (name, input) => {
      if (input.value.trim()) requestHeaders[name] = input.value.trim();
    };
    setIfFilled("Content-Type", contentType);
    setIfFilled("Accept", accept);
    setIfFilled("X-Amzn-SageMaker-Custom-Attributes", customAttributes);
    setIfFilled("X-Amzn-SageMaker-Target-Variant", targetVariant);
    try {
      const started = performance.now();
      // A typeless Blob, so that with Content-Type left empty the browser adds none.
      const answer = await fetch(`/endpoints/${encodeURIComponent(endpointName)}/invocations`, {
        method: "POST",
        headers: requestHeaders,
        body: new Blob([body.value]),
      });
      const text = await readBodyText(answer);
      // Latency includes reading the body: that is when the caller has the answer.
      showResult(answer, performance.now() - started, text);
    } catch (error) {
      statusText.textContent = `no answer: ${errorText(error)}`;
    } finally {
      send.disabled = false;
      sending.hidden = true;
    }
  });

  const setVariants = (names) => {
    const wanted = ["", ...names];
    const current = [...targetVariant.options].map((o) => o.value);
    if (wanted.join("\u0000") === current.join("\u0000")) return;
    const selected = targetVariant.value;
    targetVariant.replaceChildren(...wanted.map((name) => h("option", { value: name }, name || "any")));
    targetVariant.value = wanted.includes(selected) ? selected : "";
  };

  return {
    element: section("Test request", h("p", { class: "hint" },
      "Sends one InvokeEndpoint request to ", h("code", null, `/endpoints/${encodeURIComponent(endpointName)}/invocations`), "."),
    form, result),
    setVariants,
  };
}

/** What an error answer of InvokeEndpoint says: its type, message, and the model's own status. */
function invokeErrorDetail(answer, text) {
  const type = answer.headers.get("x-amzn-errortype") || "";
  let body = null;
  try {
    body = JSON.parse(text);
  } catch (_) {
    body = null;
  }
  const parts = [h("strong", null, type.split(":")[0] || "Error")];
  if (body && body.message) parts.push(": ", body.message);
  if (body && body.OriginalStatusCode !== undefined) {
    parts.push(h("div", null, `The model answered ${body.OriginalStatusCode}`,
      body.OriginalMessage ? [": ", h("code", null, body.OriginalMessage)] : ""));
  }
  return parts;
}

/** The log viewer: a container (or all of them), followed every second. */
function endpointLogPanel(ctx, endpointName) {
  const group = `/aws/sagemaker/Endpoints/${endpointName}`;
  const view = new LogView({ id: "log", placeholder: `Waiting for lines in ${group}…` });
  const notice = makeNotice();
  const picker = h("select", { id: "log-container" }, h("option", { value: "" }, "all containers"));
  let containers = [];
  // An endpoint's log may be long and chatty: the first read goes back half an hour.
  const since = () => Date.now() - FIRST_READ_MS;
  let follower = new LogFollower({ group, since: since() });
  let showStream = true;

  const choose = () => {
    const chosen = containers.find((c) => c.name === picker.value);
    showStream = !chosen;
    follower = chosen
      ? new LogFollower({ group: chosen.log_group || group, stream: chosen.log_stream, since: since() })
      : new LogFollower({ group, since: since() });
    view.reset(chosen ? `Waiting for lines in ${chosen.log_stream}…` : `Waiting for lines in ${group}…`);
  };
  picker.addEventListener("change", choose);

  const poll = () => guarded(notice, async () => {
    const asked = follower;
    const events = await asked.next();
    // The choice may have changed while the request was out; its lines belong to no one now.
    if (asked === follower) view.append(events, showStream);
  });
  ctx.every(1000, poll);

  const setContainers = (list) => {
    containers = list.filter((c) => c.log_stream);
    const wanted = ["", ...containers.map((c) => c.name)];
    const current = [...picker.options].map((o) => o.value);
    if (wanted.join("\u0000") === current.join("\u0000")) return;
    const selected = picker.value;
    picker.replaceChildren(...wanted.map((name) => {
      const container = containers.find((c) => c.name === name);
      return h("option", { value: name }, container ? `${container.name} (${container.log_stream})` : "all containers");
    }));
    picker.value = wanted.includes(selected) ? selected : "";
    if (picker.value !== selected) choose();
  };

  const element = section("Log",
    h("div", { class: "log-toolbar" },
      h("label", null, "Container ", picker),
      h("span", { class: "hint" }, h("code", null, group), " · last 1000 lines")),
    notice.element, view.pre);
  return { element, setContainers, firstPoll: poll };
}

/** FailureReason plus the last lines of the endpoint's log: why it failed, at a glance. */
function endpointFailurePanel(endpointName) {
  const group = `/aws/sagemaker/Endpoints/${endpointName}`;
  const element = h("div", { class: "failure", hidden: true });
  const notice = makeNotice();
  let shownFor = null;

  const update = async (endpoint) => {
    if (!endpoint || endpoint.EndpointStatus !== "Failed") {
      element.hidden = true;
      element.replaceChildren();
      shownFor = null;
      return;
    }
    // Fetch the tail once per failure (keyed by the modification time), not on every poll.
    const key = String(endpoint.LastModifiedTime);
    if (shownFor === key) return;
    shownFor = key;
    const tail = h("pre", { id: "log-tail", class: "log tail", "data-placeholder": "Reading the log…" });
    element.replaceChildren(
      h("h2", null, "Endpoint failed"),
      h("p", { id: "failure-reason", class: "failure-reason" }, endpoint.FailureReason || "(no FailureReason given)"),
      h("h3", null, "Last 50 log lines of ", h("code", null, group)),
      notice.element, tail);
    element.hidden = false;
    await guarded(notice, async () => {
      const events = await tailLogGroup(group, 50);
      if (events === null || events.length === 0) tail.dataset.placeholder = "The endpoint's log group has no lines.";
      else tail.textContent = events.map((e) => formatLogLine(e, true)).join("\n");
      // The end of the log (the traceback, usually) is what explains the failure.
      tail.scrollTop = tail.scrollHeight;
    });
  };
  return { element, update };
}

async function renderEndpoint(ctx, root, name) {
  document.title = `${name} · endpoint · sagedock`;
  const statusBadgeEl = statusBadge("…", { id: "endpoint-status" });
  const notice = makeNotice();
  const summary = h("div", { class: "summary" });
  const configExtras = h("div");
  // Hidden until the endpoint is found: an empty card says nothing.
  const summaryCard = h("section", { class: "card", hidden: true }, summary, configExtras);
  const failure = endpointFailurePanel(name);
  const variants = new KeyedTable({
    id: "variants", columns: variantColumns(), key: (v) => v.name,
    rowAttrs: (v) => ({ "data-variant": v.name }), empty: "No production variants yet.",
  });
  const containersNotice = makeNotice();
  const containers = new KeyedTable({
    id: "containers", columns: containerColumns(), key: (c) => c.name,
    rowAttrs: (c) => ({ "data-container": c.name }),
    empty: "No containers for this endpoint in this run of sagedock.",
  });
  let variantNames = [];
  const charts = endpointCharts(ctx, name, () => variantNames);
  const form = invokeForm(name);
  const logPanel = endpointLogPanel(ctx, name);

  root.append(
    pageHeader("Endpoints", name, " ", statusBadgeEl),
    notice.element,
    failure.element,
    summaryCard,
    section("Production variants", variants.element),
    section("Containers", containersNotice.element, containers.element),
    charts.element,
    form.element,
    logPanel.element);
  charts.redraw();

  let config = null;
  const refreshEndpoint = () => guarded(notice, async () => {
    if (!(await findResource("endpoint", name))) {
      setStatus(statusBadgeEl, "NotFound");
      throw new Error(`No endpoint named ${name}: it may not be created yet, or was deleted. This page keeps looking.`);
    }
    const endpoint = await sagemaker("DescribeEndpoint", { EndpointName: name });
    // A config never changes; fetch it again only when the endpoint moves to another one.
    if (!config || config.EndpointConfigName !== endpoint.EndpointConfigName) {
      config = (await findResource("endpointConfig", endpoint.EndpointConfigName))
        ? await sagemaker("DescribeEndpointConfig", { EndpointConfigName: endpoint.EndpointConfigName })
        : null;
    }
    setStatus(statusBadgeEl, endpoint.EndpointStatus);
    summaryCard.hidden = false;
    patch(summary, fieldList([
      ["Endpoint config", config ? endpoint.EndpointConfigName : [endpoint.EndpointConfigName, " (deleted)"]],
      ["Created", formatTime(endpoint.CreationTime)],
      ["Last modified", formatTime(endpoint.LastModifiedTime)],
      ["ARN", mono(endpoint.EndpointArn)],
    ]));
    patch(configExtras, endpointConfigFields(config));
    const merged = mergeVariants(endpoint, config);
    variantNames = merged.map((v) => v.name);
    variants.update(merged);
    form.setVariants(variantNames);
    await failure.update(endpoint);
  });

  const refreshContainers = () => guarded(containersNotice, async () => {
    const answer = await getJson("/_sagedock/containers");
    const mine = (answer.containers || []).filter((c) => c.endpoint === name);
    mine.sort((a, b) => String(a.variant).localeCompare(String(b.variant)) || a.name.localeCompare(b.name));
    containers.update(mine);
    logPanel.setContainers(mine);
  });

  await Promise.all([refreshEndpoint(), refreshContainers(), logPanel.firstPoll()]);
  ctx.every(2000, refreshEndpoint);
  ctx.every(2000, refreshContainers);
}

// ------------------------------------------------------------ model

function modelContainers(model) {
  if (model.Containers && model.Containers.length) return model.Containers;
  return model.PrimaryContainer ? [model.PrimaryContainer] : [];
}

function environmentTable(environment) {
  const entries = Object.entries(environment || {}).sort(([a], [b]) => a.localeCompare(b));
  if (entries.length === 0) return h("p", { class: "muted" }, "No environment variables.");
  return staticTable({
    columns: [
      { title: "Variable", cell: ([k]) => mono(k), class: "key" },
      { title: "Value", cell: ([, v]) => mono(v), class: "wrap" },
    ],
  }, entries);
}

function formatShape(shape) {
  if (shape === null || shape === undefined) return "unknown rank";
  // -1 is TensorFlow's unknown dimension (the batch, usually).
  return `[${shape.map((d) => (d === -1 ? "?" : String(d))).join(", ")}]`;
}

function tensorList(tensors) {
  if (!tensors || tensors.length === 0) return "—";
  return h("ul", { class: "tensors" }, tensors.map((t) =>
    h("li", null, h("code", null, t.name), " ", h("span", { class: "dtype" }, t.dtype), " ",
      h("code", { class: "shape", title: "? = any size" }, formatShape(t.shape)))));
}

/** Every signature of every TensorFlow model in the artifact, as one table. */
function signaturesTable(tfModels, id) {
  const rows = [];
  for (const model of tfModels) {
    for (const signature of (model.saved_model && model.saved_model.signatures) || []) rows.push({ model, signature });
  }
  if (rows.length === 0) return null;
  const several = tfModels.length > 1;
  const columns = [
    several ? { title: "Model", cell: (r) => `${r.model.name}/${r.model.version}` } : null,
    { title: "Signature", cell: (r) => mono(r.signature.name) },
    { title: "Method", cell: (r) => mono(r.signature.method) },
    { title: "Inputs", cell: (r) => tensorList(r.signature.inputs) },
    { title: "Outputs", cell: (r) => tensorList(r.signature.outputs) },
  ].filter(Boolean);
  return staticTable({ id, columns }, rows);
}

function findingsList(findings, id) {
  if (!findings || findings.length === 0) {
    return [h("ul", { id, class: "findings" }), h("p", { class: "ok-note" }, "No findings: the layout looks right for this framework.")];
  }
  return h("ul", { id, class: "findings" }, findings.map((f) =>
    h("li", { "data-severity": f.severity, "data-code": f.code, class: `finding finding-${f.severity}` },
      h("div", { class: "finding-head" },
        h("span", { class: `severity severity-${f.severity}` }, f.severity),
        h("code", { class: "finding-code" }, f.code),
        h("code", { class: "finding-path" }, f.path)),
      h("div", { class: "finding-message" }, f.message),
      f.fix ? h("pre", { class: "fix" }, f.fix) : null)));
}

function tfModelsSummary(tfModels) {
  return tfModels.map((m) => {
    const saved = m.saved_model;
    return h("p", { class: "tf-model" },
      h("strong", null, `${m.name}`), ` version ${m.version} at `, mono(m.path),
      saved ? [" · tags ", mono((saved.tags || []).join(", ") || "none"),
        saved.tensorflow_version ? [" · TensorFlow ", saved.tensorflow_version] : ""] : " · no saved_model.pb summary");
  });
}

/** The artifact report of one container: what sagedock found in its model.tar.gz. */
function artifactReport(entry, index) {
  const suffix = index === 0 ? "" : `-${index + 1}`;
  const report = entry.report;
  const parts = [h("h3", null, "Artifact")];
  if (entry.message) parts.push(h("p", { class: "muted" }, entry.message));
  if (!report) {
    if (!entry.message) parts.push(h("p", { class: "muted" }, "No artifact report for this container."));
    return parts;
  }
  const counts = report.counts || {};
  parts.push(fieldList([
    ["Framework", [h("strong", null, report.framework), report.detected_from ? [" (detected from ", mono(report.detected_from), ")"] : ""]],
    ["Files", String(report.files)],
    ["Size", formatBytes(report.bytes)],
    ["Unpacked at", mono(report.artifact)],
    ["SHA-256", report.sha256 ? mono(report.sha256) : null],
    ["Findings", [plural(counts.errors || 0, "error"), plural(counts.warnings || 0, "warning"), plural(counts.infos || 0, "note")].join(", ")],
  ]));
  parts.push(h("h3", null, "Findings"), findingsList(report.findings, `findings${suffix}`));
  const tfModels = report.tensorflow_models || [];
  if (tfModels.length) {
    parts.push(h("h3", null, "TensorFlow SavedModel"), tfModelsSummary(tfModels));
    const table = signaturesTable(tfModels, `signatures${suffix}`);
    parts.push(table || h("p", { class: "muted" }, "No serving signatures found."));
  }
  return parts;
}

function containerCard(container, index, total) {
  return h("section", { class: "card container-card" },
    h("h2", null, total > 1 ? `Container ${index + 1}` : "Container"),
    fieldList([
      ["Image", mono(container.Image)],
      ["Model data", mono(container.ModelDataUrl)],
      ["Mode", container.Mode],
      ["Hostname", container.ContainerHostname],
    ]),
    h("h3", null, "Environment"), environmentTable(container.Environment));
}

async function renderModel(ctx, root, name) {
  document.title = `${name} · model · sagedock`;
  root.append(pageHeader("Models", name));
  if (!(await findResource("model", name))) {
    root.append(h("div", { class: "notice" }, `No model named ${name}.`));
    return;
  }
  const model = await sagemaker("DescribeModel", { ModelName: name });
  const containers = modelContainers(model);
  root.append(h("section", { class: "card" }, fieldList([
    ["Created", formatTime(model.CreationTime)],
    ["Execution role", mono(model.ExecutionRoleArn)],
    ["Network isolation", model.EnableNetworkIsolation ? "enabled (the container gets no network)" : "disabled"],
    ["Inference mode", model.InferenceExecutionConfig ? model.InferenceExecutionConfig.Mode : null],
    ["ARN", mono(model.ModelArn)],
  ])));
  const cards = containers.map((c, i) => containerCard(c, i, containers.length));
  root.append(...cards);

  // The report unpacks and inspects the artifact, which can take a moment on a big one.
  const placeholder = h("p", { class: "muted" }, "Inspecting the model artifact…");
  (cards[0] || root).append(placeholder);
  const notice = makeNotice();
  placeholder.after(notice.element);
  const artifact = await guarded(notice, () => getJson(`/_sagedock/models/${encodeURIComponent(name)}/artifact`));
  placeholder.remove();
  if (!artifact) return;
  (artifact.containers || []).forEach((entry, i) => {
    let card = cards[i];
    if (!card) {
      card = h("section", { class: "card" }, h("h2", null, `Container ${i + 1}`), fieldList([["Image", mono(entry.image)]]));
      root.append(card);
    }
    card.append(...artifactReport(entry, i).flat());
  });
}

// ------------------------------------------------------------ jobs

const ACTIVE_JOB_STATUSES = ["InProgress", "Stopping"];

/** A failure box with #failure-reason, present only when the job failed. */
function failureBox(status, reason) {
  if (status !== "Failed") return null;
  return h("div", { class: "failure" },
    h("h2", null, "Failed"),
    h("p", { id: "failure-reason", class: "failure-reason" }, reason || "(no FailureReason given)"));
}

function keyValueTable(id, object, empty) {
  const entries = Object.entries(object || {}).sort(([a], [b]) => a.localeCompare(b));
  if (entries.length === 0) return h("p", { class: "muted" }, empty);
  return staticTable({
    id,
    columns: [
      { title: "Name", cell: ([k]) => mono(k), class: "key" },
      { title: "Value", cell: ([, v]) => mono(v), class: "wrap" },
    ],
  }, entries);
}

/** The tuning job's name from a TuningJobArn (…:hyper-parameter-tuning-job/NAME). */
function nameFromArn(arn) {
  return arn ? arn.split("/").pop() : null;
}

/**
 * The common shape of a job page: check the job exists, describe it, render, and keep
 * re-describing every 2 s while it runs.
 */
async function renderJobPage(ctx, root, { kind, label, name, resource, describe, statusOf, render, logGroup }) {
  document.title = `${name} · ${label} · sagedock`;
  const badge = statusBadge("…", { id: "job-status" });
  root.append(pageHeader(kind, name, " ", badge));
  if (!(await findResource(resource, name))) {
    setStatus(badge, "NotFound");
    root.append(h("div", { class: "notice" }, `No ${label} named ${name}.`));
    return;
  }
  const notice = makeNotice();
  const body = h("div");
  root.append(notice.element, body);
  let job = await describe(name);
  // render may return a promise (the tuning page lists its training jobs): the first
  // render is complete only when it settles.
  const refresh = async () => {
    setStatus(badge, statusOf(job));
    await render(body, job);
  };
  await refresh();
  const isActive = () => ACTIVE_JOB_STATUSES.includes(statusOf(job));

  let log = null;
  if (logGroup) {
    log = jobLogPanel(ctx, logGroup, name, isActive);
    root.append(log.element);
    await log.firstPoll();
  }
  if (!isActive()) return;
  const poller = ctx.every(2000, () => guarded(notice, async () => {
    job = await describe(name);
    await refresh();
    if (!isActive()) poller.stop();
  }));
}

function renderTrainingJob(ctx, root, name) {
  const slots = {
    failure: h("div"),
    summary: h("section", { class: "card" }),
    hyper: h("div"),
    metrics: h("div"),
    transitions: h("div"),
  };
  let built = false;
  const render = (body, job) => {
    if (!built) {
      body.append(slots.failure, slots.summary,
        section("Hyperparameters", slots.hyper),
        section("Final metrics", slots.metrics),
        section("Status history", slots.transitions));
      built = true;
    }
    patch(slots.failure, failureBox(job.TrainingJobStatus, job.FailureReason));
    const algorithm = job.AlgorithmSpecification || {};
    const resources = job.ResourceConfig || {};
    patch(slots.summary, fieldList([
      ["Secondary status", job.SecondaryStatus ? statusBadge(job.SecondaryStatus, { id: "secondary-status" }) : null],
      ["Image", mono(algorithm.TrainingImage || algorithm.AlgorithmName)],
      ["Input mode", algorithm.TrainingInputMode],
      ["Instances", resources.InstanceType ? `${resources.InstanceCount} × ${resources.InstanceType}` : null],
      ["Model artifact", job.ModelArtifacts ? mono(job.ModelArtifacts.S3ModelArtifacts) : null],
      ["Output path", job.OutputDataConfig ? mono(job.OutputDataConfig.S3OutputPath) : null],
      ["Tuning job", job.TuningJobArn ? link("tuning-jobs", nameFromArn(job.TuningJobArn)) : null],
      ["Created", formatTime(job.CreationTime)],
      ["Started", job.TrainingStartTime ? formatTime(job.TrainingStartTime) : null],
      ["Ended", job.TrainingEndTime ? formatTime(job.TrainingEndTime) : null],
      ["Training time", job.TrainingTimeInSeconds !== undefined
        ? formatDuration(job.TrainingTimeInSeconds)
        : (job.TrainingStartTime ? formatDuration(secondsBetween(job.TrainingStartTime, job.TrainingEndTime)) : null)],
      ["Role", mono(job.RoleArn)],
    ]));
    patch(slots.hyper, keyValueTable("hyperparameters", job.HyperParameters, "No hyperparameters."));
    const metrics = job.FinalMetricDataList || [];
    patch(slots.metrics, metrics.length
      ? staticTable({
        id: "final-metrics",
        columns: [
          { title: "Metric", cell: (m) => mono(m.MetricName) },
          { title: "Value", cell: (m) => formatMetric(m.Value), class: "num" },
          { title: "Time", cell: (m) => formatTime(m.Timestamp), class: "time" },
        ],
      }, metrics)
      : h("p", { class: "muted" }, ACTIVE_JOB_STATUSES.includes(job.TrainingJobStatus) ? "Metrics appear when the job ends." : "No final metrics (the job defines no metric definitions, or none matched its log)."));
    const transitions = job.SecondaryStatusTransitions || [];
    patch(slots.transitions, transitions.length
      ? staticTable({
        columns: [
          { title: "Status", cell: (t) => statusBadge(t.Status) },
          { title: "Started", cell: (t) => formatTime(t.StartTime), class: "time" },
          { title: "Ended", cell: (t) => formatTime(t.EndTime), class: "time" },
          { title: "Message", cell: (t) => orDash(t.StatusMessage), class: "wrap" },
        ],
      }, transitions)
      : h("p", { class: "muted" }, "No status transitions yet."));
  };
  return renderJobPage(ctx, root, {
    kind: "Training jobs",
    label: "training job",
    name,
    resource: "trainingJob",
    describe: (n) => sagemaker("DescribeTrainingJob", { TrainingJobName: n }),
    statusOf: (job) => job.TrainingJobStatus,
    render,
    logGroup: "/aws/sagemaker/TrainingJobs",
  });
}

/** Best first: by the objective's direction, jobs without a value last. */
function sortTrainingJobsByObjective(jobs, objectiveType) {
  const value = (j) => (j.FinalHyperParameterTuningJobObjectiveMetric ? j.FinalHyperParameterTuningJobObjectiveMetric.Value : null);
  const sign = objectiveType === "Maximize" ? -1 : 1;
  return [...jobs].sort((a, b) => {
    const va = value(a);
    const vb = value(b);
    if (va === null && vb === null) return String(a.TrainingJobName).localeCompare(String(b.TrainingJobName));
    if (va === null) return 1;
    if (vb === null) return -1;
    return sign * (va - vb);
  });
}

function counterTiles(title, counters) {
  return h("div", { class: "counters" }, h("h3", null, title),
    h("div", { class: "tiles" }, Object.entries(counters || {}).map(([k, v]) =>
      h("div", { class: "tile", "data-counter": k }, h("span", { class: "tile-value" }, String(v)), h("span", { class: "tile-label" }, k)))));
}

function renderTuningJob(ctx, root, name) {
  const slots = { failure: h("div"), summary: h("section", { class: "card" }), counters: h("section", { class: "card" }) };
  const jobsNotice = makeNotice();
  let bestName = null;
  const jobsTable = new KeyedTable({
    id: "tuning-training-jobs",
    key: (j) => j.TrainingJobName,
    rowAttrs: (j) => ({ "data-training-job": j.TrainingJobName, class: j.TrainingJobName === bestName ? "best" : null }),
    empty: "No training jobs launched yet.",
    columns: [
      { title: "Training job", cell: (j) => [link("training-jobs", j.TrainingJobName), j.TrainingJobName === bestName ? h("span", { class: "tag" }, "best") : ""] },
      { title: "Status", cell: (j) => statusBadge(j.TrainingJobStatus) },
      {
        title: "Tuned hyperparameters",
        cell: (j) => h("span", { class: "kv" }, Object.entries(j.TunedHyperParameters || {}).map(([k, v]) => h("code", null, `${k}=${v}`))),
      },
      {
        title: "Objective",
        cell: (j) => (j.FinalHyperParameterTuningJobObjectiveMetric ? formatMetric(j.FinalHyperParameterTuningJobObjectiveMetric.Value) : "—"),
        class: "num",
      },
      { title: "Ended", cell: (j) => formatTime(j.TrainingEndTime), class: "time" },
    ],
  });
  let built = false;

  const refreshJobs = (job) => guarded(jobsNotice, async () => {
    const jobs = await listAll("ListTrainingJobsForHyperParameterTuningJob",
      { HyperParameterTuningJobName: name }, "TrainingJobSummaries");
    const objective = (job.HyperParameterTuningJobConfig || {}).HyperParameterTuningJobObjective || {};
    jobsTable.update(sortTrainingJobsByObjective(jobs, objective.Type));
  });

  const render = (body, job) => {
    if (!built) {
      body.append(slots.failure, slots.summary, slots.counters,
        section("Training jobs", jobsNotice.element, jobsTable.element));
      built = true;
    }
    const config = job.HyperParameterTuningJobConfig || {};
    const objective = config.HyperParameterTuningJobObjective || {};
    const limits = config.ResourceLimits || {};
    const best = job.BestTrainingJob;
    bestName = best ? best.TrainingJobName : null;
    const bestMetric = best && best.FinalHyperParameterTuningJobObjectiveMetric;
    patch(slots.failure, failureBox(job.HyperParameterTuningJobStatus, job.FailureReason));
    patch(slots.summary, fieldList([
      ["Objective", objective.MetricName ? [objective.Type === "Maximize" ? "maximize " : "minimize ", mono(objective.MetricName)] : null],
      ["Strategy", config.Strategy],
      ["Best training job", best ? h("span", { id: "best-training-job" }, link("training-jobs", best.TrainingJobName),
        bestMetric ? [" · ", mono(bestMetric.MetricName), " = ", h("strong", null, formatMetric(bestMetric.Value))] : "") : "none yet"],
      ["Limits", limits.MaxNumberOfTrainingJobs ? `${limits.MaxNumberOfTrainingJobs} jobs, ${limits.MaxParallelTrainingJobs} in parallel` : null],
      ["Created", formatTime(job.CreationTime)],
      ["Ended", job.HyperParameterTuningEndTime ? formatTime(job.HyperParameterTuningEndTime) : null],
    ]));
    patch(slots.counters, h("div", { class: "counter-groups" },
      counterTiles("Training jobs", job.TrainingJobStatusCounters),
      counterTiles("Objective", job.ObjectiveStatusCounters)));
    // The jobs table refreshes with the job; its own errors show in its own notice.
    return refreshJobs(job);
  };

  return renderJobPage(ctx, root, {
    kind: "Tuning jobs",
    label: "tuning job",
    name,
    resource: "tuningJob",
    describe: (n) => sagemaker("DescribeHyperParameterTuningJob", { HyperParameterTuningJobName: n }),
    statusOf: (job) => job.HyperParameterTuningJobStatus,
    render,
  });
}

function renderTransformJob(ctx, root, name) {
  const slots = { failure: h("div"), summary: h("section", { class: "card" }), io: h("div", { class: "two-columns" }), env: h("div") };
  let built = false;
  const render = (body, job) => {
    if (!built) {
      body.append(slots.failure, slots.summary, slots.io, section("Environment", slots.env));
      built = true;
    }
    patch(slots.failure, failureBox(job.TransformJobStatus, job.FailureReason));
    const input = job.TransformInput || {};
    const s3 = ((input.DataSource || {}).S3DataSource) || {};
    const output = job.TransformOutput || {};
    const resources = job.TransformResources || {};
    patch(slots.summary, fieldList([
      ["Model", h("span", { id: "transform-model" }, link("models", job.ModelName))],
      ["Instances", resources.InstanceType ? `${resources.InstanceCount} × ${resources.InstanceType}` : null],
      ["Batch strategy", job.BatchStrategy],
      ["Max payload", job.MaxPayloadInMB ? `${job.MaxPayloadInMB} MB` : null],
      ["Max concurrent transforms", job.MaxConcurrentTransforms],
      ["Created", formatTime(job.CreationTime)],
      ["Started", job.TransformStartTime ? formatTime(job.TransformStartTime) : null],
      ["Ended", job.TransformEndTime ? formatTime(job.TransformEndTime) : null],
    ]));
    patch(slots.io, [
      section("Input", fieldList([
        ["S3 URI", mono(s3.S3Uri)],
        ["Data type", s3.S3DataType],
        ["Content type", input.ContentType],
        ["Split type", input.SplitType],
        ["Compression", input.CompressionType],
      ])),
      section("Output", fieldList([
        ["S3 output path", mono(output.S3OutputPath)],
        ["Accept", output.Accept],
        ["Assemble with", output.AssembleWith],
      ])),
    ]);
    patch(slots.env, keyValueTable("transform-environment", job.Environment, "No environment variables."));
  };
  return renderJobPage(ctx, root, {
    kind: "Transform jobs",
    label: "transform job",
    name,
    resource: "transformJob",
    describe: (n) => sagemaker("DescribeTransformJob", { TransformJobName: n }),
    statusOf: (job) => job.TransformJobStatus,
    render,
    logGroup: "/aws/sagemaker/TransformJobs",
  });
}

function renderNotFound(ctx, root, hash) {
  document.title = "Not found · sagedock";
  root.append(pageHeader("Not found", "Nothing here"),
    h("div", { class: "notice" }, `No page for ${hash}. `, h("a", { href: "#/" }, "Back to the overview.")));
}

// ============================================================ boot

// Whatever slips through is shown in the page; preventDefault keeps it off the console,
// where nobody using the dashboard would look.
window.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  showBanner(event.reason);
});
window.addEventListener("error", (event) => {
  event.preventDefault();
  showBanner(event.error || new Error(event.message));
});

window.addEventListener("hashchange", navigate);
loadServerInfo();
navigate();
