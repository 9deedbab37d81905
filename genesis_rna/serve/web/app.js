// genesis-rna web page: plain JS against the REST API of the same server (no build step, no network).
"use strict";

const $ = (id) => document.getElementById(id);
const SVG_NS = "http://www.w3.org/2000/svg";
const state = { records: [], fold: null, mutations: null, designs: null, model: null };

// ------------------------------------------------------------------------------------------ helpers
function parseFasta(text) {
  const records = [];
  let current = null;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line) continue;
    if (line.startsWith(">")) {
      const id = line.slice(1).trim().split(/\s+/)[0] || `record${records.length + 1}`;
      current = { id, sequence: "" };
      records.push(current);
    } else {
      if (!current) { current = { id: "query", sequence: "" }; records.push(current); }
      current.sequence += line;
    }
  }
  return records;
}

async function api(path, body) {
  const response = await fetch(path, {
    method: body === undefined ? "GET" : "POST",
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
    throw new Error(`${response.status}: ${detail}`);
  }
  return response;
}

function setStatus(id, text, isError = false) {
  const el = $(id);
  el.textContent = text;
  el.classList.toggle("error", isError);
}

function saveBlob(name, blob) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.appendChild(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
}

function csvCell(value) {
  const text = String(value ?? "");
  return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function toCsv(rows, columns) {
  return [columns.join(","), ...rows.map((r) => columns.map((c) => csvCell(r[c])).join(","))].join("\n") + "\n";
}

function svgEl(tag, attrs) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

function fillTable(table, rows, columns) {
  table.innerHTML = "";
  const head = table.insertRow();
  for (const c of columns) { const th = document.createElement("th"); th.textContent = c; head.appendChild(th); }
  for (const r of rows) {
    const tr = table.insertRow();
    for (const c of columns) {
      const v = r[c];
      tr.insertCell().textContent = typeof v === "number" && !Number.isInteger(v) ? v.toFixed(3) : v;
    }
  }
}

// ------------------------------------------------------------------------------------------ drawing
function drawStructure(fold) {
  const box = $("structure");
  box.innerHTML = "";
  const xs = fold.layout.map((p) => p[0]), ys = fold.layout.map((p) => p[1]);
  const pad = 12, minX = Math.min(...xs) - pad, minY = Math.min(...ys) - pad;
  const w = Math.max(...xs) - minX + pad, h = Math.max(...ys) - minY + pad;
  const svg = svgEl("svg", { viewBox: `${minX} ${minY} ${w} ${h}`, width: 420, height: Math.max(200, 420 * h / w),
                             "data-length": fold.length });
  const backbone = fold.layout.map((p) => p.join(",")).join(" ");
  svg.appendChild(svgEl("polyline", { points: backbone, fill: "none", stroke: "#555", "stroke-width": 1 }));
  fold.partners.forEach((j, i) => {
    if (j > i) {
      const [x1, y1] = fold.layout[i], [x2, y2] = fold.layout[j];
      svg.appendChild(svgEl("line", { x1, y1, x2, y2, stroke: "#c0392b", "stroke-width": 1.5, class: "pair" }));
    }
  });
  fold.layout.forEach(([x, y], i) => {
    const base = fold.sequence[i];
    const circle = svgEl("circle", { cx: x, cy: y, r: 5, class: `nt nt-${base}`, "data-index": i + 1 });
    const title = svgEl("title", {});
    title.textContent = `${base}${i + 1}`;
    circle.appendChild(title);
    svg.appendChild(circle);
    if (fold.length <= 300) {
      const label = svgEl("text", { x, y: y + 2.5, "font-size": 6, "text-anchor": "middle" });
      label.textContent = base;
      svg.appendChild(label);
    }
  });
  box.appendChild(svg);
  const energy = fold.energy === null ? "" : `  (${fold.energy.toFixed(2)} kcal/mol)`;
  $("dbn-text").textContent = `${fold.sequence}\n${fold.structure}${energy}`;
  $("fold-method").textContent = fold.method;
}

function drawMatrix(canvas, length, valueAt) {
  canvas.width = length;
  canvas.height = length;
  canvas.style.width = canvas.style.height = "360px";
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(length, length);
  for (let i = 0; i < length; i++) {
    for (let j = 0; j < length; j++) {
      const v = Math.max(0, Math.min(1, valueAt(i, j)));
      const k = 4 * (i * length + j);
      image.data[k] = 255 - Math.round(v * 225);
      image.data[k + 1] = 255 - Math.round(v * 200);
      image.data[k + 2] = 255 - Math.round(v * 120);
      image.data[k + 3] = 255;
    }
  }
  ctx.putImageData(image, 0, 0);
  canvas.dataset.length = String(length);
}

function drawBpp(fold) {
  const L = fold.length;
  const prob = new Float32Array(L * L);
  for (const [i, j, p] of fold.bpp) prob[i * L + j] = p;
  drawMatrix($("bpp"), L, (i, j) => (j > i ? prob[i * L + j] : i > j ? (fold.partners[j] === i ? 1 : 0) : 0));
}

function drawPca(records, pca) {
  const svg = $("pca");
  svg.innerHTML = "";
  svg.dataset.points = "0";
  if (!pca) {
    const t = svgEl("text", { x: 10, y: 20, "font-size": 12 });
    t.textContent = "paste two or more records to see their PCA";
    svg.appendChild(t);
    return;
  }
  const W = 360, H = 300, pad = 30;
  const xs = pca.coords.map((c) => c[0]), ys = pca.coords.map((c) => c[1]);
  const scale = (v, lo, hi, a, b) => (hi === lo ? (a + b) / 2 : a + (v - lo) * (b - a) / (hi - lo));
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  pca.coords.forEach(([x, y], k) => {
    const cx = scale(x, x0, x1, pad, W - pad), cy = scale(y, y0, y1, H - pad, pad);
    svg.appendChild(svgEl("circle", { cx, cy, r: 4, fill: "#1f77b4", class: "pca-point" }));
    const right = cx > W / 2;  // labels point inwards so they are never clipped at the edge
    const t = svgEl("text", { x: right ? cx - 5 : cx + 5, y: cy - 5, "font-size": 10,
                              "text-anchor": right ? "end" : "start" });
    t.textContent = records[k].id;
    svg.appendChild(t);
  });
  const r = pca.explained_variance_ratio.map((v) => (100 * v).toFixed(1));
  const axis = svgEl("text", { x: 5, y: H - 5, "font-size": 10, fill: "#667" });
  axis.textContent = `PC1 ${r[0]}%  PC2 ${r[1] ?? 0}%`;
  svg.appendChild(axis);
  svg.dataset.points = String(pca.coords.length);
}

// ------------------------------------------------------------------------------------------ actions
function selectedRecord() {
  return state.records[Number($("record").value) || 0];
}

async function runFold(record) {
  const fold = await (await api("/fold", { ...record, method: $("fold-choice").value })).json();
  state.fold = fold;
  drawStructure(fold);
  drawBpp(fold);
  $("dl-ct").disabled = $("dl-dbn").disabled = false;
}

async function runAttention() {
  const record = selectedRecord();
  if (!record) return;
  const head = $("attn-head").value;
  const body = { ...record, layer: Number($("attn-layer").value), head: head === "mean" ? null : Number(head) };
  try {
    const data = await (await api("/attention", body)).json();
    let max = 0;
    for (const row of data.matrix) for (const v of row) max = Math.max(max, v);
    drawMatrix($("attention"), data.length, (i, j) => data.matrix[i][j] / (max || 1));
  } catch (err) {
    setStatus("status", `attention: ${err.message}`, true);
  }
}

async function runEmbed() {
  if (state.records.length < 2) { drawPca(state.records, null); $("dl-npy").disabled = state.records.length === 0; return; }
  const data = await (await api("/embed", { records: state.records, pca: true })).json();
  drawPca(state.records, data.pca);
  $("dl-npy").disabled = false;
}

async function analyse() {
  state.records = parseFasta($("fasta").value);
  const select = $("record");
  select.innerHTML = "";
  state.records.forEach((r, k) => select.add(new Option(`${r.id} (${r.sequence.length} nt)`, String(k))));
  if (!state.records.length) { setStatus("status", "paste or upload at least one sequence", true); return; }
  await analyseSelected();
  try { await runEmbed(); } catch (err) { setStatus("status", `embeddings: ${err.message}`, true); }
}

async function analyseSelected() {
  const record = selectedRecord();
  setStatus("status", `folding ${record.id}…`);
  document.body.dataset.state = "busy";
  try {
    await runFold(record);
    setStatus("status", `${record.id}: ${state.fold.length} nt`);
    await runAttention();
  } catch (err) {
    setStatus("status", err.message, true);
  } finally {
    document.body.dataset.state = "idle";
  }
}

function drawMutationMap(scores, length) {
  // rows A C G U x positions; single substitutions only; red = score > 0 (more like what the model expects)
  const canvas = $("mutation-map");
  const singles = scores.filter((s) => s.n_mutations === 1);
  const max = Math.max(1e-9, ...singles.map((s) => Math.abs(s.score)));
  canvas.width = length;
  canvas.height = 4;
  canvas.style.width = `${Math.min(720, Math.max(360, 4 * length))}px`;
  canvas.style.height = "48px";
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#ffffff";
  ctx.fillRect(0, 0, length, 4);
  for (const s of singles) {
    const m = /^([ACGU])(\d+)([ACGU])$/.exec(s.variant);
    if (!m) continue;
    const v = s.score / max, shade = Math.round(255 * (1 - Math.abs(v)));
    ctx.fillStyle = v >= 0 ? `rgb(255,${shade},${shade})` : `rgb(${shade},${shade},255)`;
    ctx.fillRect(Number(m[2]) - 1, "ACGU".indexOf(m[3]), 1, 1);
  }
  canvas.dataset.length = String(length);
}

async function runMutations() {
  const record = selectedRecord();
  if (!record) { setStatus("mutation-status", "analyse a sequence first", true); return; }
  const lines = $("variants").value.split(/\r?\n/).map((s) => s.trim()).filter(Boolean);
  setStatus("mutation-status", "scoring…");
  try {
    const data = await (await api("/score-mutations", { ...record, variants: lines.length ? lines : null })).json();
    state.mutations = data.scores;
    drawMutationMap(data.scores, record.sequence.replace(/[\s.~-]/g, "").length);
    const top = [...data.scores].sort((a, b) => b.score - a.score).slice(0, 30);
    fillTable($("mutation-table"), top, ["variant", "score"]);
    setStatus("mutation-status", `${data.scores.length} variants scored (${data.method}); top 30 shown`);
    $("dl-mut-csv").disabled = false;
  } catch (err) {
    setStatus("mutation-status", err.message, true);
  }
}

async function runDesign() {
  setStatus("design-status", "designing…");
  try {
    const body = { structure: $("design-structure").value, n: Number($("design-n").value) || 1 };
    const data = await (await api("/design", body)).json();
    state.designs = data.designs;
    const columns = Object.keys(data.designs[0] || { sequence: "" });
    fillTable($("design-table"), data.designs, columns);
    setStatus("design-status", `${data.designs.length} sequences`);
    $("dl-design-csv").disabled = false;
  } catch (err) {
    setStatus("design-status", err.message, true);
  }
}

async function downloadNpy() {
  try {
    const blob = await (await api("/embed/npy", { records: state.records, pca: false })).blob();
    saveBlob("embeddings.npy", blob);
  } catch (err) {
    setStatus("status", err.message, true);
  }
}

async function loadModelInfo() {
  try {
    const info = await (await api("/models")).json();
    state.model = info.loaded;
    $("model-info").textContent = `${info.loaded.name}: ${info.loaded.n_layers} layers × ${info.loaded.n_heads} heads, ` +
      `d=${info.loaded.d_model}; up to ${info.limits.max_length} nt`;
    const layer = $("attn-layer"), head = $("attn-head");
    for (let l = 1; l <= info.loaded.n_layers; l++) layer.add(new Option(String(l), String(l)));
    layer.value = String(info.loaded.n_layers);
    head.add(new Option("mean", "mean"));
    for (let h = 0; h < info.loaded.n_heads; h++) head.add(new Option(String(h), String(h)));
  } catch (err) {
    $("model-info").textContent = `model info unavailable: ${err.message}`;
  }
}

function wire() {
  $("run").addEventListener("click", analyse);
  $("record").addEventListener("change", analyseSelected);
  $("fold-choice").addEventListener("change", () => { if (state.records.length) analyseSelected(); });
  $("attn-layer").addEventListener("change", runAttention);
  $("attn-head").addEventListener("change", runAttention);
  $("run-mutations").addEventListener("click", runMutations);
  $("run-design").addEventListener("click", runDesign);
  $("dl-ct").addEventListener("click", () => saveBlob(`${state.fold.id}.ct`, new Blob([state.fold.ct])));
  $("dl-dbn").addEventListener("click", () => saveBlob(`${state.fold.id}.dbn`, new Blob([state.fold.dbn])));
  $("dl-npy").addEventListener("click", downloadNpy);
  $("dl-mut-csv").addEventListener("click", () =>
    saveBlob("mutations.csv", new Blob([toCsv(state.mutations, ["id", "variant", "n_mutations", "score", "sequence"])])));
  $("dl-design-csv").addEventListener("click", () =>
    saveBlob("designs.csv", new Blob([toCsv(state.designs, Object.keys(state.designs[0] || {}))])));
  $("fasta-file").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    if (!file) return;
    $("fasta").value = await file.text();
    await analyse();
  });
}

wire();
loadModelInfo();
