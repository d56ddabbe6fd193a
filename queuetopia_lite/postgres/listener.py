"""Wake-ups across hosts: a thread LISTENs and counts notifications.

``insert_jobs`` (and other writes that make a queue runnable) send
``pg_notify(channel, scope)`` inside their transaction, so the notification
leaves exactly when the job is committed. The scheduler's watcher thread polls
``change_counter()`` every few milliseconds; this thread bumps that counter on
every notification for a scope this process runs, and once after every
reconnection (notifications may have been missed while the connection was down).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

import psycopg
from psycopg import sql

log = logging.getLogger("queuetopia_lite")

NOTIFY_WAIT = 0.5  # seconds between looks at the stop flag
RECONNECT_PAUSE_MAX = 5.0  # seconds
PING_INTERVAL = 5.0  # seconds between checks that a quiet connection is alive


class Listener:
    """A daemon thread holding one LISTEN connection, reconnecting when it drops.

    Args:
        connect: opens a new autocommit connection.
        channel: the channel to LISTEN on.
    """

    def __init__(self, connect: Callable[[], psycopg.Connection[Any]], channel: str) -> None:
        self.counter = 0
        self.scopes: set[str] = set()  # the scopes whose notifications count; empty: all
        self._connect = connect
        self._channel = channel
        self._stop = threading.Event()
        self.listening = threading.Event()  # set while LISTEN is active
        self._thread = threading.Thread(target=self._run, name="queuetopia-listener",
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the thread (it ends within NOTIFY_WAIT seconds)."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(NOTIFY_WAIT * 4)

    def _run(self) -> None:
        pause = 0.05
        while not self._stop.is_set():
            try:
                with self._connect() as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                    self.listening.set()
                    self.counter += 1  # we may have missed notifications: look again
                    pause = 0.05
                    self._receive(conn)
            except Exception as exc:  # any failure: reconnect, the scheduler polls meanwhile
                if not self._stop.is_set():
                    log.warning("queuetopia_lite: the LISTEN connection failed (%s); "
                                "reconnecting in %.2f s", exc, pause)
            self.listening.clear()
            self.counter += 1
            self._stop.wait(pause)
            pause = min(pause * 2, RECONNECT_PAUSE_MAX)

    def _receive(self, conn: psycopg.Connection[Any]) -> None:
        ping_at = time.monotonic() + PING_INTERVAL
        while not self._stop.is_set():
            for notify in conn.notifies(timeout=NOTIFY_WAIT):
                scopes = self.scopes
                if not scopes or notify.payload in scopes:
                    self.counter += 1
            if time.monotonic() >= ping_at:  # a silently dropped connection raises here
                conn.execute(b"SELECT 1")
                ping_at = time.monotonic() + PING_INTERVAL
