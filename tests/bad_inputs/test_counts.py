"""The README's bad-input counts equal what the tests contain (``count_cases.py``; not itself a case)."""
import count_cases


def test_readme_records_the_case_counts_by_kind():
    nodes = count_cases.node_ids()
    assert len(nodes) == len(set(nodes)), "two cases share an id"
    counts = count_cases.count(nodes)
    assert sum(counts.values()) >= 150
    assert count_cases.readme_table(count_cases.README.read_text()) == count_cases.table(counts), (
        "README.md's reliability counts are stale: run python tests/bad_inputs/count_cases.py --write")
