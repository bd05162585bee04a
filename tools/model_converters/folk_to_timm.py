"""Convert a FOLK/MFM pre-training checkpoint into timm backbone weights.

Usage: python tools/model_converters/folk_to_timm.py IN.pth OUT.pth
           [--weights teacher|student]

Default weights: the EMA teacher for FOLK, the student for MFM. See
folk.downstream.conversion for the key mapping.
"""
import sys

from folk.downstream import cli_main

if __name__ == '__main__':
    sys.exit(cli_main('timm'))
