// Live captions: microphone → AudioWorklet (16 kHz PCM16) → WebSocket → captions.
// Partial text (may still change) shows in grey after the finals (which never change).

import { withToken } from "./api.js";

const RATE = 16000;
// Whisper does best on the raw voice: no noise suppression, whose artefacts cost
// words; echo cancellation stays on for people who have something playing.
const CAPTURE = { channelCount: 1, echoCancellation: true, noiseSuppression: false, autoGainControl: true };
const $ = (id) => document.getElementById(id);

class CaptionSession {
  constructor(socketUrl, workletUrl, view) {
    this.socketUrl = socketUrl;
    this.workletUrl = workletUrl;
    this.view = view;
    this.stopped = false;
    this.ended = false;
    this.heardError = false;
  }

  async start(model) {
    this.stream = await navigator.mediaDevices.getUserMedia({ audio: CAPTURE });
    const source = await this.listen();
    await this.context.audioWorklet.addModule(this.workletUrl);
    this.socket = this.open(Math.min(this.context.sampleRate, RATE), model);
    this.encoder = new AudioWorkletNode(this.context, "pcm-encoder", {
      numberOfOutputs: 0,
      processorOptions: { targetRate: RATE, chunkMs: 100 },
    });
    this.encoder.port.onmessage = (event) => this.send(event.data);
    source.connect(this.encoder);
    await this.context.resume();
  }

  // A context at 16 kHz lets the browser resample the microphone (best quality);
  // Firefox cannot connect a microphone to a context at another rate than the
  // device's, so fall back to the device rate and let the worklet downsample.
  async listen() {
    for (const options of [{ sampleRate: RATE }, {}]) {
      this.context = new AudioContext(options);
      try {
        return this.context.createMediaStreamSource(this.stream);
      } catch (error) {
        await this.context.close();
        if (!options.sampleRate) throw error;
      }
    }
    return null;
  }

  open(rate, model) {
    const url = new URL(this.socketUrl);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.search = new URLSearchParams({ sample_rate: rate, encoding: "pcm_s16le", model }).toString();
    const socket = new WebSocket(withToken(url.href));
    socket.binaryType = "arraybuffer";
    socket.onmessage = (event) => this.receive(JSON.parse(event.data));
    socket.onclose = (event) => this.closed(event);
    return socket;
  }

  send(buffer) {
    if (!this.stopped && this.socket.readyState === WebSocket.OPEN) this.socket.send(buffer);
  }

  receive(message) {
    const { view } = this;
    if (message.type === "ready") view.state("Listening. Speak now.");
    else if (message.type === "partial") view.partial.textContent = message.text.trim();
    else if (message.type === "final") {
      const text = message.text.trim();
      if (text) view.final.append(`${view.final.textContent ? " " : ""}${text}`);
      view.partial.textContent = "";
    } else if (message.type === "error") {
      this.heardError = true;
      view.error(message.message);
    }
  }

  closed(event) {
    this.ended = true;
    this.release();
    this.view.partial.textContent = "";
    const clean = event.code === 1000 || event.code === 1005;
    if (!clean && !this.heardError) {
      this.view.error(event.reason || "The caption connection closed unexpectedly.");
    }
    this.view.ended(clean ? "Captions are off." : "Captions stopped.");
  }

  // Stop listening; the server sends finals for everything heard, then closes.
  stop() {
    if (this.stopped) return;
    for (const track of this.stream?.getTracks() || []) track.stop();
    this.encoder?.port.postMessage("flush");
    // The flushed chunk comes back on a later task: close the session after it.
    setTimeout(() => {
      this.stopped = true;
      this.release();
      if (this.socket?.readyState === WebSocket.OPEN) {
        this.socket.send(JSON.stringify({ type: "close" }));
      } else {
        this.socket?.close();
      }
    }, 100);
  }

  release() {
    for (const track of this.stream?.getTracks() || []) track.stop();
    if (this.context && this.context.state !== "closed") this.context.close();
  }
}

function micError(error) {
  if (error?.name === "NotAllowedError") return "Microphone access was refused. Allow it and try again.";
  if (error?.name === "NotFoundError") return "No microphone was found.";
  if (!window.isSecureContext) return "Captions need a secure page (https or localhost) for the microphone.";
  return `The microphone could not be started: ${error?.message || error}`;
}

export function setupCaptions(socketUrl, workletUrl) {
  const startButton = $("live-start");
  const stopButton = $("live-stop");
  let session = null;
  const view = {
    final: $("captions-final"),
    partial: $("captions-partial"),
    state: (text) => {
      $("live-status").textContent = text;
    },
    error: (text) => {
      $("live-error").textContent = text;
      $("live-error").hidden = false;
    },
    ended: (text) => {
      view.state(text);
      session = null;
      startButton.disabled = false;
      stopButton.disabled = true;
    },
  };
  startButton.addEventListener("click", async () => {
    $("live-error").hidden = true;
    view.final.textContent = "";
    view.partial.textContent = "";
    startButton.disabled = true;
    stopButton.disabled = false;
    view.state("Starting the microphone…");
    session = new CaptionSession(socketUrl, workletUrl, view);
    try {
      await session.start($("live-model").value);
    } catch (error) {
      if (!session || session.ended) return; // the server ended it and said why
      session.release();
      session.socket?.close();
      view.error(micError(error));
      view.ended("Captions are off.");
    }
  });
  stopButton.addEventListener("click", () => {
    view.state("Finishing the captions…");
    stopButton.disabled = true;
    session?.stop();
  });
}
