"""Former entry point of the Imagenette study; see ``benchmarks/study``.

The study now lives in one small script per protocol under
``benchmarks/study/`` (``pretrain.py``, ``knn.py``, ``linear.py``,
``finetune.py``, ``segment.py``) and is run by
``benchmarks/study/run_study.py``. This file forwards its command line
there, so existing command lines (``--preset``, ``--variants``,
``--seeds``, ``--set``, ``--out-dir``, ``--prefix``, ...) keep working.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), 'study'))

from run_study import main  # noqa: E402

if __name__ == '__main__':
    main()
