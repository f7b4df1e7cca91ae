// The page of `t2v serve`: plain JS, no framework, no network outside this server.
"use strict";

const $ = (id) => document.getElementById(id);
const HEADERS = { "X-Requested-With": "t2v" };
let config = null;
let currentJob = null;
let pollTimer = null;
let upload = null;

function showError(id, message) {
  const el = $(id);
  el.textContent = message || "";
  el.hidden = !message;
}

async function api(path, options = {}) {
  const response = await fetch(path, options);
  let data = null;
  try { data = await response.json(); } catch (e) { data = { error: `the server answered ${response.status}` }; }
  if (!response.ok) throw new Error(data && data.error ? data.error : `the server answered ${response.status}`);
  return data;
}

function postJSON(path, body) {
  return api(path, { method: "POST", headers: { ...HEADERS, "Content-Type": "application/json" }, body: JSON.stringify(body) });
}

function fillDefaults() {
  const model = config.models.find((m) => m.key === $("model").value) || config.models[0];
  const d = model.defaults;
  for (const key of ["num_frames", "height", "width", "steps", "guidance", "fps"]) $(key).value = d[key];
}

async function loadConfig() {
  config = await api("/api/config");
  for (const m of config.models) $("model").add(new Option(`${m.label} (${m.recipe})`, m.key));
  for (const s of config.schedulers) $("scheduler").add(new Option(s, s));
  for (const el of document.querySelectorAll("small[data-limit]")) {
    const key = el.dataset.limit;
    el.textContent = `max ${config.limits[key]}${key === "max_upload_mb" ? " MB" : ""}`;
  }
  $("server-info").textContent = `limits: ${config.limits.max_frames} frames, ${config.limits.max_size} px, ${config.limits.max_steps} steps`;
  fillDefaults();
}

function numberOrNull(id) {
  const v = $(id).value.trim();
  return v === "" ? null : Number(v);
}

async function generate(event) {
  event.preventDefault();
  showError("generate-error", "");
  const body = { model: $("model").value, prompt: $("prompt").value, negative_prompt: $("negative_prompt").value };
  for (const key of ["num_frames", "height", "width", "steps", "guidance", "seed", "fps"]) body[key] = numberOrNull(key);
  body.scheduler = $("scheduler").value || null;
  try {
    watch(await postJSON("/api/generate", body));
  } catch (e) {
    showError("generate-error", e.message);
  }
}

async function uploadClip() {
  showError("upload-error", "");
  upload = null;
  $("tune").disabled = true;
  const file = $("clip").files[0];
  if (!file) return;
  const limit = config.limits.max_upload_mb * 1e6;
  if (file.size > limit) {
    showError("upload-error", `the file (${(file.size / 1e6).toFixed(1)} MB) is over this server's limit of ${config.limits.max_upload_mb} MB`);
    return;
  }
  $("upload-status").textContent = "uploading...";
  try {
    upload = await api(`/api/upload?name=${encodeURIComponent(file.name)}`, { method: "POST", headers: HEADERS, body: file });
    $("upload-status").textContent = `uploaded: ${upload.frames} frames, ${upload.width}x${upload.height}, ${upload.fps} fps`;
    $("tune").disabled = false;
  } catch (e) {
    $("upload-status").textContent = "";
    showError("upload-error", e.message);
  }
}

async function tune(event) {
  event.preventDefault();
  showError("tune-error", "");
  if (!upload) { showError("tune-error", "upload a clip first"); return; }
  const body = {
    model: $("model").value, upload: upload.id, prompt: $("tune-prompt").value,
    edit_prompts: $("edit-prompts").value.split("\n"), tune_steps: numberOrNull("tune-steps"),
    num_frames: numberOrNull("tune-frames"), stride: numberOrNull("tune-stride"), steps: numberOrNull("tune-sample-steps"),
    guidance: numberOrNull("tune-guidance"), seed: numberOrNull("tune-seed"),
  };
  try {
    watch(await postJSON("/api/tune", body));
  } catch (e) {
    showError("tune-error", e.message);
  }
}

