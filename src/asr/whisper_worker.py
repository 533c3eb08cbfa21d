"""Warm Whisper worker for waifu-rt3d: loads one model once, then transcribes requests forever.

Usage: python3 whisper_worker.py <model folder> <cpu threads>

Protocol (stdin/stdout, one request at a time):
  start:    writes {"ready": true} and a newline once the model is loaded (and has run once).
  request:  one JSON line {"language": "en" | "", "max_seconds": N, "bytes": N}, then exactly N
            bytes of audio in any container PyAV reads (WAV, WebM/Opus, OGG, MP3, ...).
  answer:   one JSON line {"ok": true, "text", "language", "duration_ms", "decode_ms",
            "transcribe_ms"}; or {"ok": true, "rejected": "bad_audio" | "too_long", "error",
            "duration_ms"} for audio that cannot or may not be transcribed; or
            {"ok": false, "error"} when the engine itself failed.
Nothing is fetched from the network: the model is loaded from its folder, with the Hugging Face
hub set offline. Anything else the libraries print goes to stderr.
"""

import io
import json
import os
import sys
import time

os.environ["HF_HUB_OFFLINE"] = "1"

RATE = 16000
# Below this loudness (the loudest 30 ms, as RMS of full scale, about -50 dBFS) the recording is
# silence: Whisper would otherwise make up words for it.
SILENCE_RMS = 0.00316


class Rejected(Exception):
    def __init__(self, kind, message, duration_ms=None):
        super().__init__(message)
        self.kind = kind
        self.duration_ms = duration_ms


def decode(data, max_seconds):
    """Mono 16 kHz float32 samples of the first audio stream, decoded as far as max_seconds."""
    import av
    import numpy as np

    try:
        container = av.open(io.BytesIO(data), mode="r", metadata_errors="ignore")
    except Exception as e:
        raise Rejected("bad_audio", f"not a readable audio file ({type(e).__name__})")
    with container:
        if not container.streams.audio:
            raise Rejected("bad_audio", "the file has no audio stream")
        stream = container.streams.audio[0]
        resampler = av.audio.resampler.AudioResampler(format="s16", layout="mono", rate=RATE)
        chunks = []
        count = 0
        limit = max_seconds * RATE
        try:
            for frame in container.decode(stream):
                frame.pts = None
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1)
                    chunks.append(chunk)
                    count += chunk.size
                if count > limit:
                    raise Rejected(
                        "too_long",
                        f"the recording is longer than {max_seconds} s",
                        duration_ms=count * 1000 // RATE,
                    )
            for out in resampler.resample(None):
                chunk = out.to_ndarray().reshape(-1)
                chunks.append(chunk)
                count += chunk.size
        except Rejected:
            raise
        except Exception as e:
            if not chunks:
                raise Rejected("bad_audio", f"the audio could not be decoded ({type(e).__name__})")
            # A recording cut short at the end (a browser stopping mid-page) keeps what decoded.
        if count > limit:
            raise Rejected(
                "too_long",
                f"the recording is longer than {max_seconds} s",
                duration_ms=count * 1000 // RATE,
            )
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(chunks).astype(np.float32) / 32768.0


def is_silence(audio):
    import numpy as np

    win = RATE * 30 // 1000
    usable = audio.size - audio.size % win
    if usable == 0:
        return True
    frames = audio[:usable].reshape(-1, win)
    loudest = float(np.sqrt((frames * frames).mean(axis=1)).max())
    return loudest < SILENCE_RMS


def main():
    out = sys.stdout.buffer
    sys.stdout = sys.stderr
    import numpy as np
    from faster_whisper import WhisperModel

    model = WhisperModel(
        sys.argv[1],
        device="cpu",
        compute_type="int8",
        cpu_threads=int(sys.argv[2]),
        num_workers=1,
        local_files_only=True,
    )
    # The first transcription is slower (allocation, caches): pay for it before saying ready.
    segments, _ = model.transcribe(np.zeros(RATE, dtype=np.float32), beam_size=1, language="en")
    list(segments)
    out.write(json.dumps({"ready": True}).encode() + b"\n")
    out.flush()

    stdin = sys.stdin.buffer
    while True:
        line = stdin.readline()
        if not line:
            break
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            data = stdin.read(int(req.get("bytes", 0)))
        except Exception as e:
            out.write(json.dumps({"ok": False, "error": f"bad request: {e}"}).encode() + b"\n")
            out.flush()
            continue
        try:
            started = time.perf_counter()
            audio = decode(data, int(req.get("max_seconds", 120)))
            decoded = time.perf_counter()
            duration_ms = audio.size * 1000 // RATE
            language = req.get("language") or None
            text = ""
            found = language or ""
            if not is_silence(audio):
                segments, info = model.transcribe(
                    audio,
                    language=language,
                    beam_size=1,
                    condition_on_previous_text=False,
                    without_timestamps=True,
                )
                text = " ".join(s.text.strip() for s in segments if s.text.strip())
                found = info.language
            done = time.perf_counter()
            answer = {
                "ok": True,
                "text": text,
                "language": found,
                "duration_ms": duration_ms,
                "decode_ms": round((decoded - started) * 1000, 1),
                "transcribe_ms": round((done - decoded) * 1000, 1),
            }
        except Rejected as r:
            answer = {"ok": True, "rejected": r.kind, "error": str(r), "duration_ms": r.duration_ms}
        except Exception as e:  # one bad request must not end the worker
            answer = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        out.write(json.dumps(answer).encode() + b"\n")
        out.flush()


if __name__ == "__main__":
    main()
