"""KNNEvaluator: 2 processes (gloo) give the features and score of 1."""
import os
import os.path as osp
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=36, edge='short'),
    dict(type='CenterCrop', crop_size=32),
    dict(type='PackInputs')
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _evaluate(data_root, bank_ann, query_ann):
    """Features of both splits and the score of the tiny FOLK teacher."""
    from functools import partial

    from _tiny import build

    from folk.evaluation import KNNEvaluator
    model = build().eval()
    evaluator = KNNEvaluator(
        bank=dict(
            type='CustomDataset',
            data_root=data_root,
            ann_file=bank_ann,
            data_prefix=''),
        query=dict(
            type='CustomDataset',
            data_root=data_root,
            ann_file=query_ann,
            data_prefix=''),
        pipeline=PIPELINE,
        k=5,
        batch_size=3,
        num_workers=0)
    backbone = model.teacher.module.backbone
    pre = partial(model.data_preprocessor, training=False)
    out = dict(evaluator.evaluate(backbone, pre))
    out['bank'] = evaluator.extract(backbone, pre, 'bank')
    out['query'] = evaluator.extract(backbone, pre, 'query')
    return out


def _worker(rank, world, port, out_dir, args):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=world)
    from mmengine.registry import DefaultScope

    import folk  # noqa: F401
    DefaultScope.get_instance('knn_dist', scope_name='mmpretrain')
    result = _evaluate(*args)
    torch.save(result, osp.join(out_dir, f'rank{rank}.pt'))
    dist.destroy_process_group()


def _annotations(tmp_path, imagenette_root, split, step, count):
    """``count`` lines of ``split``.txt, every ``step``-th (many classes)."""
    with open(osp.join(imagenette_root, f'{split}.txt')) as f:
        lines = [line for line in f if line.strip()][::step][:count]
    path = tmp_path / f'{split}_subset.txt'
    path.write_text(''.join(lines))
    return str(path)


def test_two_processes_give_the_single_process_score(tmp_path,
                                                     imagenette_root):
    # odd sizes: the sampler pads one rank, the padding must be dropped
    args = (str(imagenette_root),
            _annotations(tmp_path, imagenette_root, 'train', 900, 11),
            _annotations(tmp_path, imagenette_root, 'val', 500, 7))
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path), args), nprocs=2)
    torch.set_num_threads(1)
    single = _evaluate(*args)
    assert (single['num_bank'], single['num_query']) == (11, 7)
    labels = single['bank'][1]
    assert len(set(labels.tolist())) >= 5  # several classes in the bank
    for rank in (0, 1):
        result = torch.load(tmp_path / f'rank{rank}.pt')
        assert result['top1'] == single['top1']
        assert (result['num_bank'], result['num_query']) == (11, 7)
        for split in ('bank', 'query'):
            feats, labels = result[split]
            torch.testing.assert_close(
                feats, single[split][0], rtol=1e-5, atol=1e-5)
            assert torch.equal(labels, single[split][1])


def _same_split_evaluator(tmp_path, imagenette_root, step, count, **kw):
    """A KNNEvaluator whose bank and query are the same ``count`` val
    images (every ``step``-th)."""
    from folk.evaluation import KNNEvaluator
    ann = _annotations(tmp_path, imagenette_root, 'val', step, count)
    data = dict(
        type='CustomDataset',
        data_root=str(imagenette_root),
        ann_file=ann,
        data_prefix='')
    return KNNEvaluator(
        bank=data, query=data, pipeline=PIPELINE, num_workers=0, **kw)


def test_bf16_autocast_features_are_float32_and_close(tmp_path,
                                                      imagenette_root):
    from functools import partial

    from _tiny import build

    evaluator = _same_split_evaluator(
        tmp_path, imagenette_root, 700, 5, k=3, batch_size=5)
    model = build().eval()
    pre = partial(model.data_preprocessor, training=False)
    ref, labels = evaluator.extract(model.backbone, pre, 'bank')
    bf16 = partial(torch.autocast, 'cpu', dtype=torch.bfloat16)
    feats, labels16 = evaluator.extract(model.backbone, pre, 'bank', bf16)
    assert feats.dtype == torch.float32 and torch.equal(labels, labels16)
    assert not torch.equal(feats, ref)  # it did run in bf16
    cos = torch.nn.functional.cosine_similarity(feats, ref, dim=1)
    assert cos.min() > 0.99


def test_subsets_do_not_copy_through_mmengine_shared_memo(
        tmp_path, imagenette_root, monkeypatch):
    # mmengine's get_subset copies through a memo shared by every call and
    # keyed by id(): a freed object's address reused by a new one returns
    # the stale copy (a flaky "'ArrayDataset' object is not callable" in a
    # k-NN bank). The evaluator must take its subsets without that copy.
    from mmengine.dataset import BaseDataset

    def shared_memo_copy(self, memo=None):
        raise AssertionError('copied through the shared memo')

    monkeypatch.setattr(BaseDataset, '_copy_without_annotation',
                        shared_memo_copy)
    evaluator = _same_split_evaluator(
        tmp_path,
        imagenette_root,
        100,
        30,
        bank_per_class=2,
        query_per_class=1,
        batch_size=4)
    num_bank, num_query = evaluator.sizes()
    labels = evaluator._loaders['bank'].dataset.get_gt_labels()
    classes = set(labels.tolist())
    assert evaluator.num_classes >= 5
    assert num_bank == len(labels) == 2 * len(classes)
    assert num_query == len(classes)
    assert all((labels == c).sum() == 2 for c in classes)
