"""Reporting a benchmark's results: its table printed, JSON and markdown."""
import json
import os
import os.path as osp
from typing import Optional


def write_report(out: Optional[str], data: dict, table: str) -> None:
    """Print ``table``; write ``data`` to ``out`` (JSON), ``table`` beside it.

    Args:
        out (str, optional): JSON path; nothing is written when None.
        data (dict): What the JSON holds (configuration and rows).
        table (str): The markdown table printed by the benchmark.
    """
    print(table)
    if not out:
        return
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    with open(out, 'w') as f:
        json.dump(data, f, indent=2)
        f.write('\n')
    with open(osp.splitext(out)[0] + '.md', 'w') as f:
        f.write(table + '\n')
