"""The time limit cuts a fit in the main thread (a signal) and in a worker thread (a deadline)."""

import threading
import time

import pytest

import probgen as pg
from probgen.inference.time_limit import TimeLimit, check_time_limit, time_limit


def _fit_for_ever(outcome: dict) -> None:
    data = pg.load_dataset("digits-binary")
    model = pg.models.IndependentBernoulli(64)
    started = time.perf_counter()
    try:
        with time_limit(0.5):
            pg.fit(model, data, epochs=10**6, batch_size=10, progress=False, seed=0)
    except TimeLimit:
        outcome["cut_after"] = time.perf_counter() - started
    outcome["deadline_after"] = check_time_limit()  # None: the block's deadline is gone


@pytest.mark.parametrize("where", ["main", "worker"])
def test_a_time_limit_cuts_an_endless_fit_in_the_main_thread_and_in_a_worker_thread(where):
    """Dask runs a job in a worker thread, where SIGALRM cannot reach: the limit still cuts it,
    at the next optimizer step, and leaves no deadline behind."""
    outcome: dict = {}
    if where == "main":
        _fit_for_ever(outcome)
    else:
        thread = threading.Thread(target=_fit_for_ever, args=(outcome,))
        thread.start()
        thread.join(timeout=60)
        assert not thread.is_alive()
    assert 0.5 <= outcome["cut_after"] < 5
    assert outcome["deadline_after"] is None


def test_a_worker_threads_deadline_is_its_own():
    """One thread's passed deadline does not cut another thread's work."""
    cut, expired, done = [], threading.Event(), threading.Event()

    def worker():
        with time_limit(0.001):
            time.sleep(0.01)
            expired.set()
            done.wait(5)
            try:
                check_time_limit()
            except TimeLimit:
                cut.append(True)

    thread = threading.Thread(target=worker)
    thread.start()
    assert expired.wait(5)
    check_time_limit()  # the main thread has no deadline of its own: nothing raised
    done.set()
    thread.join()
    assert cut == [True]
