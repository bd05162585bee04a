"""The source lives in ``projects/folk/`` and installs as ``folk``."""
import glob
import os.path as osp
import shutil
import subprocess
import sys
import zipfile

import folk

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SOURCE = osp.join(REPO, 'projects', 'folk')


def test_import_name_folk_resolves_to_projects_folk():
    assert osp.dirname(osp.abspath(folk.__file__)) == SOURCE
    assert not osp.exists(osp.join(REPO, 'folk'))
    assert not osp.exists(osp.join(REPO, 'projects', '__init__.py'))


def test_wheel_holds_every_module_under_folk(tmp_path):
    # built from a copy, so that no build/ folder is left in the checkout
    src = tmp_path / 'src'
    shutil.copytree(osp.join(REPO, 'projects'), src / 'projects')
    for name in ('setup.py', 'README.md'):
        shutil.copy(osp.join(REPO, name), src / name)
    subprocess.run([
        sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps',
        '--no-build-isolation', '-w',
        str(tmp_path),
        str(src)
    ],
                   check=True,
                   cwd=str(tmp_path))
    wheel, = glob.glob(str(tmp_path / '*.whl'))
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {
        'folk/' + osp.relpath(path, SOURCE).replace(osp.sep, '/')
        for path in glob.glob(osp.join(SOURCE, '**', '*.py'), recursive=True)
    }
    assert sources and sources <= names, sorted(sources - names)
    tops = {name.split('/')[0] for name in names}
    assert all(t == 'folk' or t.endswith('.dist-info') for t in tops), tops
