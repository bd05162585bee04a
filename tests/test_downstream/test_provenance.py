"""Provenance of downstream weights: read back from converted files."""
import torch
from downstream_utils import convert_tiny

from folk.downstream.provenance import describe, read_provenance


def test_folk_teacher_and_student(repo_root, tmp_path):
    for weights in ('teacher', 'student'):
        path = convert_tiny(repo_root, str(tmp_path), 'mmseg', weights)
        info = read_provenance(path)
        assert info['pretrained'] == path
        assert info['source'] == 'folk_iter_2.pth'
        assert (info['method'], info['weights']) == ('FOLK', weights)
        assert (info['arch'], info['format']) == ('vit', 'mmseg')
        assert (info['pretrain_epoch'], info['pretrain_iter']) == (0, 2)
        assert describe(info) == (
            f'FOLK {weights} weights of folk_iter_2.pth (epoch 0, iter 2) '
            f'via {path}')


def test_file_not_written_by_the_converters(tmp_path):
    path = str(tmp_path / 'other.pth')
    torch.save(dict(state_dict={'backbone.w': torch.zeros(1)}), path)
    info = read_provenance(path)
    assert info == dict(pretrained=path, weights='unknown')
    assert 'source and teacher / student unknown' in describe(info)
