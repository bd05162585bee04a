"""Install FOLK for OpenMMLab.

The package's source lives in ``projects/folk/`` (the OpenMMLab projects
layout) and is installed under the import name ``folk``; ``projects`` is a
folder, never an import name.
"""
import os.path as osp
from setuptools import find_packages, setup

PACKAGE_DIR = osp.join('projects', 'folk')


def read_version() -> str:
    scope: dict = {}
    with open(osp.join(PACKAGE_DIR, 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


def read_requirements() -> list:
    """Runtime requirements, without the torch / mmcv pins.

    torch and mmcv are left to the user's environment so that ``pip install
    -e .`` never replaces a CUDA build of torch or a full mmcv with
    mmcv-lite; ``requirements.txt`` pins the tested set.
    """
    return [
        'mmengine>=0.10.7,<0.11', 'mmpretrain>=1.2.0,<1.3',
        'mmsegmentation>=1.2.2,<1.3', 'numpy', 'ftfy', 'regex'
    ]


setup(
    name='folk-openmmlab',
    version=read_version(),
    description='FOLK: frequency-guided masking with self-knowledge '
    'distillation, for MMPretrain and MMSegmentation',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.8',
    packages=['folk'] +
    [f'folk.{name}' for name in find_packages(PACKAGE_DIR)],
    package_dir={'folk': PACKAGE_DIR},
    install_requires=read_requirements(),
    zip_safe=False)
