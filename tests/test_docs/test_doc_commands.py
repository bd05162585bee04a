"""The README's and the docs' commands use paths that exist or are made.

The pages are read as a reader runs them (see ``doc_checks``); the unit
tests below show that the checker rejects each kind of mistake it is meant
to catch, next to the correct command that it accepts.
"""
import os.path as osp

import pytest
from doc_checks import (REPO, check_commands, check_inline_code, doc_pages,
                        shell_commands)

PAGES = doc_pages()
TRAIN = 'bash tools/dist_train.sh configs/folk_vit-b.py 8\n'
CONVERT = ('python tools/model_converters/folk_to_mmpretrain.py {src} '
           'work_dirs/folk_pretrain/vit-b_mmpretrain.pth\n')
FINETUNE_CFG = ('configs/benchmarks/classification/'
                'vit-base-p16_folk-pre_8xb128-amp-coslr-100e_in1k.py')


def problems(commands: str, lang: str = 'bash'):
    page = f'# Page\n\nText.\n\n```{lang}\n{commands}```\n'
    return check_commands('docs/fake.md', text=page)


@pytest.mark.parametrize('page', PAGES)
def test_page_commands_use_existing_or_produced_paths(page):
    assert check_commands(page) == []


@pytest.mark.parametrize('page', PAGES)
def test_page_inline_scripts_and_tests_exist(page):
    assert check_inline_code(page) == []


def test_readme_commands_are_in_the_docs():
    """The README is a front door: each of its commands is also in docs/."""
    with open(osp.join(REPO, 'README.md'), encoding='utf-8') as f:
        readme = shell_commands(f.read())
    docs = set()
    for page in PAGES[1:]:
        with open(osp.join(REPO, page), encoding='utf-8') as f:
            docs.update(shell_commands(f.read()))
    assert readme, 'no shell commands found in README.md'
    assert [c for c in readme if c not in docs] == []


# ------------------------------------------------- the checker's own tests
def test_headline_checkpoint_after_its_training_is_accepted():
    assert problems(TRAIN + CONVERT.format(
        src='work_dirs/folk_vit-b/epoch_300.pth')) == []
    assert problems(TRAIN + CONVERT.format(
        src='work_dirs/folk_vit-b/last_checkpoint')) == []


def test_checkpoint_of_another_work_dir_is_rejected():
    # the README's old example: the fully named config's work dir, while
    # the page trains configs/folk_vit-b.py (work dir work_dirs/folk_vit-b)
    wrong = ('work_dirs/folk_vit-base-p16_8xb128-amp-coslr-300e_in1k/'
             'epoch_300.pth')
    found = problems(TRAIN + CONVERT.format(src=wrong))
    assert len(found) == 1
    assert 'docs/fake.md:7' in found[0] and wrong in found[0]
    assert 'not written by an earlier command' in found[0]


def test_checkpoint_before_its_training_is_rejected():
    found = problems(
        CONVERT.format(src='work_dirs/folk_vit-b/epoch_300.pth') + TRAIN)
    assert len(found) == 1 and 'not written by an earlier' in found[0]


@pytest.mark.parametrize(
    'name', ['epoch_301.pth', 'epoch_100.pth', 'iter_300.pth', 'latest.pth'])
def test_checkpoint_the_config_does_not_leave_is_rejected(name):
    # 300 epochs, a checkpoint every epoch, the newest 3 kept
    found = problems(TRAIN +
                     CONVERT.format(src=f'work_dirs/folk_vit-b/{name}'))
    assert len(found) == 1
    assert "leaves only ['epoch_298.pth', 'epoch_299.pth', 'epoch_300.pth']" \
        in found[0]


