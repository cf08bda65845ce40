// The stem mixer: every stem of a job in sync from one transport, each with mute, solo,
// volume, a waveform and a level meter.
//
// Each stem is an <audio> element (it streams; nothing waits for a whole download)
// routed through Web Audio: element -> gain (volume, mute, solo) -> analyser (level)
// -> speakers. The first stem is the clock: the others start and seek with it and are
// pulled back whenever they drift by more than DRIFT seconds. Waveforms are drawn from
// the decoded stems once they have arrived.

import { clock, el } from "./render.js";

const DRIFT = 0.04;
const PEAKS = 600;

export class Mixer {
  constructor(root, outputs) {
    this.root = root;
    this.stems = Object.entries(outputs)
      .filter(([, output]) => (output.content_type || "").startsWith("audio/"))
      .map(([name, output]) => ({ name, output, volume: 1, muted: false, solo: false }));
    this.context = null;
    this.frame = 0;
  }

  // Builds the transport and one strip per stem; returns how many stems there are.
  render() {
    this.stop();
    const transport = el("div", { class: "transport", role: "group", "aria-label": "Transport" });
    this.playButton = el("button", { type: "button", id: "mixer-play" }, "Play");
    this.seekBar = el("input", {
      type: "range", id: "mixer-seek", min: "0", max: "0", step: "0.01", value: "0",
      "aria-label": "Position",
    });
    this.timeText = el("output", { id: "mixer-time", "aria-live": "off" }, "0:00.0");
    transport.append(this.playButton, this.seekBar, this.timeText);
    this.playButton.addEventListener("click", () => (this.playing ? this.pause() : this.play()));
    this.seekBar.addEventListener("input", () => this.seek(Number(this.seekBar.value)));
    const list = el("ul", { class: "stems-list", id: "stems-list" });
    list.append(...this.stems.map((stem) => this.strip(stem)));
    this.root.replaceChildren(transport, list);
    this.stems[0]?.audio.addEventListener("loadedmetadata", () => {
      this.seekBar.max = String(this.duration);
    });
    this.stems[0]?.audio.addEventListener("ended", () => this.pause());
    for (const stem of this.stems) this.drawWaveform(stem);
    return this.stems.length;
  }

  strip(stem) {
    const id = `stem-${stem.name}`;
    const item = el("li", { class: "stem", "data-stem": stem.name });
    stem.audio = el("audio", { preload: "auto", src: stem.output.url, crossorigin: "anonymous" });
    stem.muteBox = this.toggle(stem, "muted", "Mute");
    stem.soloBox = this.toggle(stem, "solo", "Solo");
    stem.volumeBar = el("input", {
      type: "range", min: "0", max: "1", step: "0.01", value: "1", "aria-label": `${stem.name} volume`,
    });
    stem.volumeBar.addEventListener("input", () => {
      stem.volume = Number(stem.volumeBar.value);
      this.applyGains();
    });
    stem.meter = el("meter", { min: "0", max: "1", value: "0", "aria-label": `${stem.name} level` });
    stem.canvas = el("canvas", { width: String(PEAKS), height: "48", "aria-hidden": "true" });
    stem.canvas.addEventListener("click", (event) => {
      const box = stem.canvas.getBoundingClientRect();
      this.seek(((event.clientX - box.left) / box.width) * this.duration);
    });
    stem.playhead = el("span", { class: "playhead", "aria-hidden": "true" });
    const wave = el("div", { class: "wave" });
    wave.append(stem.canvas, stem.playhead);
    const controls = el("div", { class: "controls" });
    controls.append(stem.muteBox.parentElement, stem.soloBox.parentElement, stem.volumeBar, stem.meter);
    const link = el("a", { href: stem.output.url, download: stem.output.filename || "", class: "button secondary" },
      `Download ${stem.name}`);
    item.append(el("h3", { id }, stem.name), wave, controls, stem.audio, link);
    return item;
  }

  toggle(stem, field, label) {
    const box = el("input", { type: "checkbox", "aria-label": `${label} ${stem.name}` });
    const wrap = el("label", { class: "toggle" });
    wrap.append(box, ` ${label}`);
    box.addEventListener("change", () => {
      stem[field] = box.checked;
      this.applyGains();
    });
    return box;
  }

  get duration() {
    const first = this.stems[0]?.audio;
    return first && Number.isFinite(first.duration) ? first.duration : 0;
  }

