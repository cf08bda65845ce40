// The page: pick a file and a job, upload it straight to storage, follow the job's
// events, then play and download what it made. Live captions live in captions.js.

import {
  ApiError, apiUrl, followJob, getJson, hasApiKey, onUnauthorized, postJson, putFile,
  sameOriginPath, setApiKey,
} from "./api.js";
import { setupCaptions } from "./captions.js";
import { Mixer } from "./mixer.js";
import {
  el, percent, renderArchive, renderRecent, renderTranscript, renderTranscriptFiles,
} from "./render.js";

const $ = (id) => document.getElementById(id);
const ENDPOINTS = { separate: "v1/separations", transcribe: "v1/transcriptions", lyrics: "v1/lyrics" };
const WORKING = { separate: "Separating", transcribe: "Transcribing", lyrics: "Making lyrics" };
const STATUS_TEXT = {
  queued: "The job is queued.",
  running: "The job is running.",
  succeeded: "Done.",
  failed: "The job failed.",
  cancelled: "The job was cancelled.",
};

let catalogue = { separation: { models: [] }, transcription: { models: [] } };
let mixer = null;
const RECENT_LIMIT = 10;

function say(text) {
  $("status").textContent = text;
}

function showError(error) {
  const box = $("error");
  const message = error instanceof ApiError || error instanceof Error ? error.message : String(error);
  box.textContent = message || "Something went wrong.";
  box.hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

function mode() {
  return document.querySelector('input[name="mode"]:checked').value;
}

function fillSelect(select, names, chosen) {
  select.replaceChildren(...names.map((name) => el("option", { value: name }, name)));
  if (names.includes(chosen)) select.value = chosen;
}

function sourcesOf(modelName) {
  const model = catalogue.separation.models.find((m) => m.name === modelName);
  // A model not loaded yet (fetched on first use) has no stems listed.
  return model && model.sources ? model.sources : [];
}

function renderStemChoices() {
  const sources = sourcesOf($("separation-model").value);
  const boxes = sources.map((name) => {
    const label = el("label");
    label.append(el("input", { type: "checkbox", name: "stems", value: name, checked: "" }), ` ${name}`);
    return label;
  });
  $("stem-choices").replaceChildren(...boxes);
  const two = $("two-stems");
  two.replaceChildren(two.options[0], ...sources.map((s) => el("option", { value: s }, `${s} + no_${s}`)));
  syncStemChoices();
}

function syncStemChoices() {
  const two = $("two-stems").value !== "";
  for (const box of document.querySelectorAll('input[name="stems"]')) box.disabled = two;
}

function syncMode() {
  const current = mode();
  for (const group of document.querySelectorAll("[data-modes]")) {
    group.hidden = !group.dataset.modes.split(" ").includes(current);
  }
}

async function loadModels() {
  try {
    catalogue = await getJson("v1/models");
  } catch (error) {
    showError(error);
    return false;
  }
  const separation = catalogue.separation.models.map((m) => m.name);
  const transcription = catalogue.transcription.models.map((m) => m.name);
  fillSelect($("separation-model"), separation, catalogue.separation.default);
  fillSelect($("transcription-model"), transcription, catalogue.transcription.default);
  fillSelect($("live-model"), transcription, catalogue.transcription.default);
  renderStemChoices();
  return true;
}

// The job's parameters, as DESIGN's API takes them; null (and a message) when unusable.
function jobParams(kind) {
  const language = $("language").value.trim();
  if (kind === "transcribe") {
    return { model: $("transcription-model").value, ...(language && { language }) };
  }
  const format = $("format").value;
  if (kind === "lyrics") {
    return {
      separation_model: $("separation-model").value,
      model: $("transcription-model").value,
      format,
      ...(language && { language }),
    };
  }
  const params = { model: $("separation-model").value, format };
  const two = $("two-stems").value;
  if (two) return { ...params, two_stems: two };
  const boxes = [...document.querySelectorAll('input[name="stems"]')];
  const ticked = boxes.filter((b) => b.checked).map((b) => b.value);
  if (ticked.length === 0) throw new ApiError("Tick at least one stem, or choose two stems.");
  return ticked.length === boxes.length ? params : { ...params, stems: ticked };
}

function resetProgress(kind) {
  $("progress").hidden = false;
  $("job-label").textContent = WORKING[kind];
  setBar("upload", 0);
  setBar("job", 0);
  $("result").hidden = true;
}

function setBar(name, fraction) {
  $(`${name}-bar`).value = fraction;
  $(`${name}-text`).textContent = percent(fraction);
}

async function upload(file) {
  say(`Uploading ${file.name}…`);
  const slot = await postJson("v1/uploads", {
    filename: file.name,
    content_type: file.type || "application/octet-stream",
    bytes: file.size,
  });
  await putFile(slot.put_url, file, slot.headers, (f) => setBar("upload", f));
  return slot.upload_id;
}

async function runJob(kind, file) {
  const params = jobParams(kind);
  resetProgress(kind);
  const uploadId = await upload(file);
  const job = await postJson(ENDPOINTS[kind], { input: { upload_id: uploadId }, ...params });
  say(STATUS_TEXT.queued);
  const done = await followJob(sameOriginPath(job.events_url), {
    onStatus: (status) => say(STATUS_TEXT[status] || status),
    onProgress: (fraction) => setBar("job", fraction),
  });
  if (done.status !== "succeeded") {
    const message = done.error?.message || STATUS_TEXT[done.status] || "The job did not finish.";
    throw new ApiError(message, done.error?.code || "");
  }
  setBar("job", 1);
  await showResult(done.result);
  say(done.cached ? "Done: the same request was answered before, so its result is reused." : "Done.");
  loadRecent();
}

async function showResult(result) {
  const outputs = result.outputs || {};
  mixer?.stop();
  mixer = new Mixer($("mixer"), outputs);
  $("mixer").hidden = mixer.render() === 0;
  renderArchive($("archive"), result.archive);
  renderTranscriptFiles($("transcript-files"), outputs);
  $("transcript-view").hidden = true;
  $("result").hidden = false;
  if (outputs.json) await showTranscript(outputs.json.url);
}

async function showTranscript(url) {
  let transcript;
  try {
    const response = await fetch(url);
    if (!response.ok) throw new Error(String(response.status));
    transcript = await response.json();
  } catch {
    throw new ApiError("The transcript could not be loaded here; download it below instead.");
  }
  renderTranscript($("transcript"), transcript);
  $("transcript-view").hidden = false;
}

async function onSubmit(event) {
  event.preventDefault();
  clearError();
  const file = $("file").files[0];
  if (!file) {
    showError(new ApiError("Choose a file first."));
    $("file").focus();
    return;
  }
  const start = $("start");
  start.disabled = true;
  try {
    await runJob(mode(), file);
  } catch (error) {
    say("Stopped.");
    showError(error);
  } finally {
    start.disabled = false;
  }
}

// The tenant's latest jobs; a finished one reopens with fresh download URLs.
async function loadRecent() {
  let page;
  try {
    page = await getJson(`v1/jobs?limit=${RECENT_LIMIT}`);
  } catch {
    return; // the key form or the error box already says why
  }
  $("recent-empty").hidden = renderRecent($("recent"), page.jobs, openJob) > 0;
}

async function openJob(jobId) {
  clearError();
  try {
    const job = await getJson(`v1/jobs/${jobId}`);
    $("progress").hidden = true;
    await showResult(job.result);
    say("Reopened an earlier job.");
    $("result-heading").scrollIntoView();
  } catch (error) {
    showError(error);
  }
}

function showChosenFile() {
  const file = $("file").files[0];
  $("file-hint").textContent = file ? `${file.name} (${(file.size / 1e6).toFixed(1)} MB)` : "Drop a file here or pick one.";
  if (file) say(`Ready: ${file.name}. Choose what to do, then Start.`);
}

function setupDrop() {
  const zone = $("drop");
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    if (event.dataTransfer?.files.length) {
      $("file").files = event.dataTransfer.files;
      showChosenFile();
    }
  });
}

// Shown when the server answers 401 (or a key is already kept); a new key reloads the models.
function setupKey() {
  const form = $("key-form");
  form.hidden = !hasApiKey();
  onUnauthorized(() => {
    form.hidden = false;
    $("api-key").focus();
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    setApiKey($("api-key").value.trim());
    clearError();
    say("Key saved. Loading the models…");
    if (await loadModels()) say("Pick a file to begin.");
    loadRecent();
  });
}

function main() {
  setupKey();
  $("job-form").addEventListener("submit", onSubmit);
  $("file").addEventListener("change", showChosenFile);
  for (const radio of document.querySelectorAll('input[name="mode"]')) {
    radio.addEventListener("change", syncMode);
  }
  $("separation-model").addEventListener("change", renderStemChoices);
  $("two-stems").addEventListener("change", syncStemChoices);
  setupDrop();
  syncMode();
  $("recent-refresh").addEventListener("click", loadRecent);
  setupCaptions(apiUrl("v1/stream/transcriptions"), apiUrl("static/pcm-worklet.js"));
  loadModels();
  loadRecent();
}

main();