def test_work_dir_option_and_iteration_checkpoints():
    demo = 'configs/demo/folk_vit-tiny-p8_1xb32-200i_imagenette128.py'
    train = f'W=work_dirs/demo\npython tools/train.py {demo} ' \
            '--work-dir $W/pretrain\n'
    assert problems(train + CONVERT.format(src='$W/pretrain/iter_200.pth')) \
        == []
    found = problems(train + CONVERT.format(src='$W/iter_200.pth'))
    assert len(found) == 1 and 'work_dirs/demo/iter_200.pth' in found[0]
    # cfg-options that change the schedule change the checkpoint names
    short = f'python tools/train.py {demo} --work-dir $W/pretrain ' \
            '--cfg-options train_cfg.max_iters=100\n'
    assert problems('W=work_dirs/demo\n' + short +
                    CONVERT.format(src='$W/pretrain/iter_100.pth')) == []
    assert len(
        problems('W=work_dirs/demo\n' + short +
                 CONVERT.format(src='$W/pretrain/iter_200.pth'))) == 1


def test_missing_shipped_files_are_rejected():
    found = problems(
        'python tools/train.py configs/folk_vit-l.py\n'
        'python projects/folk/tools/nope.py configs/folk_vit-b.py\n'
        'bash tools/dist_train.sh configs/folk_vit-b.py 8\n')
    assert len(found) == 2
    assert 'configs/folk_vit-l.py is neither shipped' in found[0]
    assert 'projects/folk/tools/nope.py is neither shipped' in found[1]


def test_continuation_lines_and_comments():
    found = problems('python tools/train.py \\\n'
                     '    configs/nope.py  # configs/also_nope.py\n')
    assert len(found) == 1
    assert found[0].startswith('docs/fake.md:6: configs/nope.py')


def test_external_data_and_produced_outputs():
    assert problems(
        'python tools/make_fewshot_split.py data/imagenet/meta/train.txt '
        'data/imagenet/meta/train_1pct.txt --ratio 0.01 --seed 0\n'
        'python tools/make_fewshot_split.py '
        '../shared/data/imagenette128/train.txt /tmp/split.txt --ratio 0.1\n'
        'wc -l /tmp/split.txt\n') == []
    assert len(problems('wc -l /tmp/split.txt\n')) == 1


def test_redirection_and_venv_outputs():
    assert problems('python -m venv .venv && source .venv/bin/activate\n'
                    "grep -v '^mmcv-lite' requirements.txt > /tmp/req.txt && "
                    'pip install -r /tmp/req.txt\n') == []
    found = problems('source .venv/bin/activate\n')
    assert len(found) == 1 and '.venv/bin/activate' in found[0]


def test_undefined_variable_is_rejected():
    found = problems('python tools/train.py $CFG\n')
    assert found == [
        'docs/fake.md:6: undefined shell variable $CFG in '
        "'$CFG'"
    ]


def test_converter_needs_a_pretraining_checkpoint():
    ft = f'bash tools/dist_train.sh {FINETUNE_CFG} 8\n'
    src = ('work_dirs/vit-base-p16_folk-pre_8xb128-amp-coslr-100e_in1k/'
           'epoch_100.pth')
    found = problems(ft + CONVERT.format(src=src))
    assert len(found) == 1
    assert 'converts pre-training checkpoints' in found[0]
    assert 'ImageClassifier' in found[0]


def test_weights_option_needs_the_right_format():
    convert = (
        TRAIN + 'CKPT=work_dirs/folk_vit-b/epoch_300.pth\n'
        'python tools/model_converters/folk_to_mmpretrain.py $CKPT '
        'work_dirs/p/cls.pth\n'
        'python tools/model_converters/folk_to_mmseg.py $CKPT '
        'work_dirs/p/seg.pth\n')
    good = (f'bash tools/dist_train.sh {FINETUNE_CFG} 8 --cfg-options '
            'model.backbone.init_cfg.checkpoint=work_dirs/p/cls.pth\n')
    assert problems(convert + good) == []
    found = problems(convert + good.replace('cls.pth', 'seg.pth'))
    assert len(found) == 1
    assert ('model.backbone.init_cfg.checkpoint needs a mmpretrain '
            'checkpoint') in found[0]


def test_test_command_needs_a_checkpoint_of_its_config():
    ft = f'bash tools/dist_train.sh {FINETUNE_CFG} 8\n'
    ckpt = ('work_dirs/vit-base-p16_folk-pre_8xb128-amp-coslr-100e_in1k/'
            'epoch_100.pth')
    test = f'bash tools/dist_test.sh {FINETUNE_CFG} {ckpt} 8\n'
    assert problems(ft + test) == []
    found = problems(TRAIN + ft + 'bash tools/dist_test.sh '
                     f'{FINETUNE_CFG} work_dirs/folk_vit-b/epoch_300.pth 8\n')
    assert len(found) == 1 and 'was trained with configs/folk_vit-b.py' \
        in found[0]


