"""Tables, target checks and the figure of the Imagenette study."""
import os.path as osp
from typing import List, Optional

import numpy as np
from presets import METRIC_NAMES, METRICS, VARIANTS

#: The study's targets: (variant, metric, reference, margin in points).
TARGETS = (
    ('folk', 'knn', 'scratch', 10.0),
    ('folk', 'linear', 'scratch', 10.0),
    ('folk', 'ft10', 'scratch', 3.0),
    ('folk', 'knn', 'mfm', 0.0),
    ('folk', 'linear', 'mfm', 0.0),
    ('folk', 'ft10', 'mfm', 0.0),
)


def fmt(s: Optional[dict], pct: bool = True, digits: int = 1) -> str:
    if s is None:
        return '-'
    k = 100. if pct else 1.
    out = f'{s["mean"] * k:.{digits}f}'
    if s['n'] > 1:
        out += f' ± {s["std"] * k:.{digits}f}'
    return out


def table(results: dict) -> str:
    """Markdown table: one row per variant (mean ± std over seeds)."""
    head = ('| variant | seeds | k-NN [CLS] | k-NN patch mean | '
            'k-NN (student) | linear [CLS] | linear patch mean | ft-10% | '
            'ft-100% | CamVid mIoU | final loss_freq | final loss_distill | '
            'pre-train (min) |')
    lines = [head, '|' + '---|' * 13]
    for name, r in results['variants'].items():
        s = r.get('summary', {})
        pt = s.get('pretrain_time_s')
        lines.append(f'| {r["label"]} | {len(r["seeds"])} | ' + ' | '.join(
            fmt(s.get(m))
            for m in ('knn', 'knn_patch', 'knn_student', 'linear',
                      'linear_patch', 'ft10', 'ft100', 'miou')) + ' | ' +
                     fmt(s.get('final_loss_freq'), False, 4) + ' | ' +
                     fmt(s.get('final_loss_distill'), False, 4) + ' | ' +
                     (f'{pt["mean"] / 60:.1f}' if pt else '-') + ' |')
    return '\n'.join(lines)


def check_targets(results: dict) -> List[dict]:
    """Each target with the measured means and whether it holds."""
    out = []
    var = results['variants']
    for name, metric, ref, margin in TARGETS:
        a = var.get(name, {}).get('summary', {}).get(metric)
        b = var.get(ref, {}).get('summary', {}).get(metric)
        row = dict(
            variant=name,
            metric=metric,
            reference=ref,
            margin=margin,
            value=None,
            reference_value=None,
            difference=None,
            met=None)
        if a and b:
            row.update(
                value=100 * a['mean'],
                reference_value=100 * b['mean'],
                difference=100 * (a['mean'] - b['mean']))
            row['met'] = bool(row['difference'] >= margin - 1e-9)
        out.append(row)
    return out


def targets_markdown(rows: List[dict]) -> str:
    lines = ['| target | measured | met |', '|---|---|---|']
    for r in rows:
        want = (f'{VARIANTS[r["variant"]]["label"].split(" (")[0]} '
                f'{METRIC_NAMES[r["metric"]]} >= '
                f'{VARIANTS[r["reference"]]["label"].split(" (")[0]}' +
                (f' + {r["margin"]:g}' if r['margin'] else ''))
        if r['met'] is None:
            lines.append(f'| {want} | not measured | - |')
        else:
            lines.append(f'| {want} | {r["value"]:.1f} vs '
                         f'{r["reference_value"]:.1f} '
                         f'({r["difference"]:+.1f}) | '
                         f'{"yes" if r["met"] else "**no**"} |')
    return '\n'.join(lines)


