"""`BatchingHandler`: lines logged during one turn of the event loop go out in one write, in
order, and nothing waits longer than that turn."""

from __future__ import annotations

import asyncio
import io
import logging
import threading

from registry.observe.logs import BatchingHandler


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def _logger(stream: CountingStream) -> logging.Logger:
    handler = BatchingHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger(f"test.batching.{id(stream)}")
    logger.propagate = False
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    return logger


def test_outside_a_loop_each_line_is_written_at_once() -> None:
    stream = CountingStream()
    log = _logger(stream)
    log.info("one")
    assert stream.getvalue() == "one\n"
    log.info("two")
    assert (stream.getvalue(), stream.writes) == ("one\ntwo\n", 2)


def test_one_turn_of_the_loop_is_one_write() -> None:
    stream = CountingStream()
    log = _logger(stream)

    async def requests() -> None:
        for i in range(50):
            log.info("line %d", i)
        assert stream.getvalue() == ""  # still in this turn of the loop
        await asyncio.sleep(0)  # the loop runs the flush it scheduled
        assert stream.writes == 1
        log.info("later")
        await asyncio.sleep(0)

    asyncio.run(requests())
    assert stream.getvalue() == "".join(f"line {i}\n" for i in range(50)) + "later\n"
    assert stream.writes == 2


def test_a_thread_writes_after_what_the_loop_collected() -> None:
    stream = CountingStream()
    log = _logger(stream)

    async def mixed() -> None:
        log.info("from the loop")
        worker = threading.Thread(target=log.info, args=("from a thread",))
        worker.start()
        worker.join()
        assert stream.getvalue() == "from the loop\nfrom a thread\n"

    asyncio.run(mixed())


def test_flush_writes_what_is_left_when_the_loop_stops() -> None:
    stream = CountingStream()
    log = _logger(stream)

    async def last_words() -> None:
        log.info("bye")

    asyncio.run(last_words())  # the loop closed before its next turn
    for handler in log.handlers:
        handler.flush()  # as logging.shutdown() does at exit
    assert stream.getvalue() == "bye\n"
