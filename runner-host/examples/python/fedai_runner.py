#!/usr/bin/env python3
"""fed_AI reference runner in Python (stdlib only, one file).

Implements the whole runner protocol (docs/runner-protocol.md): JSON-RPC 2.0 over stdio with
Content-Length framing, initialize with version negotiation, listModels, infer (plain and streamed with
infer/chunk notifications), estimate, health (a deep check through the work loop), $/cancelRequest,
shutdown + exit, and exit when stdin closes. Stdout carries protocol frames only; logs go to stderr.

The "model" is deterministic and never echoes the prompt: it emits words from a fixed vocabulary chosen
by position and by the prompt's token count. Replace `generate()` with a real model to make a real runner.

Environment:
  FEDAI_MODEL_ID             advertised model id (default "python-echo-free")
  FEDAI_MAX_PARALLEL         parallel inferences accepted (default 4)
  FEDAI_MOCK_TOKEN_DELAY_MS  delay between tokens in ms (default 10)
"""

import json
import os
import queue
import re
import sys
import threading
import time

PROTOCOL_VERSION = "1.0"
RUNNER_NAME = "fedai-python-reference"
RUNNER_VERSION = "1.0.0"
MAX_HEADER_BYTES = 8 * 1024
MAX_FRAME_BYTES = 8 * 1024 * 1024

VOCABULARY = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
    "india", "juliett", "kilo", "lima", "mike", "november", "oscar", "papa",
    "quebec", "romeo", "sierra", "tango", "uniform", "victor", "whiskey", "xray",
    "yankee", "zulu", "one", "two", "three", "four", "five", "six",
]

# JSON-RPC codes and the node's catalogue codes this runner uses (supervisor/errors.ts).
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
REQUEST_CANCELLED = -32800
RPC_CAPACITY_EXHAUSTED = -32005
RPC_NODE_DRAINING = -32006
RPC_PROTOCOL_ERROR = -32009
RPC_RUNNER_TIMEOUT = -32007
RPC_VERSION_MISMATCH = -32015


def env_int(name, default, minimum):
    raw = os.environ.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        log("error", "bad environment variable", variable=name)
        sys.exit(1)
    return value