def plot(results: dict, path: str) -> None:
    """k-NN (online monitor) vs epoch of every variant, the losses, and
    the downstream bars."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(18, 5.5))
    colors = dict(
        zip(VARIANTS, plt.rcParams['axes.prop_cycle'].by_key()['color']))
    ax = axes[0]
    for name, r in results['variants'].items():
        runs = list(r['seeds'].values())
        if VARIANTS[name]['algo'] is None:
            for i, run in enumerate(runs):
                ax.axhline(
                    100 * run['knn'],
                    color=colors[name],
                    ls=':',
                    label=r['label'] if i == 0 else None)
            continue
        for i, run in enumerate(runs):
            curve = run.get('knn_curve') or []
            enc = 'teacher' if curve and 'teacher' in curve[0] \
                else 'student'
            ep = [0] + [c['epoch'] for c in curve]
            ax.plot(
                ep[1:], [100 * c[enc] for c in curve],
                '-o',
                ms=3,
                color=colors[name],
                alpha=0.9,
                label=f'{r["label"]} ({enc})' if i == 0 else None)
            if enc == 'teacher':
                ax.plot(
                    ep[1:], [100 * c['student'] for c in curve],
                    '--',
                    color=colors[name],
                    alpha=0.5,
                    lw=1)
    ax.set_xlabel('epoch')
    ax.set_ylabel('k-NN top-1 (%)')
    ax.set_title(
        'online k-NN (KNNMonitorHook); dashed: FOLK students, '
        'dotted: random init',
        fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax = axes[1]
    for name, r in results['variants'].items():
        for i, run in enumerate(r['seeds'].values()):
            c = run.get('curves') or {}
            if c.get('loss_distill'):
                ax.plot(
                    c['iter'],
                    c['loss_distill'],
                    color=colors[name],
                    label=r['label'] if i == 0 else None)
            if c.get('loss_freq') and any(c['loss_freq']):
                ax.plot(
                    c['iter'],
                    c['loss_freq'],
                    color=colors[name],
                    ls='--',
                    lw=1)
    ax.set_xlabel('iteration')
    ax.set_title('loss_distill (solid), loss_freq (dashed)', fontsize=9)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    ax = axes[2]
    names = list(results['variants'])
    width = 0.8 / max(1, len(names))
    for j, name in enumerate(names):
        s = results['variants'][name].get('summary', {})
        means = [100 * s[m]['mean'] if s.get(m) else 0 for m in METRICS]
        errs = [100 * s[m]['std'] if s.get(m) else 0 for m in METRICS]
        ax.bar(
            np.arange(len(METRICS)) + (j - (len(names) - 1) / 2) * width,
            means,
            width,
            yerr=errs,
            color=colors[name],
            capsize=2,
            label=results['variants'][name]['label'])
    ax.set_xticks(np.arange(len(METRICS)))
    ax.set_xticklabels([METRIC_NAMES[m] for m in METRICS])
    ax.set_ylabel('% (top-1 / mIoU)')
    ax.set_title('downstream (mean ± std over seeds)', fontsize=9)
    ax.grid(axis='y', alpha=0.3)
    fig.suptitle(f'Imagenette study, preset {results["preset"]}, '
                 f'{results["hardware"]["device"]}')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _poolings(results: dict) -> str:
    runs = [
        run for v in results['variants'].values()
        for run in v['seeds'].values()
    ]
    if any(run.get('knn_patch') is not None for run in runs):
        frozen = ('k-NN and linear probe read the [CLS] token and the mean '
                  'of the patch tokens (MFM-type variants never train the '
                  '[CLS] token); ')
    else:
        frozen = ('k-NN and linear probe read the [CLS] token (this run has '
                  'no patch-mean columns); ')
    return frozen + 'fine-tuning and segmentation use the patch tokens. '


def _configs(results: dict) -> str:
    configs = sorted(set(results.get('configs', {}).values()))
    return f' (configs: {", ".join(configs)})' if configs else ''


def markdown(results: dict) -> str:
    """The whole ``.md`` report."""
    p, hw, d = results['config'], results['hardware'], results['data']
    wall = results.get('wall_time_s')
    status = ('finished' if results.get('finished') else
              'PARTIAL (still running or interrupted)')
    text = (
        f'# Imagenette study, preset `{results["preset"]}`\n\n'
        f'Command: `{results["command"]}`\n\n'
        f'Status: {status}. Device: {hw["device"]}, {hw["threads"]} '
        f'thread(s), torch {hw["torch"]}. Wall time ' +
        (f'{wall / 60:.1f} min' if wall else '-') + '. '
        f'Backbone ViT {p["embed"]}-d, {p["layers"]} layers, '
        f'{p["heads"]} heads, patch {p["patch"]}, {p["img_size"]} px '
        f'(crops of {p["source_size"]} px images); pre-training '
        f'{p["epochs"]} epochs of {d["imagenette"]["train"]} images, batch '
        f'{p["batch"]}, lr {p["lr"]:g}, teacher momentum '
        f'{p["teacher_momentum"]:g} -> {p["teacher_momentum_end"]:g}, '
        f'{p["out_dim"]} prototypes, teacher temperature '
        f'{p["teacher_temp"]:g}' + _configs(results) +
        '. Accuracies: top-1 on '
        f'{d["imagenette"]["val"]} Imagenette val images; mIoU on '
        f'{d["camvid"]["val"]} CamVid val images; in %, mean ± std over '
        'seeds. FOLK-type variants are evaluated with the EMA teacher '
        '(k-NN of the student beside it), MFM-type ones with the student. ' +
        _poolings(results) +
        'Losses: mean of the last 10 % of the logged values.\n\n' +
        table(results) + '\n\nTargets (means):\n\n' +
        targets_markdown(check_targets(results)) + '\n')
    return text


DOCS_BEGIN = '<!-- study results {preset}: begin (run_study.py --docs) -->'
DOCS_END = '<!-- study results {preset}: end -->'


def update_docs(results: dict, path: str, stem: str) -> bool:
    """Replace the text between the preset's markers in ``path`` (e.g.
    ``docs/study.md``) by the report (table, targets, figure link).

    Returns:
        bool: False (file untouched) when the markers are absent.
    """
    begin = DOCS_BEGIN.format(preset=results['preset'])
    end = DOCS_END.format(preset=results['preset'])
    with open(path) as f:
        text = f.read()
    if begin not in text or end not in text:
        return False
    body = markdown(results).split('\n', 2)[2]  # without the title
    png = osp.relpath(stem + '.png', osp.dirname(osp.abspath(path)))
    block = f'{begin}\n{body}\n![study]({png})\n{end}'
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    with open(path, 'w') as f:
        f.write(head + block + tail)
    return True
