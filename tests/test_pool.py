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
