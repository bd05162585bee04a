"""Shared fixtures: paths to the repository and the bundled data sets."""
import os
import os.path as osp

import pytest

import folk  # noqa: F401  (compat fixes + registration)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHARED = os.environ.get('FOLK_SHARED', osp.join(osp.dirname(REPO), 'shared'))


def _require(path: str) -> str:
    if not osp.exists(path):
        raise FileNotFoundError(
            f'bundled data not found at {path}; set FOLK_SHARED to the '
            'shared/ folder that holds data/')
    return path


@pytest.fixture(scope='session')
def repo_root() -> str:
    return REPO


@pytest.fixture(scope='session')
def imagenette_root() -> str:
    """Imagenette at 128 px (real images, MMPretrain annotation format)."""
    return _require(osp.join(SHARED, 'data', 'imagenette128'))


@pytest.fixture(scope='session')
def camvid_root() -> str:
    """CamVid 11 classes, 480x360."""
    return _require(osp.join(SHARED, 'data', 'camvid'))


@pytest.fixture(autouse=True)
def mmpretrain_default_scope():
    """Run every test under the 'mmpretrain' default scope.

    mmengine keeps the latest ``DefaultScope`` as global state: a test that
    builds an MMSeg runner would otherwise leave 'mmseg' as the scope for
    the tests after it.
    """
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield


@pytest.fixture
def cpu_amp():
    """MMEngine's ``AmpOptimWrapper`` on a CPU (``runner_utils.cpu_amp``)."""
    from runner_utils import cpu_amp as stand_in
    with stand_in():
        yield
