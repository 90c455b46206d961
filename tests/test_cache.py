"""The cache's cost ledger: build times recorded once per artifact, inner builds not counted twice."""
import json
import time

from cda.cache import Cache


def test_build_time_is_recorded_and_inner_builds_are_not_counted_twice(tmp_path):
    cache = Cache(tmp_path)

    def inner(folder):
        time.sleep(0.5)

    def outer(folder):
        cache.get_or_make("inner", ({"b": 1},), inner, lambda f: "in")
        time.sleep(0.1)

    cache.get_or_make("outer", ({"a": 1},), outer, lambda f: "out")
    cost = cache.cost()
    seconds = {k.split("/")[0]: v["seconds"] for k, v in cost["artifacts"].items()}
    assert seconds["inner"] >= 0.5 and 0.1 <= seconds["outer"] < 0.4  # outer excludes inner
    assert cost["artifacts_built"] == 2 and cost["artifacts_from_cache"] == 0
    assert json.loads((cache.folder("inner", {"b": 1}) / "done.json").read_text())["seconds"] == seconds["inner"]

    again = Cache(tmp_path)  # a later run: everything comes from the cache, with its recorded cost
    again.get_or_make("outer", ({"a": 1},), outer, lambda f: "out")
    again.get_or_make("inner", ({"b": 1},), inner, lambda f: "in")
    again.get_or_make("inner", ({"b": 1},), inner, lambda f: "in")  # used twice, counted once
    assert again.cost()["artifacts_from_cache"] == 2 and again.cost()["artifacts_built"] == 0
    assert again.cost()["build_seconds"] == cost["build_seconds"]


def test_a_cached_result_counts_the_artifacts_it_was_built_from(tmp_path):
    Cache(tmp_path).get_or_make("distilled", ({"ipc": 10},), lambda f: time.sleep(0.1), lambda f: None)
    later = Cache(tmp_path)
    later.note("distilled", ({"ipc": 10},))
    later.note("distilled", ({"ipc": 50},))  # never built: nothing to count
    assert list(later.cost()["artifacts"]) == [f"distilled/{later.folder('distilled', {'ipc': 10}).name}"]
    assert later.cost()["build_seconds"] >= 0.1
