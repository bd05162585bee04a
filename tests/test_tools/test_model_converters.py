"""FOLK/MFM -> MMPretrain / MMSeg / timm converters (folk.downstream)."""
import os
import os.path as osp

import pytest
import torch
from downstream_utils import (IMG, build_pretrain_model, mmpretrain_vit,
                              mmseg_vit, save_pretrain_checkpoint)
from mmengine.registry import DefaultScope

from folk.downstream import (NotAPretrainCheckpointError, check_loaded_keys,
                             check_weights_equal, cli_main, convert_checkpoint)
from folk.engine.checkpoint import safe_torch_load


@pytest.fixture(scope='module')
def folk_model(repo_root):
    return build_pretrain_model(repo_root, 'folk')


@pytest.fixture(scope='module')
def folk_ckpt(folk_model, tmp_path_factory):
    path = tmp_path_factory.mktemp('folk') / 'iter_2.pth'
    return save_pretrain_checkpoint(folk_model, str(path))


@pytest.fixture(scope='module')
def mfm_model(repo_root):
    return build_pretrain_model(repo_root, 'mfm', seed=1)


@pytest.fixture(scope='module')
def mfm_ckpt(mfm_model, tmp_path_factory):
    path = tmp_path_factory.mktemp('mfm') / 'iter_2.pth'
    return save_pretrain_checkpoint(mfm_model, str(path))


@pytest.fixture(scope='module')
def images():
    torch.manual_seed(0)
    return torch.randn(2, 3, IMG, IMG)


def _load_mmpretrain(path, **kwargs):
    """MMPretrain ViT loaded the way a fine-tune config does (init_cfg)."""
    vit = mmpretrain_vit(
        init_cfg=dict(type='Pretrained', checkpoint=path, prefix='backbone.'),
        **kwargs)
    vit.init_weights()
    result = check_loaded_keys(vit, safe_torch_load(path), prefix='backbone.')
    assert not result.missing and not result.unexpected, result
    vit.eval()
    return vit


@torch.no_grad()
@pytest.mark.parametrize('weights', [None, 'teacher', 'student'])
def test_mmpretrain_same_features(folk_model, folk_ckpt, images, tmp_path,
                                  weights):
    out = str(tmp_path / 'cls.pth')
    report = convert_checkpoint(folk_ckpt, out, 'mmpretrain', weights)
    assert report.weights == (weights or 'teacher')  # teacher by default
    ckpt = safe_torch_load(out)
    assert set(ckpt) == {'state_dict', 'meta'}
    assert all(k.startswith('backbone.') for k in ckpt['state_dict'])
    assert ckpt['meta']['folk_converter']['weights'] == report.weights

    vit = _load_mmpretrain(out)
    teacher = folk_model.teacher.module.backbone
    student = folk_model.backbone
    ref, other = (student, teacher) if weights == 'student' else \
        (teacher, student)
    feat = vit(images)[-1]
    torch.testing.assert_close(feat, ref(images)[-1], rtol=0, atol=1e-6)
    assert not torch.allclose(feat, other(images)[-1], atol=1e-3)


def test_mmpretrain_classifier_loads(folk_ckpt, tmp_path):
    """init_cfg prefix loading into an ImageClassifier, avg_featmap head."""
    from mmpretrain.registry import MODELS
    out = str(tmp_path / 'cls.pth')
    convert_checkpoint(folk_ckpt, out, 'mmpretrain')
    cfg = dict(
        type='ImageClassifier',
        backbone=dict(
            type='VisionTransformer',
            arch=dict(
                embed_dims=192,
                num_layers=4,
                num_heads=3,
                feedforward_channels=768),
            img_size=96,  # pos_embed is resized on load
            patch_size=8,
            out_type='avg_featmap',
            final_norm=False,
            init_cfg=dict(
                type='Pretrained', checkpoint=out, prefix='backbone.')),
        head=dict(type='LinearClsHead', num_classes=10, in_channels=192))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg)
    model.init_weights()
    sd = safe_torch_load(out)
    result = check_loaded_keys(
        model.backbone, sd, prefix='backbone.', allow_missing=('ln2.', ))
    assert result.resized == ['pos_embed']
    assert result.allowed_missing == ['ln2.weight', 'ln2.bias']
    assert result.unexpected == ['ln1.weight', 'ln1.bias']  # final_norm off
    assert check_weights_equal(model.backbone, sd, prefix='backbone.') == []
    with pytest.raises(KeyError, match='ln2.weight'):
        check_loaded_keys(model.backbone, sd, prefix='backbone.')


