"""The mutation run's operators and its verdicts (pure parts, plus one tiny real run)."""

from pathlib import Path

from bench.mutation import Mutation, apply_mutation, mutate_module, mutations_of, spread

SOURCE = '''
def may_claim(state, acked):
    """Docstring constants are not mutated."""
    if state == "queued" and not acked:
        return True
    return False
'''


def kinds(source: str) -> list[str]:
    return [m.kind for m in mutations_of(source)]


def test_operators_find_comparisons_conditions_booleans_and_returns() -> None:
    assert sorted(kinds(SOURCE)) == sorted(
        [
            "negate",
            "boolop",
            "compare",
            "drop-not",
            "return-none",
            "constant",
            "return-none",
            "constant",
        ]
    )


def test_a_flipped_comparison_changes_what_the_function_answers() -> None:
    compare = next(m for m in mutations_of(SOURCE) if m.kind == "compare")
    namespace: dict[str, object] = {}
    exec(apply_mutation(SOURCE, compare), namespace)
    may_claim = namespace["may_claim"]
    assert callable(may_claim)
    assert may_claim("queued", False) is False
    assert may_claim("stopped", False) is True


def test_sampling_is_even_and_deterministic() -> None:
    items = [Mutation(i, i, "constant", "") for i in range(10)]
    assert [m.index for m in spread(items, 5)] == [0, 2, 4, 6, 8]
    assert spread(items, None) == items


def test_a_mutant_the_tests_notice_is_killed_and_one_they_miss_survives(tmp_path: Path) -> None:
    (tmp_path / "rule.py").write_text("def is_adult(age):\n    return age >= 18\n")
    (tmp_path / "test_rule.py").write_text(
        "from rule import is_adult\n\ndef test_adult():\n    assert is_adult(30)\n"
    )
    events = list(mutate_module(tmp_path, "rule.py", ["test_rule.py"], limit=None))
    result = events[-1]
    verdicts = {m.kind + " " + m.description: killed for m, killed in events[:-1]}  # type: ignore[misc]
    assert verdicts["compare GtE → Lt"] is True  # is_adult(30) becomes False: the test fails
    assert verdicts["constant 18 → 19"] is False  # the boundary is not pinned: survives
    assert result.killed == 2 and len(result.survived) == 1  # type: ignore[union-attr]
    assert (tmp_path / "rule.py").read_text().endswith(">= 18\n")