def log(level, msg, **fields):
    """One JSON line on stderr. Never a prompt or an output."""
    line = {"level": level, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "name": RUNNER_NAME, "msg": msg}
    line.update(fields)
    try:
        sys.stderr.write(json.dumps(line) + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


MODEL_ID = os.environ.get("FEDAI_MODEL_ID") or "python-echo-free"
MODEL = {"id": MODEL_ID, "contextWindow": 4096, "maxTokens": 4096, "family": "reference"}
MAX_PARALLEL = env_int("FEDAI_MAX_PARALLEL", 4, 1)
TOKEN_DELAY_S = env_int("FEDAI_MOCK_TOKEN_DELAY_MS", 10, 0) / 1000.0


def estimate_tokens(text):
    """fed_AI's estimate: 0 for empty text, else max(1, ceil(UTF-16 code units / 4))."""
    units = len(text.encode("utf-16-le")) // 2
    return 0 if units == 0 else max(1, (units + 3) // 4)


def output_length(input_tokens, max_tokens):
    return max(0, min(max_tokens, 16 + input_tokens % 8))


def word(input_tokens, i):
    return VOCABULARY[(input_tokens * 7 + i * 13) % len(VOCABULARY)]


class RpcError(Exception):
    def __init__(self, rpc_code, message, code, details=None, usage=None):
        super().__init__(message)
        self.rpc_code = rpc_code
        self.message = message
        self.data = {"code": code}
        if details:
            self.data["details"] = details
        if usage is not None:
            self.data["usage"] = usage

    def to_json(self):
        return {"code": self.rpc_code, "message": self.message, "data": self.data}


# ---------------------------------------------------------------------------------------------------
# Framing: "Content-Length: N\r\n\r\n" + N bytes of UTF-8 JSON, on binary stdin/stdout.

_write_lock = threading.Lock()
_stdout = sys.stdout.buffer
# Nothing but frames may reach fd 1: point sys.stdout at stderr so a stray print() cannot corrupt it.
sys.stdout = sys.stderr


def send(message):
    body = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    frame = b"Content-Length: " + str(len(body)).encode("ascii") + b"\r\n\r\n" + body
    with _write_lock:
        try:
            _stdout.write(frame)
            _stdout.flush()
        except (OSError, ValueError):
            # The supervisor is gone (EPIPE): the runner must not linger.
            os._exit(0)


def respond(msg_id, result):
    send({"jsonrpc": "2.0", "id": msg_id, "result": result})


def respond_error(msg_id, err):
    send({"jsonrpc": "2.0", "id": msg_id, "error": err.to_json()})


def notify(method, params):
    send({"jsonrpc": "2.0", "method": method, "params": params})


def read_frame(stream):
    """Returns the decoded body of the next frame, None at EOF. Raises ValueError on bad framing."""
    length = None
    header_bytes = 0
    while True:
        line = stream.readline(MAX_HEADER_BYTES + 1)
        if line == b"":
            return None
        header_bytes += len(line)
        if header_bytes > MAX_HEADER_BYTES:
            raise ValueError("header too long")
        if line in (b"\r\n", b"\n"):
            if length is None:
                raise ValueError("frame without Content-Length")
            break
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise ValueError("malformed header line")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
            if length < 0 or length > MAX_FRAME_BYTES:
                raise ValueError("frame too large")
    body = stream.read(length)
    if len(body) < length:
        return None
    return body.decode("utf-8")


# ---------------------------------------------------------------------------------------------------
# Params validation (the same rules as schemas/runner/*.json).

def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_obj(value, path, props, required, errors):
    if not isinstance(value, dict):
        errors.append(path + " must be object")
        return
    for key in required:
        if key not in value:
            errors.append("%s must have required property '%s'" % (path, key))
    for key, check in props.items():
        if key in value:
            check(value[key], path.rstrip("/") + "/" + key, errors)


def _string(min_len=0, max_len=None):
    def check(v, path, errors):
        if not isinstance(v, str):
            errors.append(path + " must be string")
        elif len(v) < min_len or (max_len is not None and len(v) > max_len):
            errors.append(path + " has a bad length")
    return check


def _integer(minimum):
    def check(v, path, errors):
        if not _is_int(v) or v < minimum:
            errors.append("%s must be integer >= %d" % (path, minimum))
    return check


def _number(minimum, maximum=None):
    def check(v, path, errors):
        if not _is_num(v) or v < minimum or (maximum is not None and v > maximum):
            errors.append(path + " must be a number in range")
    return check


def _boolean(v, path, errors):
    if not isinstance(v, bool):
        errors.append(path + " must be boolean")


def _name_version(v, path, errors):
    _check_obj(v, path, {"name": _string(1, 128), "version": _string(0, 64)}, ["name", "version"], errors)


def _protocol_version(v, path, errors):
    if not isinstance(v, str) or not re.fullmatch(r"[0-9]+\.[0-9]+", v):
        errors.append(path + ' must match "MAJOR.MINOR"')


def _infer_request(v, path, errors):
    _check_obj(v, path, {
        "requestId": _string(1, 256), "modelId": _string(1, 256), "prompt": _string(),
        "maxTokens": _integer(1), "temperature": _number(0), "topP": _number(0, 1), "jobType": _string(0, 64),
    }, ["requestId", "modelId", "prompt", "maxTokens"], errors)


def validate_initialize(p):
    errors = []
    _check_obj(p, "/", {"protocolVersion": _protocol_version, "supervisor": _name_version,
                        "runnerId": _string(1, 128), "traceparent": _string(0, 256)},
               ["protocolVersion", "supervisor", "runnerId"], errors)
    return errors


def validate_infer(p):
    errors = []
    _check_obj(p, "/", {"request": _infer_request, "stream": _boolean, "streamId": _string(1, 256),
                        "traceparent": _string(0, 256), "deadlineMs": _integer(0)}, ["request"], errors)
    if isinstance(p, dict) and p.get("stream") is True and "streamId" not in p:
        errors.append("/ must have required property 'streamId' when stream is true")
    return errors


def validate_estimate(p):
    errors = []
    _check_obj(p, "/", {"request": _infer_request}, ["request"], errors)
    return errors


def require(errors):
    if errors:
        raise RpcError(INVALID_PARAMS, "invalid params", "invalid-params", details=errors[:16])


def no_params(p):
    if p is not None and not isinstance(p, dict) and p != []:
        raise RpcError(INVALID_PARAMS, "this method takes no params", "invalid-params", details=["/ must be object or absent"])


# ---------------------------------------------------------------------------------------------------
# The runner.

class Runner:
    def __init__(self):
        self.initialized = False
        self.shutting_down = False
        self.lock = threading.Lock()
        self.inflight = {}  # request id (json) -> threading.Event (cancel)
        self.work = queue.Queue()  # the work loop: (callable, args)
        self.loop_thread = threading.Thread(target=self._work_loop, name="work-loop", daemon=True)
        self.loop_thread.start()

    # The work loop runs every request except infer (which gets a generation thread each, so that a
    # long stream does not hold up health probes). Health goes through it, so a wedged loop shows up.
    def _work_loop(self):
        while True:
            job = self.work.get()
            if job is None:
                return
            fn, args = job
            try:
                fn(*args)
            except Exception:  # never let the loop die
                log("error", "work item failed")

    def handle_request(self, msg_id, method, params):
        if method == "infer" and self.initialized and not self.shutting_down:
            self._start_infer(msg_id, params)
        else:
            self.work.put((self._run_request, (msg_id, method, params, time.monotonic())))

    def _run_request(self, msg_id, method, params, enqueued_at):
        try:
            if method == "infer" and self.initialized and not self.shutting_down:
                # queued behind initialize: start it now; it answers from its own thread
                self._start_infer(msg_id, params)
                return
            result = self._dispatch(method, params, enqueued_at)
            respond(msg_id, result)
        except RpcError as err:
            respond_error(msg_id, err)
        except Exception as exc:  # no message text: it could contain a prompt
            log("error", "request failed", method=method, errorType=type(exc).__name__)
            respond_error(msg_id, RpcError(INTERNAL_ERROR, "runner error", "runner-error"))

    def _dispatch(self, method, params, enqueued_at):
        if method == "initialize":
            require(validate_initialize(params))
            if self.initialized:
                raise RpcError(RPC_PROTOCOL_ERROR, "initialize was already called", "runner-protocol-error")
            if params["protocolVersion"].split(".")[0] != PROTOCOL_VERSION.split(".")[0]:
                raise RpcError(RPC_VERSION_MISMATCH, "incompatible protocol version", "protocol-version-mismatch",
                               details=["runner speaks %s" % PROTOCOL_VERSION])
            self.initialized = True
            notify("log", {"level": "info", "msg": "initialized", "fields": {"runnerId": params["runnerId"]}})
            return {
                "protocolVersion": PROTOCOL_VERSION,
                "runner": {"name": RUNNER_NAME, "version": RUNNER_VERSION},
                "models": [dict(MODEL)],
                "limits": {"maxParallel": MAX_PARALLEL},
                "capabilities": {"streaming": True, "estimate": True, "cancellation": True},
            }
        if method not in ("listModels", "infer", "estimate", "health", "shutdown"):
            raise RpcError(METHOD_NOT_FOUND, "method not found", "method-not-found")
        if not self.initialized:
            raise RpcError(RPC_PROTOCOL_ERROR, "not initialized", "runner-protocol-error",
                           details=["initialize must be the first request"])
        if self.shutting_down and method != "shutdown":
            raise RpcError(RPC_NODE_DRAINING, "runner is shutting down", "node-draining")
        if method == "listModels":
            no_params(params)
            return {"models": [dict(MODEL)]}
        if method == "estimate":
            require(validate_estimate(params))
            req = params["request"]
            self._check_model(req)
            input_tokens = estimate_tokens(req["prompt"])
            out_max = min(req["maxTokens"], MODEL["maxTokens"])
            n = output_length(input_tokens, out_max)
            return {"inputTokens": input_tokens, "exact": False, "outputTokensMax": out_max,
                    "latencyEstimateMs": max(1, int(n * TOKEN_DELAY_S * 1000))}
        if method == "health":
            no_params(params)
            loop_ms = (time.monotonic() - enqueued_at) * 1000.0
            return {"ok": True, "detail": "work loop answered", "loopLatencyMs": round(loop_ms, 3)}
        if method == "shutdown":
            no_params(params)
            self.shutting_down = True
            self.cancel_all()
            return None
        if method == "infer":  # reached only while draining (before initialize is handled above)
            raise RpcError(RPC_NODE_DRAINING, "runner is shutting down", "node-draining")
        raise RpcError(METHOD_NOT_FOUND, "method not found", "method-not-found")

    def _check_model(self, req):
        if req["modelId"] != MODEL_ID:
            raise RpcError(INVALID_PARAMS, "model not served by this runner", "model-not-found")

    def _start_infer(self, msg_id, params):
        errors = validate_infer(params)
        if errors:
            respond_error(msg_id, RpcError(INVALID_PARAMS, "invalid params", "invalid-params", details=errors[:16]))
            return
        key = json.dumps(msg_id)
        with self.lock:
            if len(self.inflight) >= MAX_PARALLEL:
                respond_error(msg_id, RpcError(RPC_CAPACITY_EXHAUSTED, "runner is at capacity", "capacity-exhausted",
                                               details=["maxParallel is %d" % MAX_PARALLEL]))
                return
            cancel = threading.Event()
            self.inflight[key] = cancel
        threading.Thread(target=self._infer, args=(msg_id, key, params, cancel), name="infer", daemon=True).start()

    def _infer(self, msg_id, key, params, cancel):
        try:
            respond(msg_id, self._generate(params, cancel))
        except RpcError as err:
            respond_error(msg_id, err)
        except Exception as exc:
            log("error", "infer failed", errorType=type(exc).__name__)
            respond_error(msg_id, RpcError(INTERNAL_ERROR, "runner error", "runner-error"))
        finally:
            with self.lock:
                self.inflight.pop(key, None)

    def _generate(self, params, cancel):
        """The "model". Deterministic, never echoes the prompt, honours cancel and deadline."""
        started = time.monotonic()
        req = params["request"]
        self._check_model(req)
        stream = params.get("stream") is True
        stream_id = params.get("streamId")
        deadline = params.get("deadlineMs")
        input_tokens = estimate_tokens(req["prompt"])
        max_tokens = min(req["maxTokens"], MODEL["maxTokens"])
        n = output_length(input_tokens, max_tokens)
        parts = []
        ttft_ms = None
        for i in range(n):
            if TOKEN_DELAY_S > 0:
                cancel.wait(TOKEN_DELAY_S)
            if cancel.is_set():
                raise RpcError(REQUEST_CANCELLED, "request cancelled", "request-cancelled",
                               usage={"inputTokens": input_tokens, "outputTokens": len(parts)})
            if deadline is not None and time.time() * 1000 >= deadline:
                raise RpcError(RPC_RUNNER_TIMEOUT, "deadline passed", "runner-timeout",
                               usage={"inputTokens": input_tokens, "outputTokens": len(parts)})
            delta = word(input_tokens, i) if i == 0 else " " + word(input_tokens, i)
            parts.append(delta)
            if ttft_ms is None:
                ttft_ms = (time.monotonic() - started) * 1000.0
            if stream:
                notify("infer/chunk", {"streamId": stream_id, "index": i, "delta": delta})
        result = {
            "requestId": req["requestId"],
            "modelId": MODEL_ID,
            "output": "".join(parts),
            "usage": {"inputTokens": input_tokens, "outputTokens": len(parts)},
            "latencyMs": round((time.monotonic() - started) * 1000.0, 3),
            "finishReason": "length" if n >= max_tokens else "stop",
        }
        if ttft_ms is not None:
            result["ttftMs"] = round(ttft_ms, 3)
        return result

    def cancel(self, msg_id):
        with self.lock:
            ev = self.inflight.get(json.dumps(msg_id))
        if ev is not None:
            ev.set()

    def cancel_all(self):
        with self.lock:
            for ev in self.inflight.values():
                ev.set()


def main():
    runner = Runner()
    stdin = sys.stdin.buffer
    log("info", "runner started", pid=os.getpid())
    while True:
        try:
            text = read_frame(stdin)
        except (ValueError, UnicodeDecodeError):
            log("error", "bad frame on stdin; exiting")
            respond_error(None, RpcError(PARSE_ERROR, "bad frame", "runner-protocol-error"))
            break
        if text is None:  # stdin closed: the supervisor is gone or wants us gone
            log("info", "stdin closed; exiting")
            break
        try:
            msg = json.loads(text)
        except ValueError:
            respond_error(None, RpcError(PARSE_ERROR, "parse error", "invalid-json"))
            continue
        if not isinstance(msg, dict) or msg.get("jsonrpc") != "2.0" or not isinstance(msg.get("method"), str):
            if isinstance(msg, dict) and ("result" in msg or "error" in msg):
                continue  # a response to nothing we sent: ignore
            msg_id = msg.get("id") if isinstance(msg, dict) else None
            respond_error(msg_id, RpcError(INVALID_REQUEST, "invalid request", "runner-protocol-error"))
            continue
        method = msg["method"]
        params = msg.get("params")
        if "id" not in msg:  # notification
            if method == "exit":
                log("info", "exit notification; exiting")
                break
            if method == "$/cancelRequest" and isinstance(params, dict) and "id" in params:
                runner.cancel(params["id"])
            continue  # unknown notifications are ignored
        runner.handle_request(msg["id"], method, params)
    # Cancel generations; let requests already queued on the work loop answer (bounded), then go.
    runner.cancel_all()
    runner.work.put(None)
    runner.loop_thread.join(1.0)
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
