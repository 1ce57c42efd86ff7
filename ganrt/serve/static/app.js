// ganrt serve's page: plain JavaScript over the HTTP API (no build step). Every image is an API URL.
"use strict";

const $ = (id) => document.getElementById(id);
let models = [];

function key() { return $("api-key").value.trim(); }
function authHeaders() { return key() ? { Authorization: "Bearer " + key() } : {}; }

function showError(text) { $("error").textContent = text || ""; }

async function api(path, options = {}) {
  const reply = await fetch(path, { ...options, headers: { ...(options.headers || {}), ...authHeaders() } });
  if (reply.status === 401) { $("key-box").hidden = false; }
  if (!reply.ok) {
    let message = reply.status + " " + reply.statusText;
    try { message = (await reply.json()).error || message; } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return reply;
}

// An <img> from an API URL: straight (the browser caches immutable images) or, with a key, fetched with it.
async function setImage(img, url) {
  img.dataset.url = url;
  if (!key()) { img.src = url; return; }
  const blob = await (await api(url)).blob();
  if (img.dataset.url === url) { img.src = URL.createObjectURL(blob); }
}

function option(select, value, text) {
  const o = document.createElement("option");
  o.value = value; o.textContent = text; select.appendChild(o);
}

function generator() { return models.find((m) => m.served_as === $("gen-model").value); }

function fillClasses() {
  const m = generator(), select = $("gen-class");
  select.innerHTML = "";
  if (!m || !m.num_classes) { option(select, "", "(unconditional)"); select.disabled = true; return; }
  select.disabled = false;
  option(select, "", "every class (i % K)");
  const names = m.class_names && m.class_names.length ? m.class_names : [...Array(m.num_classes).keys()].map(String);
  names.forEach((name, i) => option(select, String(i), i + ": " + name));
}

function query(extra = {}) {
  const q = new URLSearchParams(extra);
  if ($("gen-class").value !== "") q.set("label", $("gen-class").value);
  const t = $("gen-truncation").value;
  if (t !== "") q.set("truncation", t);
  const s = q.toString();
  return s ? "?" + s : "";
}

function grid(element, count, urlOf) {
  const cols = Math.ceil(Math.sqrt(count));
  element.style.setProperty("--cols", cols);
  while (element.children.length > count) element.lastChild.remove();
  while (element.children.length < count) element.appendChild(document.createElement("img"));
  [...element.children].forEach((img, i) => {
    img.alt = "image " + i;
    setImage(img, urlOf(i)).catch((e) => showError(e.message));
  });
}

function seedOf(input) { return String(Math.trunc(Number(input.value) || 0)); }

function drawGrid() {
  showError("");
  const name = encodeURIComponent($("gen-model").value), seed = seedOf($("gen-seed"));
  grid($("gen-grid"), Number($("gen-count").value), (i) => `/v1/models/${name}/images/${seed}/${i}.png${query()}`);
  drawWalk();
}

function drawWalk() {
  const name = encodeURIComponent($("gen-model").value), a = seedOf($("walk-a")), b = seedOf($("walk-b"));
  const t = (Number($("walk-t").value) / Number($("walk-t").max)).toFixed(4);
  $("walk-t-out").textContent = Number(t).toFixed(2);
  grid($("walk-grid"), Number($("gen-count").value), (i) => `/v1/models/${name}/walk/${a}/${b}/${i}.png${query({ t })}`);
}

// An upscaler: bicubic (left) beside the model (right); a translator: the input (left) beside its output.
async function upscaleFile(file) {
  showError("");
  const name = encodeURIComponent($("up-model").value);
  const m = models.find((x) => x.served_as === $("up-model").value);
  const translator = m.kind === "translator";
  $("up-note").textContent = `${file.name}: ${translator ? "translating" : "upscaling x" + m.scale}...`;
  $("up-caption").textContent = $("up-model").value;
  $("up-left-caption").textContent = translator ? "input" : "bicubic";
  const send = (path) => api(`/v1/models/${name}/${path}`, {
    method: "POST", body: file, headers: { "Content-Type": file.type || "application/octet-stream" } });
  try {
    const [left, model] = translator ? [file, await send("translate")]
      : await Promise.all([send("upscale?resample=bicubic"), send("upscale")]);
    $("up-bicubic").src = URL.createObjectURL(translator ? left : await left.blob());
    $("up-model-out").src = URL.createObjectURL(await model.blob());
    $("up-note").textContent = translator ? `${file.name}: input (left) and ${m.served_as} (right)`
      : `${file.name}: x${m.scale}, bicubic (left) and ${m.served_as} (right)`;
  } catch (e) {
    $("up-note").textContent = "";
    showError(e.message);
  }
}

async function start() {
  try {
    models = (await (await api("/v1/models")).json()).models;
  } catch (e) {
    $("status").textContent = "";
    showError(e.message + (key() ? "" : " (enter the API key, then reload the models)"));
    return;
  }
  const gens = models.filter((m) => m.kind === "generator");
  const ups = models.filter((m) => m.kind === "upscaler" || m.kind === "translator");
  $("status").textContent = models.map((m) => m.served_as + " (" + m.kind + ")").join(", ");
  gens.forEach((m) => option($("gen-model"), m.served_as, m.served_as));
  ups.forEach((m) => option($("up-model"), m.served_as, m.served_as + (m.kind === "translator" ? " (translator)" : " (x" + m.scale + ")")));
  $("generator").hidden = !gens.length;
  $("upscaler").hidden = !ups.length;
  if (gens.length) { fillClasses(); drawGrid(); }
}

$("gen-model").addEventListener("change", () => { fillClasses(); drawGrid(); });
["gen-class", "gen-seed", "gen-truncation", "gen-count"].forEach((id) => $(id).addEventListener("change", drawGrid));
["walk-a", "walk-b"].forEach((id) => $(id).addEventListener("change", drawWalk));
$("walk-t").addEventListener("input", drawWalk);
$("api-key").addEventListener("change", start);
$("up-file").addEventListener("change", (e) => { if (e.target.files[0]) upscaleFile(e.target.files[0]); });
const drop = $("up-drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault(); drop.classList.remove("over");
  if (e.dataTransfer.files[0]) upscaleFile(e.dataTransfer.files[0]);
});
start();
