"""The README's and the docs' relative links resolve; the README is short."""
import os.path as osp

import pytest
from doc_checks import REPO, anchors, check_links, doc_pages, github_slug

PAGES = doc_pages()


def write(tmp_repo, page, text):
    path = osp.join(tmp_repo, page)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)
    return page


@pytest.mark.parametrize('page', PAGES)
def test_page_links_resolve(page):
    assert check_links(page) == []


def test_readme_is_a_short_front_door():
    with open(osp.join(REPO, 'README.md'), encoding='utf-8') as f:
        text = f.read()
    assert len(text) <= 12000
    # the package lives in projects/folk/ and nowhere else
    assert osp.isfile(osp.join(REPO, 'projects', 'folk', '__init__.py'))
    assert not osp.exists(osp.join(REPO, 'folk'))
    assert not osp.exists(osp.join(REPO, 'projects', '__init__.py'))


def test_every_docs_page_is_reachable_from_the_readme():
    with open(osp.join(REPO, 'README.md'), encoding='utf-8') as f:
        readme = f.read()
    for page in PAGES[1:]:
        assert f'({page})' in readme or f'({page}#' in readme, page


# ------------------------------------------------- the checker's own tests
@pytest.fixture
def tmp_repo(tmp_path):
    """A tiny git repository: README, docs/a.md, a file and an ignored dir."""
    import subprocess
    (tmp_path / 'docs').mkdir()
    (tmp_path / 'tools').mkdir()
    (tmp_path / 'tools' / 'x.py').write_text('')
    (tmp_path / 'work_dirs').mkdir()
    (tmp_path / 'work_dirs' / 'out.pth').write_text('')
    (tmp_path / '.gitignore').write_text('work_dirs/\n')
    (tmp_path / 'docs' / 'a.md').write_text(
        '# Page A\n\n## Pre-training: `tools/train.py` & co.\n\n'
        '## Notes\n\n## Notes\n')
    subprocess.run(['git', 'init', '-q'], cwd=tmp_path, check=True)
    return str(tmp_path)


def test_good_links_pass(tmp_repo):
    page = write(
        tmp_repo, 'README.md',
        ('[a](docs/a.md) [A](docs/a.md#page-a) [tool](tools/x.py) '
         '[dir](tools/) [web](https://example.com/x#y) '
         '![img](docs/a.md) [notes 2](docs/a.md#notes-1) [top](#top)\n'
         '# Top\n`[not a link](nowhere.md)`\n'
         '```\n[in code](nowhere.md)\n```\n'))
    assert check_links(page, tmp_repo) == []


@pytest.mark.parametrize('link, message', [
    ('docs/b.md', 'docs/b.md does not exist'),
    ('docs/a.md#pre-training', 'no heading #pre-training in docs/a.md'),
    ('work_dirs/out.pth', 'work_dirs/out.pth is git-ignored'),
    ('../elsewhere.md', 'leaves the repository'),
    ('/docs/a.md', 'is absolute'),
    ('#missing', 'no heading #missing in README.md'),
])
def test_bad_links_fail(tmp_repo, link, message):
    page = write(tmp_repo, 'README.md', f'# Title\n\nsee [this]({link}).\n')
    found = check_links(page, tmp_repo)
    assert len(found) == 1
    assert found[0].startswith(f"README.md:3: link '{link}'")
    assert message in found[0]


def test_links_from_a_docs_page_are_relative_to_it(tmp_repo):
    page = write(tmp_repo, 'docs/c.md',
                 '[ok](a.md) [ok](../tools/x.py) [bad](tools/x.py)\n')
    found = check_links(page, tmp_repo)
    assert found == [
        "docs/c.md:1: link 'tools/x.py': docs/tools/x.py "
        'does not exist'
    ]


def test_github_slugs():
    assert github_slug('Pre-training: `tools/train.py` & co.') == \
        'pre-training-toolstrainpy--co'
    assert github_slug("Cost at the run's size, estimated without a GPU") \
        == 'cost-at-the-runs-size-estimated-without-a-gpu'
    assert github_slug('FOLK\'s two ideas [paper]') == 'folks-two-ideas-paper'
    assert anchors('# A\n## A\n```\n# not a heading\n```\n## A\n') == \
        {'a', 'a-1', 'a-2'}
