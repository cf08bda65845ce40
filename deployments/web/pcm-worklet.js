// AudioWorklet: microphone audio → mono 16-bit PCM at (at most) the target rate.
// Downsampling averages the input samples that fall into each output sample (a
// box filter), enough to keep speech from aliasing; chunks of `chunkMs` are posted
// to the page as transferable ArrayBuffers, ready to send as binary WebSocket frames.

class PcmEncoder extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { targetRate = 16000, chunkMs = 100 } = options.processorOptions || {};
    const rate = Math.min(sampleRate, targetRate);
    this.step = sampleRate / rate; // input samples per output sample, >= 1
    this.chunk = new Int16Array(Math.round((rate * chunkMs) / 1000));
    this.filled = 0;
    this.sum = 0;
    this.count = 0;
    this.position = 0;
    this.port.onmessage = (event) => {
      if (event.data === "flush") this.flush();
    };
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    const frames = channels[0].length;
    for (let i = 0; i < frames; i += 1) {
      let sample = 0;
      for (const channel of channels) sample += channel[i];
      this.sum += sample / channels.length;
      this.count += 1;
      this.position += 1;
      if (this.position >= this.step) {
        this.position -= this.step;
        this.push(this.sum / this.count);
        this.sum = 0;
        this.count = 0;
      }
    }
    return true;
  }

  push(value) {
    const clamped = Math.max(-1, Math.min(1, value));
    this.chunk[this.filled] = clamped < 0 ? clamped * 0x8000 : clamped * 0x7fff;
    this.filled += 1;
    if (this.filled === this.chunk.length) this.flush();
  }

  flush() {
    if (this.filled === 0) return;
    const out = this.chunk.slice(0, this.filled);
    this.filled = 0;
    this.port.postMessage(out.buffer, [out.buffer]);
  }
}

registerProcessor("pcm-encoder", PcmEncoder);
