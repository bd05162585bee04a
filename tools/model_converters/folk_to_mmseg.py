"""Convert a FOLK/MFM pre-training checkpoint into mmseg backbone weights.

Usage: python tools/model_converters/folk_to_mmseg.py IN.pth OUT.pth
           [--weights teacher|student]

Default weights: the EMA teacher for FOLK, the student for MFM. See
projects/folk/converters.py (folk.converters) for the key mapping.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))), 'projects'))

from folk.converters import cli_main  # noqa: E402

if __name__ == '__main__':
    sys.exit(cli_main('mmseg'))
