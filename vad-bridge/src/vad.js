// Hands-free listening: Silero VAD (@ricky0123/vad-web on onnxruntime-web) behind a small API for
// the WASM (src/app/chat/hands_free.rs). Bundled by esbuild into public/vad/vad-bridge.js; the
// model, the audio worklet and the runtime's WebAssembly are copied beside it (build.mjs), and
// every one of them is fetched from this folder: nothing comes from a CDN. The WASM imports this
// module only when hands-free is switched on, so the main bundle does not carry any of it.

// The real-time detector and the WAV encoder only: the package's index also pulls in its
// offline detector, which imports the whole of onnxruntime-web (WebGL, WebGPU) instead of its
// WebAssembly build, seven times the size.
import { MicVAD } from "@ricky0123/vad-web/dist/real-time-vad.js";
import { encodeWAV } from "@ricky0123/vad-web/dist/utils.js";

// This folder's address, whatever name the page loaded the bundle under.
const BASE = new URL("./", import.meta.url).href;

/**
 * Starts listening on the microphone. `events` has:
 * - `speechStart()`: someone started speaking (barge-in);
 * - `speechEnd(wav)`: an utterance ended: a 16 kHz mono 16-bit WAV, as a Uint8Array;
 * - `misfire()`: what started was too short to be speech;
 * - `level(rms)`: the loudness of each frame, 0..1, for the level meter.
 * Resolves to a listener with `pause()`, `resume()` and `destroy()`; rejects with the browser's
 * error (its `name` says why: `NotAllowedError`, `NotFoundError`, …).
 */
export async function startListening(events) {
  const vad = await MicVAD.new({
    model: "v5",
    baseAssetPath: BASE,
    onnxWASMBasePath: BASE,
    // One thread: several need a cross-origin-isolated page and a worker per thread.
    ortConfig: (ort) => {
      ort.env.logLevel = "error";
      ort.env.wasm.numThreads = 1;
    },
    // A shorter pause ends an utterance than the library's default (1.4 s): the reply starts
    // sooner, and a pause for breath of ~0.7 s still does not cut a sentence in two.
    redemptionMs: 700,
    minSpeechMs: 300,
    startOnLoad: false,
    onSpeechStart: () => events.speechStart(),
    onVADMisfire: () => events.misfire(),
    onSpeechEnd: (audio) => {
      const wav = encodeWAV(audio, 1, 16000, 1, 16);
      events.speechEnd(new Uint8Array(wav));
    },
    onFrameProcessed: (_probabilities, frame) => {
      let sum = 0;
      for (let i = 0; i < frame.length; i++) sum += frame[i] * frame[i];
      events.level(Math.sqrt(sum / Math.max(frame.length, 1)));
    },
  });
  await vad.start();
  return {
    pause: () => vad.pause(),
    resume: () => vad.start(),
    destroy: () => vad.destroy(),
  };
}
