"""Imagenette study: every variant and seed with one command.

Pre-trains each variant from its config under ``configs/study/`` with
MMEngine's Runner (``pretrain.py``), then evaluates the exported
backbone with the same protocols for every variant (``knn.py``,
``linear.py``, ``finetune.py`` with 10 % and 100 % of the labels,
``segment.py`` on CamVid), and writes after every run (so a partial study
survives an interruption) ``<out-dir>/<prefix>.json`` (everything,
repository-relative paths), ``.md`` (table, targets, command) and ``.png``
(online k-NN vs epoch of every variant, losses, downstream bars).

Variants (``configs/study/<name>.py``): ``folk``, ``dino`` (the same
distillation on unfiltered views, no frequency loss), ``folk_nofreqloss``
(filtered student, distillation only), ``folk_nodistill`` (frequency loss
on FOLK's filtered views, no distillation), ``mfm`` and ``scratch``
(random initialisation). ``seeds`` seeds for ``folk`` and ``scratch``,
``seeds_single`` for the others.

Examples::

    # 2 CPU cores (see docs/study.md for the time)
    python benchmarks/study/run_study.py --preset cpu
    # a GPU (copy the packs first: mkdir -p data && cp
    #   ../shared/data/packs/{imagenette64,camvid240}.zip data/)
    python benchmarks/study/run_study.py --preset gpu
    # seconds (the tests)
    python benchmarks/study/run_study.py --preset smoke --out-dir /tmp/s
    # override config keys of every variant, or preset keys; redraw the
    # report of a finished run
    python benchmarks/study/run_study.py --preset cpu --set epochs=4 \\
        --cfg-options optim_wrapper.optimizer.lr=5e-4
    python benchmarks/study/run_study.py \\
        --replot benchmarks/results/imagenette_study_cpu.json
"""
import json
import os
import os.path as osp
import shlex
import sys
import time
from typing import List, Optional

import builders
import common
import report
from common import log
from finetune import few_indices, finetune
from knn import extract_features, knn_accuracy
from linear import linear_probe
from presets import METRICS, VARIANTS
from pretrain import pretrain
from segment import segmentation
from sources import REPO, load_camvid_preset, load_data
from study_configs import variant_config, variant_config_path, variant_filters

MULTI_SEED = ('folk', 'scratch')


def evaluate(backbones: dict, p: dict, data: dict, cam: dict, few: list,
             seed: int, device, tag: str, work_dir: str) -> dict:
    """Every protocol on the ``main`` backbone (k-NN also on ``student``).

    k-NN and linear probe read the [CLS] token (``knn``, ``linear``) and the
    mean patch token (``knn_patch``, ``linear_patch``); fine-tuning pools
    the patch tokens (``finetune.py``).
    """
    res, times = {}, {}
    t = time.perf_counter()
    feats = extract_features(backbones['main'], p, data, device)
    for pool, suffix in (('cls', ''), ('patch', '_patch')):
        res['knn' + suffix] = knn_accuracy(feats[pool], p)
        res['linear' + suffix] = linear_probe(feats[pool], p, seed)
    res['knn_student'] = None
    if 'student' in backbones:
        res['knn_student'] = knn_accuracy(
            extract_features(backbones['student'], p, data, device)['cls'], p)
    times['knn_linear'] = time.perf_counter() - t
    log(f'{tag}: k-NN {res["knn"]:.4f} / patch {res["knn_patch"]:.4f} '
        f'(student {res["knn_student"]}), linear {res["linear"]:.4f} / '
        f'patch {res["linear_patch"]:.4f}')
    res.update(ft10=None, ft100=None, miou=None)
    if p['evals'] == 'all':
        for key, idx, epochs in (('ft10', few, p['ft10_epochs']),
                                 ('ft100',
                                  list(range(len(data['train']['labels']))),
                                  p['ft100_epochs'])):
            t = time.perf_counter()
            res[key] = finetune(backbones['main'], p, data, idx, epochs, seed,
                                device, osp.join(work_dir, key))
            times[key] = time.perf_counter() - t
            log(f'{tag}: {key} {res[key]:.4f} ({times[key]:.0f}s)')
        t = time.perf_counter()
        res['miou'] = segmentation(backbones['main'], p, cam, seed, device,
                                   tag, osp.join(work_dir, 'camvid'))
        times['camvid'] = time.perf_counter() - t
        log(f'{tag}: CamVid mIoU {res["miou"]:.4f} ({times["camvid"]:.0f}s)')
    res['eval_time_s'] = times
    return res


