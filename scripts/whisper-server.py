#!/usr/bin/env python3
"""A small speech-to-text server: the OpenAI-compatible `POST /v1/audio/transcriptions`
(multipart: `file`, `model`, optional `language`, `prompt`, `response_format` json|text|verbose_json)
in front of faster-whisper, offline (HF_HUB_OFFLINE=1, the model from a local directory made by
scripts/install-whisper.sh). `GET /health` answers 200 once the model is loaded.

Beyond the OpenAI API, `language` may be a comma-separated list (`ru,uk,id,en`): the language is
then detected among those only (a short Ukrainian note is not taken for Russian, say).

It runs at a lower priority (--nice 10; start it under `chrt -i 0 ionice -c 3` as well, README) so that, on a machine it shares with the bridge and the
homeserver, relay goes first. Limits, each answered with an OpenAI-style error envelope: a body over --max-bytes (413), audio
that cannot be decoded (400), audio longer than --max-seconds (413). One request is transcribed
at a time (the others wait), with --cpu-threads threads (default 1, OpenMP's too), so on a 2-core
machine one core stays with relay.

Run: whisper-venv/bin/python scripts/whisper-server.py --model whisper-venv/model --port 9000
"""

import argparse
import email.parser
import email.policy
import io
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SAMPLE_RATE = 16000


class ApiError(Exception):
    def __init__(self, status, message, code):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def parse_multipart(content_type, body):
    """The form's fields: name -> (bytes, filename or None)."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not msg.is_multipart():
        raise ApiError(400, "the body must be multipart/form-data", "invalid_request_error")
    fields = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[name] = (part.get_payload(decode=True) or b"", part.get_filename())
    return fields


class Engine:
    def __init__(self, args):
        from faster_whisper import WhisperModel
        from faster_whisper.audio import decode_audio

        self.decode_audio = decode_audio
        self.model = WhisperModel(
            args.model, device="cpu", compute_type=args.compute_type, cpu_threads=args.cpu_threads
        )
        self.max_seconds = args.max_seconds
        self.lock = threading.Lock()

    def transcribe(self, data, language, prompt):
        try:
            audio = self.decode_audio(io.BytesIO(data), sampling_rate=SAMPLE_RATE)
        except Exception as e:  # av raises many kinds for a file that is not audio
            raise ApiError(400, f"the file could not be decoded as audio ({type(e).__name__}: {e})",
                           "invalid_audio")
        seconds = len(audio) / SAMPLE_RATE
        if seconds == 0:
            raise ApiError(400, "the file holds no audio", "invalid_audio")
        if seconds > self.max_seconds:
            raise ApiError(413, f"the audio is {seconds:.0f} s long; this server transcribes at most "
                                f"{self.max_seconds:.0f} s", "audio_too_long")
        hints = [l.strip() for l in (language or "").split(",") if l.strip()]
        with self.lock:
            chosen = hints[0] if len(hints) == 1 else None
            if len(hints) > 1:
                _, _, probs = self.model.detect_language(audio)
                ranked = [(p, l) for l, p in probs if l in hints]
                chosen = max(ranked)[1] if ranked else None
            segments, info = self.model.transcribe(
                audio, language=chosen, initial_prompt=prompt or None, beam_size=5,
                vad_filter=False, condition_on_previous_text=False)
            text = " ".join(s.text.strip() for s in segments).strip()
        return {"text": text, "language": info.language, "duration": seconds}


class Handler(BaseHTTPRequestHandler):
    server_version = "switchboard-whisper/1"

    def log_message(self, fmt, *args):
        sys.stderr.write("whisper-server: " + (fmt % args) + "\n")

    def reply(self, status, payload, content_type="application/json"):
        body = payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def error(self, e):
        self.reply(e.status, {"error": {"message": e.message, "type": "invalid_request_error"
                                        if e.status < 500 else "server_error", "code": e.code}})

    def do_GET(self):
        if self.path == "/health":
            return self.reply(200, {"status": "ok"})
        self.error(ApiError(404, f"no route {self.path}", "not_found"))

    def do_POST(self):
        try:
            if self.path.split("?")[0] != "/v1/audio/transcriptions":
                raise ApiError(404, f"no route {self.path}", "not_found")
            key = self.server.args.api_key
            if key and self.headers.get("Authorization") != f"Bearer {key}":
                raise ApiError(401, "wrong or missing API key", "invalid_api_key")
            length = int(self.headers.get("Content-Length") or 0)
            if length <= 0:
                raise ApiError(400, "a body is required (Content-Length)", "invalid_request_error")
            if length > self.server.args.max_bytes:
                raise ApiError(413, f"the body is {length} bytes; at most {self.server.args.max_bytes}",
                               "file_too_large")
            body = self.rfile.read(length)
            fields = parse_multipart(self.headers.get("Content-Type", ""), body)
            if "file" not in fields:
                raise ApiError(400, "the form has no `file` field", "invalid_request_error")
            text = lambda name: fields[name][0].decode("utf-8", "replace") if name in fields else None
            fmt = text("response_format") or "json"
            result = self.server.engine.transcribe(fields["file"][0], text("language"), text("prompt"))
            if fmt == "text":
                return self.reply(200, result["text"].encode(), "text/plain; charset=utf-8")
            if fmt == "verbose_json":
                return self.reply(200, result)
            return self.reply(200, {"text": result["text"]})
        except ApiError as e:
            self.error(e)
        except Exception as e:  # never leave a client without an answer
            self.error(ApiError(500, f"{type(e).__name__}: {e}", "server_error"))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="directory of a CTranslate2 Whisper model")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9000)
    p.add_argument("--api-key", default=os.environ.get("WHISPER_API_KEY"))
    p.add_argument("--cpu-threads", type=int, default=1)
    p.add_argument("--compute-type", default="int8")
    p.add_argument("--max-seconds", type=float, default=900.0)
    p.add_argument("--max-bytes", type=int, default=25 * 1024 * 1024)
    p.add_argument("--nice", type=int, default=10,
                   help="run at this lower priority, so a bridge on the same machine goes first")
    args = p.parse_args()
    if args.nice:
        os.nice(args.nice)
    # CTranslate2 takes --cpu-threads for its own pool; OpenMP (and the BLAS under it) would
    # otherwise start one thread per core for some steps.
    os.environ.setdefault("OMP_NUM_THREADS", str(args.cpu_threads))
    engine = Engine(args)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.args, server.engine = args, engine
    # The port may have been 0 (any free one): say which, for whoever started us.
    print(f"listening on {args.host}:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
