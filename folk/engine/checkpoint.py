"""Checkpoint integrity checks and the choice of a checkpoint to resume.

MMEngine resumes (``resume=True`` with ``load_from=None``, i.e.
``tools/train.py --resume auto``) from the file named in
``work_dir/last_checkpoint``. If that file is truncated or corrupt, the run
cannot restart. :func:`find_resumable_checkpoint` returns the newest intact
checkpoint instead, reporting every file it skips.
"""
import os
import os.path as osp
import re
import zipfile
from typing import Callable, List, Optional, Tuple

_CKPT_RE = re.compile(r'^(iter|epoch)_(\d+)\.pth$')


def verify_checkpoint(path: str) -> Optional[str]:
    """Check that a checkpoint file is complete and uncorrupted.

    ``torch.save`` writes a zip archive with a CRC-32 for every record. The
    archive's directory (at its end) must be readable and every record must
    match its CRC, which detects truncated files, files cut short by a full
    disk and flipped bytes (``torch.load`` itself does not check the CRCs of
    tensor data). The check streams the file; nothing is unpickled.

    Files in torch's legacy (non-zip) format cannot be checked this way and
    are accepted if :func:`folk.compat.safe_torch_load` can load them.

    Args:
        path (str): Checkpoint file.

    Returns:
        str | None: ``None`` if the file is intact, otherwise the reason.
    """
    if not osp.isfile(path):
        return 'file not found'
    if osp.getsize(path) == 0:
        return 'empty file'
    if not zipfile.is_zipfile(path):
        from ..compat import safe_torch_load
        try:
            safe_torch_load(path)
        except Exception as err:  # noqa: BLE001 - reported to the caller
            return ('not a complete zip-format PyTorch checkpoint (truncated?)'
                    f' and not loadable: {err}')
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        return f'unreadable zip archive: {err}'
    if bad is not None:
        return f'CRC mismatch in record {bad!r} (corrupt data)'
    return None


def _step(name: str) -> Optional[Tuple[str, int]]:
    match = _CKPT_RE.match(name)
    return (match.group(1), int(match.group(2))) if match else None


def find_resumable_checkpoint(
        work_dir: str,
        warn: Callable[[str], None] = print) -> Optional[str]:
    """The checkpoint that auto-resume should use.

    The candidates are the file named in ``work_dir/last_checkpoint``, then
    the older ``iter_*.pth`` / ``epoch_*.pth`` files of the same directory,
    newest first. The first one that passes :func:`verify_checkpoint` is
    returned; each skipped file is reported through ``warn`` with the
    reason.

    Args:
        work_dir (str): The run's work directory.
        warn (callable): Receives one message per skipped file.

    Returns:
        str | None: The checkpoint, or ``None`` when there is no
        ``last_checkpoint`` (a fresh run; MMEngine then starts from scratch).

    Raises:
        RuntimeError: If ``last_checkpoint`` exists but no candidate is
            intact (starting from scratch silently would discard the run).
    """
    pointer = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(pointer):
        return None
    with open(pointer) as f:
        latest = f.read().strip()
    ckpt_dir = osp.dirname(latest) if latest else work_dir
    if not osp.isdir(ckpt_dir):
        ckpt_dir = work_dir
    latest_step = _step(osp.basename(latest)) if latest else None

    others: List[Tuple[int, str]] = []
    for name in os.listdir(ckpt_dir):
        step = _step(name)
        path = osp.join(ckpt_dir, name)
        if step is None or osp.abspath(path) == osp.abspath(latest or ''):
            continue
        if latest_step is not None and (step[0] != latest_step[0]
                                        or step[1] >= latest_step[1]):
            continue
        others.append((step[1], path))
    candidates = ([latest] if latest else []) + [
        path for _, path in sorted(others, reverse=True)
    ]

    skipped = []
    for path in candidates:
        reason = verify_checkpoint(path)
        if reason is None:
            return path
        skipped.append(f'{path} ({reason})')
        warn(f'auto-resume: skipping checkpoint {path}: {reason}; trying the '
             'previous one')
    raise RuntimeError(
        f'auto-resume: {pointer} exists but no intact checkpoint was found '
        f'in {ckpt_dir}: ' + ('; '.join(skipped) or 'no checkpoint files') +
        f'. Remove {pointer} to start from scratch, or pass --resume PATH.')