def summarize_variant(entry: dict) -> None:
    runs = list(entry['seeds'].values())
    entry['summary'] = {
        key: common.summarize([r.get(key) for r in runs])
        for key in METRICS +
        ('knn_student', 'final_loss_freq', 'final_loss_distill',
         'final_teacher_entropy', 'pretrain_time_s', 'wall_time_s')
    }


def write_outputs(results: dict, stem: str, json_too: bool = True) -> None:
    """``stem``.md / .json / .png (the JSON atomically)."""
    results['targets'] = report.check_targets(results)
    with open(stem + '.md', 'w') as f:
        f.write(report.markdown(results))
    if json_too:
        common.write_json(results, stem + '.json')
    report.plot(results, stem + '.png')


def schedule(variants: List[str], p: dict) -> List[tuple]:
    """(seed, variant) runs: seed 0 of every variant first."""
    runs = []
    for seed in range(max(p['seeds'], p['seeds_single'])):
        for name in variants:
            n = p['seeds'] if name in MULTI_SEED else p['seeds_single']
            if seed < n:
                runs.append((seed, name))
    return runs


def main(argv: Optional[List[str]] = None) -> dict:
    parser = common.script_parser(__doc__, seed=False, cfg_options=True)
    parser.add_argument(
        '--variants',
        default=','.join([
            'scratch', 'folk', 'dino', 'folk_nofreqloss', 'folk_nodistill',
            'mfm'
        ]))
    parser.add_argument(
        '--seeds',
        type=int,
        default=None,
        help='seeds of every variant (default: the preset\'s '
        '"seeds" for folk and scratch, "seeds_single" for the '
        'others)')
    parser.add_argument(
        '--camvid', default='auto', help='camvid240.zip or a camvid folder')
    parser.add_argument(
        '--out-dir', default=osp.join(REPO, 'benchmarks', 'results'))
    parser.add_argument(
        '--prefix',
        default=None,
        help='output name (default imagenette_study_PRESET)')
    parser.add_argument(
        '--work-dir',
        default=None,
        help='runner folders (default work_dirs/study/PREFIX)')
    parser.add_argument(
        '--docs',
        default=None,
        metavar='MD',
        help='also write the table into this page between its '
        'study-result markers (e.g. docs/study.md)')
    parser.add_argument(
        '--replot',
        metavar='JSON',
        default=None,
        help='rewrite the .md and .png of a run from its JSON')
    args = parser.parse_args(argv)
    if args.replot:
        with open(args.replot) as f:
            results = json.load(f)
        stem = osp.splitext(args.replot)[0]
        write_outputs(results, stem, json_too=False)
        if args.docs and not report.update_docs(results, args.docs, stem):
            parser.error(f'no study result markers in {args.docs}')
        print(report.table(results))
        return results
    p, device = common.setup(parser, args)
    if args.seeds is not None:
        p['seeds'] = p['seeds_single'] = args.seeds
    variants = [v for v in args.variants.split(',') if v]
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        parser.error(f'unknown variants {bad}; choose from {list(VARIANTS)}')
    prefix = args.prefix or f'imagenette_study_{args.preset}'
    os.makedirs(args.out_dir, exist_ok=True)
    stem = osp.join(args.out_dir, prefix)
    work_dir = args.work_dir or osp.join(REPO, 'work_dirs', 'study', prefix)
    wall0 = time.perf_counter()
    hw = common.hardware(device)
    command = 'python ' + ' '.join(
        shlex.quote(a) for a in ([common.rel(__file__)] +
                                 (argv if argv is not None else sys.argv[1:])))
    log(f'preset {args.preset} on {hw["device"]} ({hw["threads"]} threads); '
        f'variants {variants}')

    t = time.perf_counter()
    data = load_data(p, args.data)
    cam = load_camvid_preset(p, args.camvid) if p['evals'] == 'all' else dict(
        source=None, train=dict(images=[]), val=dict(images=[]))
    few = few_indices(data, 0.1)
    data_time = time.perf_counter() - t
    log(f'data: Imagenette {len(data["train"]["labels"])} train / '
        f'{len(data["val"]["labels"])} val from {common.rel(data["source"])}'
        f', 10 % subset {len(few)}; CamVid {len(cam["train"]["images"])} / '
        f'{len(cam["val"]["images"])} ({data_time:.0f}s)')
    results = dict(
        preset=args.preset,
        command=command,
        config=p,
        variants_run=variants,
        variant_specs={k: dict(VARIANTS[k])
                       for k in variants},
        configs={k: common.rel(variant_config_path(k))
                 for k in variants},
        cfg_options=args.cfg_options,
        filters={
            k:
            variant_filters(variant_config(k, p['scale'], args.cfg_options))
            for k in variants if VARIANTS[k]['algo']
        },
        hardware=hw,
        data=dict(
            imagenette=dict(
                source=common.rel(data['source']),
                size=p['source_size'],
                train=len(data['train']['labels']),
                val=len(data['val']['labels']),
                fewshot10=len(few)),
            camvid=dict(
                source=(common.rel(cam['source']) if cam['source'] else None),
                size=list(p['seg_size']),
                train=len(cam['train']['images']),
                val=len(cam['val']['images'])),
            decode_time_s=data_time),
        variants={
            k: dict(label=VARIANTS[k]['label'], seeds={})
            for k in variants
        },
        started=time.strftime('%Y-%m-%d %H:%M:%S'),
        finished=None)
    for seed, name in schedule(variants, p):
        tag = f'{name} s{seed}'
        t = time.perf_counter()
        run_dir = osp.join(work_dir, f'{name}_s{seed}')
        if VARIANTS[name]['algo'] is None:
            run = dict(
                pretrain_time_s=0.0,
                final_loss_freq=None,
                final_loss_distill=None,
                curves={},
                knn_curve=[],
                weights='random')
            backbones = dict(main=builders.random_backbone(p, seed))
        else:
            run, backbones = pretrain(name, p, data, seed, device,
                                      osp.join(run_dir, 'pretrain'),
                                      args.cfg_options)
            log(f'{tag}: pre-trained in {run["pretrain_time_s"]:.0f}s; '
                'online k-NN ' +
                ', '.join(f'{c["epoch"]:.0f}: ' +
                          '/'.join(f'{100 * c[e]:.1f}'
                                   for e in ('teacher', 'student') if e in c)
                          for c in run['knn_curve']))
        run.update(
            evaluate(backbones, p, data, cam, few, seed, device, tag, run_dir))
        run['wall_time_s'] = time.perf_counter() - t
        entry = results['variants'][name]
        entry['seeds'][str(seed)] = run
        summarize_variant(entry)
        results['wall_time_s'] = time.perf_counter() - wall0
        write_outputs(results, stem)
        log(f'{tag} done in {run["wall_time_s"]:.0f}s: ' +
            ', '.join(f'{m} {run[m]:.4f}'
                      for m in METRICS if run[m] is not None) +
            f' (total {results["wall_time_s"] / 60:.1f} min)')
    results['wall_time_s'] = time.perf_counter() - wall0
    results['finished'] = time.strftime('%Y-%m-%d %H:%M:%S')
    write_outputs(results, stem)
    if args.docs:
        report.update_docs(results, args.docs, stem)
    print(
        '\n' + report.table(results) + '\n\n' +
        report.targets_markdown(results['targets']),
        flush=True)
    log(f'wrote {common.rel(stem)}.{{md,json,png}} (wall time '
        f'{results["wall_time_s"] / 60:.1f} min)')
    return results


if __name__ == '__main__':
    main()