  get position() {
    return this.stems[0]?.audio.currentTime || 0;
  }

  get playing() {
    return Boolean(this.stems[0] && !this.stems[0].audio.paused);
  }

  // Web Audio starts on the first Play (browsers allow sound only after a gesture).
  connect() {
    if (this.context) return;
    this.context = new AudioContext();
    for (const stem of this.stems) {
      stem.gain = this.context.createGain();
      stem.analyser = this.context.createAnalyser();
      stem.analyser.fftSize = 1024;
      this.context.createMediaElementSource(stem.audio).connect(stem.gain);
      stem.gain.connect(stem.analyser).connect(this.context.destination);
    }
    this.applyGains();
  }

  audible(stem) {
    const soloing = this.stems.some((s) => s.solo);
    return !stem.muted && (!soloing || stem.solo);
  }

  applyGains() {
    for (const stem of this.stems) {
      if (stem.gain) stem.gain.gain.value = this.audible(stem) ? stem.volume : 0;
    }
  }

  async play() {
    this.connect();
    await this.context.resume();
    const at = this.position;
    for (const stem of this.stems) stem.audio.currentTime = at;
    await Promise.all(this.stems.map((stem) => stem.audio.play()));
    this.playButton.textContent = "Pause";
    this.tick();
  }

  pause() {
    for (const stem of this.stems) stem.audio.pause();
    if (this.playButton) this.playButton.textContent = "Play";
    this.align();
    this.showPosition();
  }

  seek(seconds) {
    const at = Math.min(Math.max(0, seconds), this.duration || 0);
    for (const stem of this.stems) stem.audio.currentTime = at;
    this.showPosition(at);
  }

  stop() {
    cancelAnimationFrame(this.frame);
    for (const stem of this.stems) stem.audio?.pause();
    this.context?.close();
    this.context = null;
  }

  // Every stem back onto the first one's clock.
  align() {
    const at = this.position;
    for (const stem of this.stems.slice(1)) {
      if (Math.abs(stem.audio.currentTime - at) > DRIFT) stem.audio.currentTime = at;
    }
  }

  tick() {
    cancelAnimationFrame(this.frame);
    const step = () => {
      this.align();
      this.showPosition();
      this.showLevels();
      if (this.playing) this.frame = requestAnimationFrame(step);
      else for (const stem of this.stems) stem.meter.value = 0;
    };
    this.frame = requestAnimationFrame(step);
  }

  showPosition(at = this.position) {
    this.seekBar.value = String(at);
    this.timeText.textContent = clock(at);
    const fraction = this.duration ? at / this.duration : 0;
    for (const stem of this.stems) stem.playhead.style.left = `${(fraction * 100).toFixed(2)}%`;
  }

  // RMS of what each stem sends to the speakers now (after its gain).
  showLevels() {
    for (const stem of this.stems) {
      if (!stem.analyser) continue;
      const samples = new Float32Array(stem.analyser.fftSize);
      stem.analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const x of samples) sum += x * x;
      stem.meter.value = Math.min(1, Math.sqrt(sum / samples.length) * 4);
    }
  }

  async drawWaveform(stem) {
    let buffer;
    try {
      const response = await fetch(stem.output.url);
      if (!response.ok) return;
      const decoder = new OfflineAudioContext(1, 1, 44100);
      buffer = await decoder.decodeAudioData(await response.arrayBuffer());
    } catch {
      return; // the stem still plays; it just has no picture
    }
    const data = buffer.getChannelData(0);
    const canvas = stem.canvas;
    const size = Math.ceil(data.length / canvas.width);
    const peaks = new Float32Array(canvas.width);
    for (let x = 0; x < canvas.width; x += 1) {
      for (let i = x * size; i < Math.min(data.length, (x + 1) * size); i += 1) {
        peaks[x] = Math.max(peaks[x], Math.abs(data[i]));
      }
    }
    // Scaled to the stem's own peak, so a quiet stem still shows its shape.
    const loudest = Math.max(...peaks) || 1;
    const draw = canvas.getContext("2d");
    const middle = canvas.height / 2;
    draw.fillStyle = "#1d4ed8";
    peaks.forEach((peak, x) => {
      const height = Math.max(1, (peak / loudest) * middle);
      draw.fillRect(x, middle - height, 1, height * 2);
    });
    stem.canvas.dataset.drawn = "true";
  }
}
