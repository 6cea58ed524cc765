"""The pool of workers behind --jobs: what each worker is given."""

from helpers import tiny_data
from search.cache.store import FeatureCache
from search.runner.pool import cache_args, make_runner


def test_the_cache_memory_budget_is_the_whole_search_s_split_between_its_workers(tmp_path):
    cache = FeatureCache(tmp_path, mem_limit_mb=4096, views=2)
    rest = {k: v for k, v in cache.args().items() if k != "mem_limit_mb"}
    for jobs, each in ((1, 4096), (2, 2048), (4, 1024)):
        args = cache_args(cache, jobs)
        assert args["mem_limit_mb"] == each
        assert {k: v for k, v in args.items() if k != "mem_limit_mb"} == rest
    assert cache_args(None, 2) is None
    pool = make_runner(tiny_data(20, 10), cache, 10, jobs=2)  # children start on first use only
    assert [r.spec.cache_args["mem_limit_mb"] for r in pool.runners] == [2048, 2048]
    assert make_runner(tiny_data(20, 10), cache, 10).spec.cache_args["mem_limit_mb"] == 4096


def test_renew_ends_a_free_worker_now_and_a_lent_one_when_it_is_given_back():
    from search.runner.pool import RunnerPool

    class Runner:
        def __init__(self):
            self.closed = 0

        def close(self, wait=True):
            self.closed += 1

    a, b = Runner(), Runner()
    pool = RunnerPool([a, b])
    lent = pool.take()  # a: in a run (one of the pick's, started while the last trials ran)
    pool.renew()
    assert (lent.closed, b.closed) == (0, 1)  # the free one at once, never one in a run
    pool.give(lent)
    assert (a.closed, b.closed) == (1, 1)
    assert {pool.take(), pool.take()} == {a, b} and (a.closed, b.closed) == (1, 1)  # once each
