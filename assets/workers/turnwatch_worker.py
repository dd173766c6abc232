"""A turnwatch worker in Python: write a handler, the library speaks the protocol.

One file, standard library only, no install step: put it next to your agent (or add its
directory to ``sys.path``) and::

    import turnwatch_worker

    def handle(turn):
        for word in turn.message.split():
            if turn.cancelled:        # the operator cancelled, or the gateway is stopping
                return
            yield word + " "          # each piece reaches the client as a delta

    turnwatch_worker.run(handle)

The handler is called once per turn with a :class:`Turn`, on one runner thread: turns are
handled one after the other, never two at once (a turn that arrives while a cancelled
handler is still finishing waits for it). The handler may be

* a generator that yields text: each piece is streamed as a delta, and a ``return "text"``
  is its last piece;
* a plain function returning the reply (a string) or any other iterable of pieces;
* an ``async def`` function, or an async generator (``async def`` with ``yield``): they run
  on an event loop the runner thread keeps from turn to turn, and a cancel cancels the task
  (``asyncio.CancelledError`` at its current ``await``).

A piece that is ``bytes`` is decoded as UTF-8 (a character split across pieces is joined;
invalid bytes become U+FFFD); ``None`` is nothing; anything else is ``str()``. Text is sent
in deltas of at most 64 KiB, whatever the size of a piece; the reply is the concatenation of
the deltas (the gateway keeps it). A reply with no text at all fails the turn.

An exception (any ``BaseException``, ``SystemExit`` included) fails the turn with code
``agent_error`` and a sentence naming it; the worker stays and takes the next turn. The
library sends ``ready``, heartbeats while a turn runs, and handles ``cancel`` and ``shutdown``:

* ``turn.cancelled`` turns true and ``turn.cancel_event`` (a :class:`threading.Event`) is
  set; ``turn.wait(seconds)`` sleeps but wakes at once on cancellation. After a cancel the
  turn's output is discarded, and a generator is closed at its next ``yield``
  (``GeneratorExit`` there, so ``finally`` blocks run). A handler that ignores the cancel
  holds up the next turn, which then fails ``turn_stalled`` at the gateway.
* On ``shutdown`` (or stdin closing) the running turn is cancelled, given ``grace`` seconds to
  return, and the process exits 0.

A worker serves one session, so state kept between calls (a conversation history, a client)
belongs to that session. ``print`` goes to stderr (kept by the gateway as the worker's stderr
tail): the library takes the real stdout for protocol lines only. Strings sent are made
valid UTF-8 (a lone surrogate becomes U+FFFD); notes and error sentences are cut at 2,000
characters.

Protocol: docs/protocol.md §3 in the turnwatch repository.
"""

import asyncio
import codecs
import inspect
import json
import os
import queue
import sys
import threading
import traceback

__all__ = ["Turn", "run"]

MAX_DELTA_BYTES = 64 * 1024  # of a delta's JSON-encoded content, quotes included
MAX_SENTENCE = 2000  # characters of a status note or an error sentence


