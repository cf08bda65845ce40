// AudioWorklet: microphone audio → mono 16-bit PCM at (at most) the target rate.
// The page asks for an AudioContext at the target rate, so the browser's own
// resampler usually does the work and this passes samples through. Where the
// context keeps the device rate (Firefox), it downsamples: a windowed-sinc
// low-pass below the new Nyquist frequency, then linear interpolation. Chunks of
// `chunkMs` go to the page as transferable ArrayBuffers, ready to send as binary
// WebSocket frames.

const TAPS = 33;

function lowPass(step) {
  const cutoff = 0.45 / step; // cycles per input sample: 90 % of the output Nyquist
  const taps = new Float32Array(TAPS);
  const middle = (TAPS - 1) / 2;
  let sum = 0;
  for (let i = 0; i < TAPS; i += 1) {
    const x = i - middle;
    const sinc = x === 0 ? 2 * cutoff : Math.sin(2 * Math.PI * cutoff * x) / (Math.PI * x);
    const hamming = 0.54 - 0.46 * Math.cos((2 * Math.PI * i) / (TAPS - 1));
    taps[i] = sinc * hamming;
    sum += taps[i];
  }
  return taps.map((tap) => tap / sum);
}

class PcmEncoder extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { targetRate = 16000, chunkMs = 100 } = options.processorOptions || {};
    const rate = Math.min(sampleRate, targetRate);
    this.step = sampleRate / rate; // input samples per output sample, >= 1
    this.taps = this.step > 1 ? lowPass(this.step) : null;
    this.history = new Float32Array(TAPS);
    this.written = 0;
    this.previous = 0;
    this.phase = 0; // where the next output sample lies after the previous input sample
    this.chunk = new Int16Array(Math.round((rate * chunkMs) / 1000));
    this.filled = 0;
    this.port.onmessage = (event) => {
      if (event.data === "flush") this.flush();
    };
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    for (let i = 0; i < channels[0].length; i += 1) {
      let sample = 0;
      for (const channel of channels) sample += channel[i];
      this.resample(this.filter(sample / channels.length));
    }
    return true;
  }

  filter(sample) {
    if (!this.taps) return sample;
    this.history[this.written % TAPS] = sample;
    this.written += 1;
    let sum = 0;
    for (let k = 0; k < TAPS; k += 1) sum += this.taps[k] * this.history[(this.written + k) % TAPS];
    return sum;
  }

  resample(current) {
    while (this.phase <= 1) {
      this.push(this.previous + (current - this.previous) * this.phase);
      this.phase += this.step;
    }
    this.phase -= 1;
    this.previous = current;
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
