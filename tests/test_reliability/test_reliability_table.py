"""``docs/reliability.md`` opens with the fault table: every fault of the
campaign (rows 1-63) appears once, with what the software does and the
test that shows it (or a stated reason why there is none)."""
import os.path as osp
import re

from runner_utils import REPO

PAGE = osp.join(REPO, 'docs', 'reliability.md')
NO_TEST = ('campaign only', 'documented', 'none (open)')


def _first_table():
    rows, started = [], False
    for line in open(PAGE, encoding='utf-8'):
        if line.startswith('|'):
            started = True
            rows.append(
                [c.strip() for c in line.strip().strip('|').split('|')])
        elif started:
            break
    return rows


def test_the_page_opens_with_the_fault_table():
    text = open(PAGE, encoding='utf-8').read()
    first_heading = re.findall(r'^## (.+)$', text, re.MULTILINE)[0]
    assert first_heading == 'Faults and what the software does'
    header = _first_table()[0]
    assert header == ['#', 'fault', 'what the software does', 'test']


def test_every_campaign_fault_has_a_row_and_a_test_or_a_reason():
    numbered = {}
    for row in _first_table()[2:]:
        assert len(row) == 4, row
        if row[0].isdigit():
            assert row[0] not in numbered, f'row {row[0]} twice'
            numbered[row[0]] = row
    assert sorted(map(int, numbered)) == list(range(1, 64))
    for num, (_, fault, does, test) in numbered.items():
        assert fault and does, num
        assert '.py' in test or test.startswith(NO_TEST), (num, test)