@torch.no_grad()
def test_timm_same_features(folk_model, folk_ckpt, images, tmp_path):
    from timm.models.vision_transformer import VisionTransformer
    out = str(tmp_path / 'timm.pth')
    convert_checkpoint(folk_ckpt, out, 'timm')
    sd = safe_torch_load(out)
    vit = VisionTransformer(
        img_size=IMG,
        patch_size=8,
        embed_dim=192,
        depth=4,
        num_heads=3,
        mlp_ratio=4,
        num_classes=0).eval()
    vit.load_state_dict(sd, strict=True)
    assert check_loaded_keys(vit, sd).ok
    ref = folk_model.teacher.module.backbone(images)[-1]  # (B, 1 + N, C)
    torch.testing.assert_close(
        vit.forward_features(images), ref, rtol=0, atol=1e-5)


def test_timm_vit_patch16_224_strict(tmp_path):
    """Key names fit timm's ``vit_small_patch16_224`` (deit-small arch)."""
    import timm
    from mmpretrain.models import VisionTransformer
    backbone = VisionTransformer(arch='deit-small', out_type='raw')
    sd = {'backbone.' + k: v for k, v in backbone.state_dict().items()}
    sd['neck.decoder.0.weight'] = torch.zeros(1)
    src, out = str(tmp_path / 'mfm.pth'), str(tmp_path / 'timm.pth')
    torch.save(dict(state_dict=sd, meta={}), src)
    convert_checkpoint(src, out, 'timm')
    model = timm.create_model(
        'vit_small_patch16_224', pretrained=False, num_classes=0)
    model.load_state_dict(safe_torch_load(out), strict=True)


@torch.no_grad()
def test_mmseg_same_feature_maps(folk_model, folk_ckpt, images, tmp_path):
    out = str(tmp_path / 'seg.pth')
    convert_checkpoint(folk_ckpt, out, 'mmseg')
    seg = mmseg_vit(out_indices=(1, 3), final_norm=True, pretrained=out)
    seg.init_weights()
    sd = safe_torch_load(out)
    result = check_loaded_keys(seg, sd)
    assert result.ok and not result.unexpected, result
    seg.eval()

    ref = mmpretrain_vit(out_type='featmap', out_indices=(1, 3))
    ref.load_state_dict(folk_model.teacher.module.backbone.state_dict())
    for mine, theirs in zip(seg(images), ref(images)):
        assert mine.shape == (2, 192, IMG // 8, IMG // 8)
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-5)


def test_mmseg_hides_wrong_keys_check_catches_them(folk_ckpt, tmp_path):
    """MMSeg's ViT loads non-strictly: a wrong format passes silently."""
    out = str(tmp_path / 'cls.pth')
    convert_checkpoint(folk_ckpt, out, 'mmpretrain')  # wrong format
    seg = mmseg_vit(pretrained=out)
    seg.init_weights()  # no error
    with pytest.raises(KeyError, match='missing'):
        check_loaded_keys(seg, safe_torch_load(out))


def test_student_teacher_flag_cli(folk_model, folk_ckpt, tmp_path, capsys):
    paths = {}
    for weights in ('student', 'teacher'):
        paths[weights] = str(tmp_path / f'{weights}.pth')
        assert cli_main('mmseg',
                        [folk_ckpt, paths[weights], '--weights', weights]) == 0
    printed = capsys.readouterr().out
    assert 'from backbone.* (student weights)' in printed
    assert 'from teacher.module.backbone.* (teacher weights)' in printed
    for weights, module in (('student', folk_model.backbone),
                            ('teacher', folk_model.teacher.module.backbone)):
        sd = safe_torch_load(paths[weights])['state_dict']
        torch.testing.assert_close(sd['patch_embed.projection.weight'],
                                   module.patch_embed.projection.weight)
        torch.testing.assert_close(sd['layers.2.attn.attn.in_proj_weight'],
                                   module.layers[2].attn.qkv.weight)