def test_make_targets_and_mim_libraries():
    assert problems('make demo\nmake test\n') == []
    found = problems('make demo\nmake benchmark\n')
    assert found == [
        "docs/fake.md:7: make target 'benchmark' is not a rule "
        'of the Makefile'
    ]
    found = problems(f'mim train mmsegmentation {FINETUNE_CFG} --gpus 8\n')
    assert len(found) == 1 and "default_scope 'mmpretrain'" in found[0]


def test_only_shell_blocks_are_read():
    assert problems(
        'python tools/train.py configs/nope.py\n', lang='python') == []
    assert problems('python tools/train.py configs/nope.py\n', lang='') == []
    assert len(
        problems('python tools/train.py configs/nope.py\n', lang='shell')) == 1


def test_inline_code_names_existing_scripts_and_tests():
    me = 'tests/test_docs/test_doc_commands.py'
    text = (f'Run `python benchmarks/pretrain_cost.py --batch 4` or\n'
            f'`bash tools/dist_train.sh configs/folk_vit-b.py 8`; tested by\n'
            f'`{me}::test_inline_code_names_existing_scripts_and_tests`,\n'
            '`python -m pytest tests`, `tools/anything` (not a command).\n')
    assert check_inline_code('docs/fake.md', text=text) == []
    bad = ('`python benchmarks/nope.py`, `bash tools/dist_train.sh '
           f'configs/nope.py 8`,\n`{me}::test_nope`, '
           '`tests/test_nope.py`\n')
    found = check_inline_code('docs/fake.md', text=bad)
    assert found == [
        'docs/fake.md:1: `python benchmarks/nope.py`: benchmarks/nope.py '
        'is not shipped',
        'docs/fake.md:1: `bash tools/dist_train.sh configs/nope.py 8`: '
        'configs/nope.py is not shipped',
        f'docs/fake.md:2: `{me}::test_nope`: {me} defines no test_nope',
        'docs/fake.md:2: `tests/test_nope.py`: tests/test_nope.py is not '
        'shipped',
    ]


def test_output_options_of_other_scripts_count_as_produced():
    run = 'python benchmarks/pretrain_cost.py --batch 4 --out {out}\n'
    assert problems(
        run.format(out='work_dirs/cost.json') + 'cat work_dirs/cost.json\n' +
        run.format(out='work_dirs/c/') + 'ls work_dirs/c/x.json\n') == []
    found = problems(
        run.format(out='work_dirs/cost.json') + 'cat work_dirs/cst.json\n')
    assert len(found) == 1 and 'work_dirs/cst.json' in found[0]


def test_inline_and_python_block_folk_names_resolve():
    good = ('`folk.engine.checkpoint.safe_torch_load`, `folk.frequency`,\n'
            '`from folk.downstream import convert_checkpoint,\n'
            'check_loaded_keys`, `configs/folk/x.py` (a path, not a name)\n'
            '```python\nfrom folk.downstream import check_loaded_keys\n'
            'import folk.models\n```\n')
    assert check_inline_code('docs/fake.md', text=good) == []
    bad = ('`folk.converters`, `folk.compat.safe_torch_load`,\n'
           '`from folk.downstream import convert_checkpoint,\n'
           'check_keys`\n'
           '```python\nfrom folk.converters import check_loaded_keys\n'
           '```\n')
    assert check_inline_code(
        'docs/fake.md', text=bad) == [
            'docs/fake.md:4: python block: '
            'folk.converters.check_loaded_keys does not resolve',
            'docs/fake.md:1: `folk.converters`: folk.converters does not '
            'resolve',
            'docs/fake.md:1: `folk.compat.safe_torch_load`: '
            'folk.compat.safe_torch_load does not resolve',
            'docs/fake.md:2: `from folk.downstream import convert_checkpoint, '
            'check_keys`: folk.downstream.check_keys does not resolve',
        ]