def _clean(text):
    """``text`` as valid Unicode: surrogate pairs joined, lone surrogates U+FFFD."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def _short(text):
    text = _clean(str(text))
    return text if len(text) <= MAX_SENTENCE else text[: MAX_SENTENCE - 1] + "…"


def _encoded_len(text):
    return len(json.dumps(text, ensure_ascii=False).encode("utf-8"))


def _split(text):
    """``text`` (clean) in slices whose JSON encoding is at most ``MAX_DELTA_BYTES``.

    Slices are of code points, so no character is split."""
    start = 0
    while start < len(text):
        size = min(len(text) - start, MAX_DELTA_BYTES)
        while size > 1:
            length = _encoded_len(text[start : start + size])
            if length <= MAX_DELTA_BYTES:
                break
            size = max(1, min(size - 1, size * MAX_DELTA_BYTES // length))
        yield text[start : start + size]
        start += size


class Turn:
    """One turn: the message, and whether it has been cancelled."""

    def __init__(self, turn_id, message_id, message, emit):
        self.id = turn_id
        self.message_id = message_id
        self.message = message
        self.session_id = os.environ.get("TURNWATCH_SESSION_ID")
        self.thread = os.environ.get("TURNWATCH_THREAD")
        self.cancel_event = threading.Event()
        self._emit = emit
        self._lock = threading.Lock()
        self._on_cancel = []

    @property
    def cancelled(self):
        """True once the turn was cancelled or the worker is shutting down."""
        return self.cancel_event.is_set()

    def wait(self, seconds):
        """Sleeps up to ``seconds``; returns True (early) if the turn is cancelled."""
        return self.cancel_event.wait(seconds)

    def status(self, note):
        """Sends a progress note (e.g. "calling tool x"); it counts as progress."""
        if not self.cancelled:
            self._emit({"type": "status", "turnId": self.id, "state": _short(note)})

    def _cancel(self):
        with self._lock:
            self.cancel_event.set()
            callbacks, self._on_cancel = self._on_cancel, []
        for callback in callbacks:
            callback()

    def _when_cancelled(self, callback):
        with self._lock:
            if not self.cancel_event.is_set():
                self._on_cancel.append(callback)
                return
        callback()


class _Worker:
    def __init__(self, handler, heartbeat, grace):
        self.handler = handler
        self.heartbeat = heartbeat
        self.grace = grace
        # Protocol lines go to the real stdout; the handler's print() goes to stderr.
        self.out = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        self.lock = threading.Lock()
        self.turns = {}  # turnId -> Turn, queued or running
        self.queue = queue.Queue()
        self.current = None  # the Turn whose handler runs
        self.loop = None  # the runner's event loop, made for the first async handler
        self.stopping = threading.Event()
        self.runner = threading.Thread(target=self.run_turns, daemon=True)

    def emit(self, msg):
        line = json.dumps(msg, ensure_ascii=False)  # strings were cleaned: valid UTF-8
        with self.lock:
            try:
                self.out.write(line + "\n")
                self.out.flush()
            except (BrokenPipeError, ValueError):
                os._exit(0)  # the gateway is gone

    def serve(self):
        self.runner.start()
        threading.Thread(target=self.beat, daemon=True).start()
        self.emit({"type": "ready"})
        for line in sys.stdin.buffer:
            try:
                msg = json.loads(line)
            except ValueError:
                msg = None
            if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
                print("turnwatch_worker: ignoring a line that is not a JSON object with a type",
                      file=sys.stderr)
                continue
            kind = msg["type"]
            if kind == "turn" and isinstance(msg.get("turnId"), str):
                content = msg.get("content")
                turn = Turn(msg["turnId"], msg.get("messageId"),
                            content if isinstance(content, str) else "", self.emit)
                with self.lock:
                    self.turns[turn.id] = turn
                self.queue.put(turn)
            elif kind == "cancel":
                with self.lock:
                    turn = self.turns.get(msg.get("turnId"))
                if turn is not None:
                    turn._cancel()
            elif kind == "shutdown":
                break
        self.stop()

    def stop(self):
        """Cancels every turn, gives the running handler ``grace`` seconds to return."""
        self.stopping.set()
        with self.lock:
            turns = list(self.turns.values())
        for turn in turns:
            turn._cancel()
        self.queue.put(None)
        self.runner.join(self.grace)
        self.out.flush()

    def run_turns(self):
        """The runner thread: one turn at a time, in order of arrival."""
        while True:
            turn = self.queue.get()
            if turn is None:
                return
            if not turn.cancelled:
                self.current = turn
                try:
                    self.run_turn(turn)
                finally:
                    self.current = None
            with self.lock:
                self.turns.pop(turn.id, None)

    def run_turn(self, turn):
        try:
            _Reply(self, turn).serve()
        except BaseException as e:  # noqa: BLE001 - any failure of the handler fails the turn
            if not turn.cancelled:
                try:
                    detail = str(e)
                except Exception:  # noqa: BLE001 - an exception whose __str__ fails
                    detail = ""
                error = f"the handler raised {type(e).__name__}" + (f": {detail}" if detail else "")
                error = _short(error)
                self.emit({"type": "error", "turnId": turn.id, "error": error})
            if not (turn.cancelled and isinstance(e, (GeneratorExit, asyncio.CancelledError))):
                traceback.print_exc()
        else:
            if not turn.cancelled:
                self.emit({"type": "complete", "turnId": turn.id})

    def beat(self):
        while not self.stopping.wait(self.heartbeat):
            if self.current is not None:
                self.emit({"type": "heartbeat"})

    def run_async(self, turn, awaitable):
        """Runs ``awaitable`` on the runner's loop; a cancel of ``turn`` cancels it."""
        if self.loop is None:
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
        loop = self.loop
        task = loop.create_task(awaitable)

        def cancel():
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:
                pass  # the loop is closed: the process is exiting

        turn._when_cancelled(cancel)
        return loop.run_until_complete(task)


class _Reply:
    """One turn's handler call, its output streamed as deltas."""

    def __init__(self, worker, turn):
        self.worker = worker
        self.turn = turn
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def serve(self):
        result = self.worker.handler(self.turn)
        if inspect.iscoroutine(result):
            result = self.worker.run_async(self.turn, result)
        if inspect.isasyncgen(result):
            self.worker.run_async(self.turn, self.drain_async(result))
        elif inspect.isgenerator(result):
            self.drain_generator(result)
        elif result is None or isinstance(result, (str, bytes, bytearray, memoryview)):
            self.piece(result)
        else:
            try:
                pieces = iter(result)
            except TypeError:
                self.piece(result)
            else:
                self.drain_iterator(pieces)
        self.piece(self.decoder.decode(b"", final=True))

    def drain_generator(self, gen):
        try:
            while not self.turn.cancelled:
                try:
                    piece = next(gen)
                except StopIteration as end:
                    self.piece(end.value)  # a generator's `return "text"` is a last piece
                    return
                self.piece(piece)
        finally:
            gen.close()

    def drain_iterator(self, pieces):
        try:
            for piece in pieces:
                if self.turn.cancelled:
                    return
                self.piece(piece)
        finally:
            close = getattr(pieces, "close", None)
            if callable(close):
                close()

    async def drain_async(self, agen):
        try:
            async for piece in agen:
                if self.turn.cancelled:
                    return
                self.piece(piece)
        finally:
            await agen.aclose()

    def piece(self, piece):
        """Streams one piece as deltas of at most ``MAX_DELTA_BYTES``."""
        if piece is None:
            return
        if isinstance(piece, (bytes, bytearray, memoryview)):
            text = self.decoder.decode(bytes(piece))
        else:
            text = self.decoder.decode(b"", final=True) + str(piece)
        for part in _split(_clean(text)):
            if self.turn.cancelled:
                return
            self.worker.emit({"type": "delta", "turnId": self.turn.id, "content": part})


def run(handler, heartbeat=2.0, grace=1.0):
    """Serves turns with ``handler(turn)`` until shutdown; never returns (exits 0)."""
    worker = _Worker(handler, heartbeat, grace)
    try:
        worker.serve()
    except KeyboardInterrupt:
        pass
    sys.stderr.flush()
    os._exit(0)