def test_report_lists_dropped_prefixes(folk_model, folk_ckpt, tmp_path,
                                       capsys):
    assert cli_main('mmpretrain', [folk_ckpt, str(tmp_path / 'o.pth')]) == 0
    printed = capsys.readouterr().out
    keys = list(folk_model.state_dict())

    def count(prefix):
        return sum(k.startswith(prefix) for k in keys)

    assert count('backbone.') == 54  # tiny ViT: 4 layers x 12 + 6
    assert 'kept 54 keys from teacher.module.backbone.*' in printed
    for prefix in ('backbone.', 'neck.decoder.', 'projector.',
                   'teacher.module.projector.', 'distill_head.'):
        assert count(prefix) > 0
        assert f'  {prefix}*: {count(prefix)}' in printed, printed
    assert '  teacher.steps*: 1' in printed
    assert f'dropped {len(keys) - 54} keys' in printed
    # written atomically: no temporary file left next to the output
    assert sorted(os.listdir(tmp_path)) == ['o.pth']


@torch.no_grad()
def test_mfm_checkpoint(mfm_model, mfm_ckpt, images, tmp_path, capsys):
    out = str(tmp_path / 'cls.pth')
    assert cli_main('mmpretrain', [mfm_ckpt, out]) == 0
    printed = capsys.readouterr().out
    assert 'MFM checkpoint' in printed
    assert 'from backbone.* (student weights)' in printed
    assert 'neck.decoder.*: 2' in printed
    vit = _load_mmpretrain(out)
    torch.testing.assert_close(
        vit(images)[-1], mfm_model.backbone(images)[-1], rtol=0, atol=1e-6)

    with pytest.raises(SystemExit) as exc:
        cli_main('timm',
                 [mfm_ckpt,
                  str(tmp_path / 't.pth'), '--weights', 'teacher'])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert 'MFM checkpoint' in err and 'no EMA teacher' in err
    assert not osp.exists(tmp_path / 't.pth')


@pytest.mark.parametrize('kind', ['converted', 'classifier', 'tensor'])
def test_non_folk_file_refused(folk_ckpt, tmp_path, capsys, kind):
    bad = str(tmp_path / f'{kind}.pth')
    if kind == 'converted':
        convert_checkpoint(folk_ckpt, bad, 'mmpretrain')
    elif kind == 'classifier':
        torch.save(
            dict(state_dict={
                'backbone.w': torch.zeros(1),
                'head.fc.weight': torch.zeros(1)
            }), bad)
    else:
        torch.save(torch.zeros(3), bad)
    with pytest.raises(NotAPretrainCheckpointError, match=bad):
        convert_checkpoint(bad, str(tmp_path / 'out.pth'), 'timm')
    with pytest.raises(SystemExit) as exc:
        cli_main('mmseg', [bad, str(tmp_path / 'out.pth')])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert bad in err and 'not a FOLK/MFM pre-training checkpoint' in err
    assert not osp.exists(tmp_path / 'out.pth')


def test_missing_file_refused(tmp_path, capsys):
    missing = str(tmp_path / 'nope.pth')
    with pytest.raises(SystemExit):
        cli_main('timm', [missing, str(tmp_path / 'out.pth')])
    assert missing in capsys.readouterr().err


@torch.no_grad()
def test_resnet_mfm_to_timm_and_mmseg(tmp_path):
    """MFM ResNet checkpoints: identical keys in timm's / MMSeg's ResNet."""
    import timm
    from mmpretrain.models import ResNet
    from mmseg.models.backbones import ResNet as SegResNet
    torch.manual_seed(0)
    backbone = ResNet(depth=18, out_indices=(3, ))
    backbone.init_weights()
    backbone.eval()
    sd = {'backbone.' + k: v for k, v in backbone.state_dict().items()}
    sd['neck.decoder.0.weight'] = torch.zeros(1)
    src = str(tmp_path / 'mfm_r18.pth')
    torch.save(dict(state_dict=sd, meta={}), src)
    x = torch.randn(1, 3, 64, 64)

    convert_checkpoint(src, str(tmp_path / 'timm.pth'), 'timm')
    model = timm.create_model(
        'resnet18', pretrained=False, num_classes=0).eval()
    model.load_state_dict(safe_torch_load(str(tmp_path / 'timm.pth')))
    torch.testing.assert_close(
        model.forward_features(x), backbone(x)[-1], rtol=0, atol=1e-5)

    convert_checkpoint(src, str(tmp_path / 'seg.pth'), 'mmseg')
    seg = SegResNet(depth=18, out_indices=(3, ))
    seg.eval()
    seg_sd = safe_torch_load(str(tmp_path / 'seg.pth'))
    assert check_loaded_keys(seg, seg_sd).ok
    seg.load_state_dict(seg_sd['state_dict'])
    torch.testing.assert_close(seg(x)[-1], backbone(x)[-1], rtol=0, atol=1e-5)


