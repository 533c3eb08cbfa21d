"""Warm Piper worker for waifu-rt3d: loads one voice once, then answers requests forever.

Protocol (stdin/stdout, one request at a time):
  start:    writes {"ready": true, "sample_rate": N} and a newline once the voice is loaded.
  request:  one JSON line {"text": "...", "speaker_id": N | null}; the text never travels as an argument.
  answer:   one JSON line {"ok": true, "bytes": N} followed by exactly N bytes of WAV,
            or {"ok": false, "error": "..."}.
Anything else Piper or onnxruntime prints goes to stderr.
"""

import io
import json
import os
import sys
import wave


def threads() -> int:
    """Threads for the voice model (WAIFU_PIPER_THREADS), 1 unless set.

    On a small machine the language model writes the next sentence while this one is said:
    one thread each shares two cores better than both asking for all of them.
    """
    try:
        return max(0, int(os.environ.get("WAIFU_PIPER_THREADS", "1")))
    except ValueError:
        return 1


def main() -> None:
    out = sys.stdout.buffer
    sys.stdout = sys.stderr

    import onnxruntime
    from piper import PiperVoice, SynthesisConfig

    voice = PiperVoice.load(sys.argv[1])
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = threads()
    opts.inter_op_num_threads = 1
    # Idle threads that spin take the cores from the language model between sentences.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    voice.session = onnxruntime.InferenceSession(
        sys.argv[1], sess_options=opts, providers=["CPUExecutionProvider"]
    )
    ready = {"ready": True, "sample_rate": voice.config.sample_rate}
    out.write(json.dumps(ready).encode() + b"\n")
    out.flush()

    for line in sys.stdin.buffer:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            syn = SynthesisConfig(speaker_id=req.get("speaker_id"))
            buf = io.BytesIO()
            with wave.open(buf, "wb") as wav:
                voice.synthesize_wav(req["text"], wav, syn_config=syn)
            data = buf.getvalue()
            out.write(json.dumps({"ok": True, "bytes": len(data)}).encode() + b"\n")
            out.write(data)
        except Exception as e:  # one bad request must not end the worker
            answer = {"ok": False, "error": f"{type(e).__name__}: {e}"}
            out.write(json.dumps(answer).encode() + b"\n")
        out.flush()


if __name__ == "__main__":
    main()
