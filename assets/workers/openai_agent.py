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
cancel is noticed at the next chunk the server sends; the connection is then closed. When
the server cannot be reached or answers with an error, the turn fails with a sentence that
does not say where the server is (the chat client sees it); the address goes to stderr.
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


def events(response):
    """The `data` of each server-sent event: its `data:` lines joined by newlines."""
    data = []
    for raw in response:
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if not line:  # a blank line ends the event
            if data:
                yield "\n".join(data)
            data = []
            continue
        field, _, value = line.partition(":")
        if field == "data":  # not comments (":"), `event:`, `id:`, `retry:`
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)


def chunks(response):
    """The text pieces of a streamed chat completion."""
    for data in events(response):
        if data.strip() == "[DONE]":
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
    # The sentences raised reach the chat client; where the server is goes to stderr only.
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT)
    except urllib.error.HTTPError as e:
        detail = e.read(500).decode("utf-8", errors="replace")
        print(f"openai_agent: {BASE_URL} answered {e.code}: {detail}", file=sys.stderr)
        raise RuntimeError(f"the model server answered {e.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as e:
        print(f"openai_agent: could not reach {BASE_URL}: {e}", file=sys.stderr)
        raise RuntimeError("the model server could not be reached") from None
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
