"""Reporting a benchmark's results: its table printed, JSON and markdown."""
import json
import os
import os.path as osp
from typing import Any, Optional

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def relative_paths(data: Any, root: str = REPO) -> Any:
    """``data`` with every absolute path made relative to ``root``.

    Results files are committed: they must not hold the paths of the
    machine that made them (the shared data folder beside a checkout
    becomes ``../shared/data``).

    Args:
        data: JSON-like data (dicts, lists, strings, numbers).
        root (str): Directory the paths become relative to. Defaults to
            the repository.

    Returns:
        A copy of ``data``; strings that are absolute paths are replaced.
    """
    if isinstance(data, dict):
        return {k: relative_paths(v, root) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [relative_paths(v, root) for v in data]
    if isinstance(data, str) and osp.isabs(data):
        return osp.relpath(osp.normpath(data), root)
    return data


def write_report(out: Optional[str], data: dict, table: str) -> None:
    """Print ``table``; write ``data`` to ``out`` (JSON), ``table`` beside it.

    Args:
        out (str, optional): JSON path; nothing is written when None.
        data (dict): What the JSON holds (configuration and rows);
            absolute paths in it are written relative to the repository.
        table (str): The markdown table printed by the benchmark.
    """
    print(table)
    if not out:
        return
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    with open(out, 'w') as f:
        json.dump(relative_paths(data), f, indent=2)
        f.write('\n')
    with open(osp.splitext(out)[0] + '.md', 'w') as f:
        f.write(table + '\n')