function watch(job) {
  currentJob = job;
  $("job-section").hidden = false;
  showJob(job);
  clearInterval(pollTimer);
  pollTimer = setInterval(poll, 300);
}

async function poll() {
  if (!currentJob) return;
  try {
    const job = await api(`/api/jobs/${currentJob.id}`);
    currentJob = job;
    showJob(job);
    if (["done", "failed", "cancelled"].includes(job.state)) {
      clearInterval(pollTimer);
      if (job.state === "done") { showResult(job.result.id, job.result.main, job.result.videos); loadResults(); }
    }
  } catch (e) {
    showError("job-error", e.message);
  }
}

function showJob(job) {
  const active = ["queued", "running"].includes(job.state);
  $("job-state").textContent = job.state === "cancelled" ? job.stage : job.state;
  $("job-stage").textContent = active ? `· ${job.stage}` + (job.position ? ` (place ${job.position} in the queue)` : "") : "";
  $("job-progress").max = job.total || 1;
  $("job-progress").value = job.step || 0;
  $("job-steps").textContent = job.total ? `${job.step} / ${job.total} steps` : "";
  $("cancel").disabled = !["queued", "running"].includes(job.state);
  showError("job-error", job.error);
}

async function cancel() {
  if (!currentJob) return;
  try {
    showJob(await api(`/api/jobs/${currentJob.id}/cancel`, { method: "POST", headers: HEADERS }));
  } catch (e) {
    showError("job-error", e.message);
  }
}

function fileUrl(id, name) {
  return `/files/${encodeURIComponent(id)}/${encodeURIComponent(name)}`;
}

function showResult(id, main, videos) {
  $("result-section").hidden = false;
  const video = $("result-video");
  video.src = fileUrl(id, main);
  video.dataset.result = id;
  video.dataset.file = main;
  video.play().catch(() => {});
  $("download").href = fileUrl(id, main) + "?download=1";
  const others = $("result-others");
  others.replaceChildren();
  for (const v of videos.filter((v) => v.file !== main)) {
    const a = document.createElement("a");
    a.textContent = v.file;
    a.href = "#";
    a.onclick = (e) => { e.preventDefault(); showResult(id, v.file, videos); };
    others.append(" · ", a);
  }
  const shown = videos.find((v) => v.file === main) || videos[0];
  $("result-settings").textContent = JSON.stringify(shown, null, 2);
}

async function loadResults() {
  try {
    const results = await api("/api/results");
    const list = $("results");
    list.replaceChildren();
    for (const r of results) {
      const main = r.videos.find((v) => v.file === r.main) || r.videos[0];
      const li = document.createElement("li");
      const a = document.createElement("a");
      a.href = "#";
      a.textContent = `${r.id} · ${r.kind} · ${main.prompt || ""}`;
      a.onclick = (e) => { e.preventDefault(); showResult(r.id, r.main, r.videos); };
      const dl = document.createElement("a");
      dl.href = fileUrl(r.id, r.main) + "?download=1";
      dl.textContent = "download";
      dl.setAttribute("download", "");
      li.append(a, " · ", dl);
      list.append(li);
    }
  } catch (e) {
    /* the list is a convenience: keep the page usable */
  }
}

document.addEventListener("DOMContentLoaded", async () => {
  $("generate-form").addEventListener("submit", generate);
  $("tune-form").addEventListener("submit", tune);
  $("clip").addEventListener("change", uploadClip);
  $("cancel").addEventListener("click", cancel);
  $("model").addEventListener("change", fillDefaults);
  try {
    await loadConfig();
  } catch (e) {
    showError("generate-error", `cannot read the server's settings: ${e.message}`);
  }
  loadResults();
  document.body.dataset.ready = "1";
});
