// Building the result view: downloads, the transcript with timestamps, recent jobs
// (the stem mixer is mixer.js).
// Text from the API only ever goes through textContent.

const TRANSCRIPT_FILES = ["srt", "vtt", "txt", "lrc", "json"];

export function el(tag, attributes = {}, text = "") {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text) node.textContent = text;
  return node;
}

export function clock(seconds) {
  const whole = Math.max(0, seconds);
  const minutes = Math.floor(whole / 60);
  const rest = (whole - minutes * 60).toFixed(1).padStart(4, "0");
  return `${minutes}:${rest}`;
}

export function percent(fraction) {
  return `${Math.round(Math.min(1, Math.max(0, fraction)) * 100)} %`;
}

function isAudio(output) {
  return (output.content_type || "").startsWith("audio/");
}

function download(link, label) {
  return el("a", { href: link.url, download: link.filename || "", class: "button secondary" }, label);
}

export function renderArchive(holder, archive) {
  holder.replaceChildren();
  holder.hidden = !archive;
  if (archive) holder.append(download(archive, "Download all stems (ZIP)"));
}

export function renderTranscriptFiles(holder, outputs) {
  holder.replaceChildren();
  for (const ext of TRANSCRIPT_FILES) {
    if (outputs[ext] && !isAudio(outputs[ext])) {
      holder.append(download(outputs[ext], ext.toUpperCase()), " ");
    }
  }
  holder.hidden = holder.children.length === 0;
  if (!holder.hidden) holder.prepend(el("span", {}, "Transcript as: "));
}

export function renderTranscript(list, transcript) {
  list.replaceChildren();
  for (const segment of transcript.segments || []) {
    const item = el("li");
    const time = el("span", { class: "time" }, `${clock(segment.start)} – ${clock(segment.end)}`);
    item.append(time, " ", el("span", { class: "text" }, segment.text.trim()));
    list.append(item);
  }
  if (list.children.length === 0) list.append(el("li", {}, "No speech was heard."));
}

const KIND_TEXT = { separation: "Stems", transcription: "Transcript", lyrics: "Lyrics" };

// The tenant's recent jobs, newest first; finished ones get an Open button.
export function renderRecent(list, jobs, onOpen) {
  list.replaceChildren();
  for (const job of jobs) {
    const when = new Date(job.created_at).toLocaleString();
    const item = el("li", { "data-job": job.job_id });
    const label = `${KIND_TEXT[job.kind] || job.kind} · ${when} · ${job.status}${job.cached ? " (cached)" : ""}`;
    item.append(el("span", {}, label), " ");
    if (job.status === "succeeded") {
      const open = el("button", { type: "button", class: "secondary" }, "Open");
      open.setAttribute("aria-label", `Open ${KIND_TEXT[job.kind] || job.kind} of ${when}`);
      open.addEventListener("click", () => onOpen(job.job_id));
      item.append(open);
    }
    list.append(item);
  }
  return list.children.length;
}