def test_safe_load_allows_only_history_buffer_getattr(tmp_path):
    """Runner checkpoints pickle ``getattr(HistoryBuffer, 'min')`` (message
    hub); any other ``getattr`` stays refused by weights_only loading."""
    from collections import OrderedDict

    from mmengine.logging import HistoryBuffer

    class Evil:

        def __reduce__(self):
            return getattr, (OrderedDict, 'fromkeys')

    good, bad = str(tmp_path / 'good.pth'), str(tmp_path / 'bad.pth')
    buffer = HistoryBuffer()
    buffer.update(0.5)
    torch.save(dict(message_hub=dict(loss=buffer)), good)
    hub = safe_torch_load(good)['message_hub']['loss']
    assert isinstance(hub, HistoryBuffer)
    torch.save(dict(x=Evil()), bad)
    with pytest.raises(RuntimeError, match='bad.pth'):
        safe_torch_load(bad)


def _flip_tensor_bytes(path):
    """Change 4 bytes inside the largest tensor record of a zip checkpoint
    (the zip stays readable: only the CRC check can tell)."""
    import zipfile
    with zipfile.ZipFile(path) as archive:
        info = max(archive.infolist(), key=lambda i: i.file_size)
    with open(path, 'rb') as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = (int.from_bytes(f.read(2), 'little'),
                               int.from_bytes(f.read(2), 'little'))
    offset = info.header_offset + 30 + name_len + extra_len + 16
    data = bytearray(open(path, 'rb').read())
    data[offset:offset + 4] = b'\x00\x00\x80\x7f'  # float32 +inf
    open(path, 'wb').write(bytes(data))


def test_output_equal_to_input_refused(folk_ckpt, tmp_path, capsys):
    """Fault 62: output = input replaced the pre-training checkpoint."""
    src = tmp_path / 'iter_2.pth'
    src.write_bytes(open(folk_ckpt, 'rb').read())
    before = src.read_bytes()
    link = tmp_path / 'link.pth'
    link.symlink_to(src)
    for dst in (src, tmp_path / '.' / 'iter_2.pth', link):
        with pytest.raises(SystemExit) as exc:
            cli_main('mmpretrain', [str(src), str(dst)])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert 'is the input checkpoint' in err and str(src) in err
    assert src.read_bytes() == before


def test_damaged_source_refused(folk_ckpt, tmp_path, capsys):
    """Fault 61: an inf written into a teacher weight (CRC mismatch) was
    converted and exported with exit 0."""
    src = str(tmp_path / 'flipped.pth')
    open(src, 'wb').write(open(folk_ckpt, 'rb').read())
    _flip_tensor_bytes(src)
    out = str(tmp_path / 'out.pth')
    with pytest.raises(SystemExit) as exc:
        cli_main('mmpretrain', [src, out])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert src in err and 'CRC mismatch' in err
    assert not osp.exists(out)


def test_last_checkpoint_pointer_names_its_file(folk_ckpt, tmp_path, capsys):
    """`last_checkpoint` passed as the source: say it is a pointer and name
    the checkpoint it points to (it gave an UnpicklingError)."""
    pointer = tmp_path / 'last_checkpoint'
    pointer.write_text(folk_ckpt)
    with pytest.raises(SystemExit) as exc:
        cli_main('timm', [str(pointer), str(tmp_path / 'out.pth')])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert str(pointer) in err and 'last_checkpoint' in err
    assert f'pass the checkpoint it names, {folk_ckpt}' in err
    assert 'Unpickl' not in err


@pytest.mark.parametrize('kind', ['random', 'pickle'])
def test_refusals_do_not_repeat_torch_advice(tmp_path, capsys, kind):
    """Fault 29 / 60: refusals quoted torch's 'weights_only=False will
    likely succeed' or 'Please file an issue' lines."""
    bad = str(tmp_path / f'{kind}.pth')
    if kind == 'random':
        open(bad, 'wb').write(bytes(range(256)) * 64)
    else:

        class Payload:

            def __reduce__(self):
                return (os.system, ('true', ))

        torch.save({'state_dict': {}, 'meta': Payload()}, bad)
    with pytest.raises(SystemExit):
        cli_main('timm', [bad, str(tmp_path / 'out.pth')])
    err = capsys.readouterr().err
    assert bad in err
    assert 'will likely succeed' not in err and 'file an issue' not in err
    if kind == 'random':
        assert 'not a PyTorch checkpoint' in err
    else:
        assert 'unsupported GLOBAL posix.system' in err
