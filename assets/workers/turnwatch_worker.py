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

The handler is called once per turn with a :class:`Turn`. It may be a generator that yields
text (each piece is streamed as a delta; the turn completes with their concatenation when
it returns) or a plain function that returns the whole reply as a string (a generator's
``return "text"`` is its last piece). An exception fails
the turn with code ``agent_error`` and a sentence naming the exception. The library sends
``ready``, heartbeats while a turn runs, and handles ``cancel`` and ``shutdown``:

* ``turn.cancelled`` turns true and ``turn.cancel_event`` (a :class:`threading.Event`) is
  set; ``turn.wait(seconds)`` sleeps but wakes at once on cancellation. After a cancel the
  turn's output is discarded, and a generator is closed at its next ``yield``
  (``GeneratorExit`` there, so ``finally`` blocks run).
* On ``shutdown`` (or stdin closing) the running turn is cancelled, given ``grace`` seconds to
  return, and the process exits 0.

A worker serves one session, so state kept between calls (a conversation history, a client)
belongs to that session. ``print`` goes to stderr (kept by the gateway as the worker's stderr
tail): the library takes the real stdout for protocol lines only.

Protocol: docs/protocol.md §3 in the turnwatch repository.
"""

import inspect
import json
import os
import sys
import threading
import traceback

__all__ = ["Turn", "run"]


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
            self._emit({"type": "status", "turnId": self.id, "state": str(note)})


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
        self.current = None  # (Turn, Thread) of the running turn

    def emit(self, msg):
        line = json.dumps(msg)  # ASCII: any str, even a lone surrogate, can be written
        with self.lock:
            try:
                self.out.write(line + "\n")
                self.out.flush()
            except (BrokenPipeError, ValueError):
                os._exit(0)  # the gateway is gone

    def serve(self):
        self.emit({"type": "ready"})
        for line in sys.stdin.buffer:
            try:
                msg = json.loads(line)
            except ValueError:
                msg = None
            if not isinstance(msg, dict):
                print("turnwatch_worker: ignoring a line that is not a JSON object",
                      file=sys.stderr)
                continue
            kind = msg.get("type")
            if kind == "turn":
                self.start(msg)
            elif kind == "cancel":
                turn = self.running()
                if turn is not None and turn.id == msg.get("turnId"):
                    turn.cancel_event.set()
            elif kind == "shutdown":
                break
        self.stop()

    def running(self):
        if self.current is not None and self.current[1].is_alive():
            return self.current[0]
        return None

    def start(self, msg):
        turn = Turn(msg["turnId"], msg.get("messageId"), msg.get("content", ""), self.emit)
        thread = threading.Thread(target=self.run_turn, args=(turn,), daemon=True)
        self.current = (turn, thread)
        thread.start()

    def stop(self):
        turn = self.running()
        if turn is not None:
            turn.cancel_event.set()
            self.current[1].join(self.grace)
        self.out.flush()

    def run_turn(self, turn):
        done = threading.Event()
        threading.Thread(target=self.beat, args=(done,), daemon=True).start()
        try:
            text = self.call(turn)
        except Exception as e:  # noqa: BLE001 - any failure of the handler fails the turn
            if not turn.cancelled:
                error = f"the handler raised {type(e).__name__}: {e}"
                self.emit({"type": "error", "turnId": turn.id, "error": error})
            traceback.print_exc()
        else:
            if not turn.cancelled:
                self.emit({"type": "complete", "turnId": turn.id, "finalText": text})
        finally:
            done.set()

    def call(self, turn):
        """Runs the handler; returns the reply's whole text, having streamed it."""
        result = self.handler(turn)
        if not inspect.isgenerator(result):
            return self.piece(turn, result)
        pieces = []
        try:
            while not turn.cancelled:
                try:
                    piece = next(result)
                except StopIteration as end:
                    # A generator's `return "text"` is a last piece.
                    pieces.append(self.piece(turn, end.value))
                    break
                pieces.append(self.piece(turn, piece))
        finally:
            result.close()
        return "".join(pieces)

    def piece(self, turn, piece):
        """Streams one piece as a delta; returns its text."""
        text = "" if piece is None else str(piece)
        if text and not turn.cancelled:
            self.emit({"type": "delta", "turnId": turn.id, "content": text})
        return text

    def beat(self, done):
        while not done.wait(self.heartbeat):
            self.emit({"type": "heartbeat"})


def run(handler, heartbeat=2.0, grace=1.0):
    """Serves turns with ``handler(turn)`` until shutdown; never returns (exits 0)."""
    worker = _Worker(handler, heartbeat, grace)
    try:
        worker.serve()
    except KeyboardInterrupt:
        pass
    sys.stderr.flush()
    os._exit(0)
