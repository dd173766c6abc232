"""An example turnwatch agent: a chat with any OpenAI-compatible endpoint, streamed.

Works with OpenAI itself and with local servers that speak the same API (Ollama, llama.cpp's
server, vLLM, LM Studio). Standard library only. Configure it with environment variables
(in turnwatch's config: the agent's ``env`` or ``inherit_env``):

    OPENAI_BASE_URL   the API root, default http://localhost:11434/v1 (a local Ollama)
    OPENAI_API_KEY    sent as a bearer token when set
    OPENAI_MODEL      the model, default llama3.2
    OPENAI_SYSTEM     an optional system prompt
    OPENAI_TIMEOUT    seconds to wait for the server (connect, and between chunks), default 120

A worker serves one session, so the conversation so far lives in this process: each turn
sends the whole history. (A new worker generation, after an idle stop, starts afresh.) A
cancel is noticed at the next chunk the server sends; the connection is then closed.
"""

import json
import os
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import turnwatch_worker  # noqa: E402

BASE_URL = os.environ.get("OPENAI_BASE_URL", "http://localhost:11434/v1").rstrip("/")
API_KEY = os.environ.get("OPENAI_API_KEY")
MODEL = os.environ.get("OPENAI_MODEL", "llama3.2")
TIMEOUT = float(os.environ.get("OPENAI_TIMEOUT", "120"))

history = []
if os.environ.get("OPENAI_SYSTEM"):
    history.append({"role": "system", "content": os.environ["OPENAI_SYSTEM"]})


def chunks(response):
    """The text pieces of a streamed chat completion (server-sent events, `data:` lines)."""
    for raw in response:
        line = raw.decode("utf-8", errors="replace").strip()
        if not line.startswith("data:"):
            continue  # blank separators, comments, `event:` lines
        data = line[len("data:"):].strip()
        if data == "[DONE]":
            return
        event = json.loads(data)
        if event.get("error"):
            raise RuntimeError(f"the server reported an error: {event['error']}")
        for choice in event.get("choices") or []:
            piece = (choice.get("delta") or {}).get("content")
            if piece:
                yield piece


def handle(turn):
    messages = history + [{"role": "user", "content": turn.message}]
    body = json.dumps({"model": MODEL, "messages": messages, "stream": True}).encode()
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
    if API_KEY:
        headers["Authorization"] = f"Bearer {API_KEY}"
    request = urllib.request.Request(f"{BASE_URL}/chat/completions", body, headers)
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT)
    except urllib.error.HTTPError as e:
        detail = e.read(500).decode("utf-8", errors="replace")
        raise RuntimeError(f"{BASE_URL} answered {e.code}: {detail}") from None
    reply = []
    with response:
        for piece in chunks(response):
            if turn.cancelled:
                return  # closing the response stops the generation server-side
            reply.append(piece)
            yield piece
    history.extend(messages[len(history):])
    history.append({"role": "assistant", "content": "".join(reply)})


if __name__ == "__main__":
    turnwatch_worker.run(handle)
