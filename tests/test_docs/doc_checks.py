"""Checks of the README and ``docs/``: links and the paths in commands.

Two checks, each returning a list of human-readable problems (empty when
the page is fine), so that a test can show every problem at once:

* :func:`check_links`: every relative link (``[text](path#anchor)`` and
  ``![alt](path)``) outside code resolves to a file or folder of the
  repository that is shipped (not git-ignored), and an anchor names a
  heading of the target page (GitHub's slugs).
* :func:`check_commands`: the shell blocks (```` ```bash ````, ``sh``,
  ``shell``) of a page are read in order, as a reader would run them, and
  every repository path in them must be

  - shipped: a tracked or untracked-but-not-ignored file or folder; or
  - produced by an earlier command of the same page: a training command's
    work directory (``--work-dir``, or MMEngine's default
    ``work_dirs/<config name>``), and in it only the checkpoint names the
    config writes (``epoch_N.pth`` / ``iter_N.pth`` that the checkpoint
    hook keeps at the end of the run, ``last_checkpoint``); a converter's
    or a script's output file; a redirection target; ``python -m venv``'s
    folder; or
  - an external dataset path: under ``data/`` (the OpenMMLab layout) or
    ``../shared/data/`` (the bundled data).

  On top of that, a converter must read a *pre-training* checkpoint (the
  model of its config is FOLK or MFM), ``model.backbone.init_cfg.checkpoint``
  must name an MMPretrain-format file and ``model.pretrained`` an
  MMSeg-format file when those were written by a converter on the page,
  a test command's checkpoint must come from a training of the same config,
  ``mim train/test LIB`` must match the config's ``default_scope`` and
  ``make TARGET`` must be a rule of the Makefile. Shell variables
  (``CKPT=...``, then ``$CKPT``) are expanded; an undefined one is a problem.
"""
import functools
import os.path as osp
import posixpath
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set, Tuple

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

SHELL_LANGS = ('bash', 'sh', 'shell', 'console')
EXTERNAL_DATA = ('data/', '../shared/data/')
PATH_EXTS = ('.py', '.pth', '.sh', '.txt', '.json', '.md', '.yaml', '.yml',
             '.png', '.cfg', '.zip', '.log')
TRAIN_SCRIPTS = ('tools/train.py', 'tools/dist_train.sh',
                 'tools/slurm_train.sh')
TEST_SCRIPTS = ('tools/test.py', 'tools/dist_test.sh', 'tools/slurm_test.sh')
CONVERTERS = {
    'tools/model_converters/folk_to_mmpretrain.py': 'mmpretrain',
    'tools/model_converters/folk_to_mmseg.py': 'mmseg',
    'tools/model_converters/folk_to_timm.py': 'timm',
}
# cfg-option keys that load a converted backbone, and the format they need
WEIGHT_OPTIONS = {
    'model.backbone.init_cfg.checkpoint': 'mmpretrain',
    'model.pretrained': 'mmseg',
}
MIM_SCOPES = {
    'mmpretrain': 'mmpretrain',
    'mmsegmentation': 'mmseg',
    'mmseg': 'mmseg'
}
PRETRAIN_MODELS = ('FOLK', 'MFM')
SEPARATORS = ('&&', '||', ';', '|', '&')
# options of other scripts that name what they write
OUTPUT_OPTIONS = ('--out', '--output', '--out-dir', '--output-dir',
                  '--save-dir', '--work-dir', '-o')


# --------------------------------------------------------------- markdown
@dataclass
class Block:
    """A fenced code block: its language, first line number and text."""
    lang: str
    line: int
    text: str


def split_markdown(text: str) -> Tuple[List[Block], str]:
    """Split a page into fenced code blocks and the prose outside them.

    Returns:
        The code blocks in order, and the prose with each code line replaced
        by an empty line (so line numbers stay valid).
    """
    blocks, prose = [], []
    fence, lang, start, body = None, '', 0, []
    for num, line in enumerate(text.split('\n'), 1):
        stripped = line.strip()
        if fence is None:
            match = re.match(r'(`{3,}|~{3,})\s*([\w+-]*)', stripped)
            if match:
                fence, lang, start, body = match.group(1), match.group(
                    2).lower(), num, []
                prose.append('')
            else:
                prose.append(line)
        elif stripped.startswith(fence) and not stripped.strip(fence[0]):
            blocks.append(Block(lang, start, '\n'.join(body)))
            fence = None
            prose.append('')
        else:
            body.append(line)
            prose.append('')
    if fence is not None:
        raise ValueError(f'unclosed code fence opened at line {start}')
    return blocks, '\n'.join(prose)


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading (before de-duplication)."""
    text = re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', heading)  # links
    text = text.strip().lower()
    text = re.sub(r'[^\w\- ]', '', text)
    return text.replace(' ', '-')


def anchors(text: str) -> Set[str]:
    """All heading anchors of a page, with GitHub's ``-1``, ``-2`` suffixes."""
    _, prose = split_markdown(text)
    seen: Dict[str, int] = {}
    result = set()
    for line in prose.split('\n'):
        match = re.match(r'#{1,6}\s+(.*?)\s*#*\s*$', line)
        if not match:
            continue
        slug = github_slug(match.group(1))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f'{slug}-{count}')
    return result


def strip_inline_code(prose: str) -> str:
    """Blank inline code spans (their brackets are not links)."""
    return re.sub(r'(`+)(.+?)\1', lambda m: ' ' * len(m.group(0)), prose)


LINK_RE = re.compile(r'!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?'
                     r'(?:\s+"[^"]*")?\s*\)')
SRC_RE = re.compile(r'<(?:img|a)\b[^>]*?(?:src|href)="([^"]+)"')


# ------------------------------------------------------------ repository
@functools.lru_cache(maxsize=None)
def shipped_paths(repo: str = REPO) -> Tuple[frozenset, frozenset]:
    """Files and folders of the repository that are not git-ignored.

    Tracked files plus untracked files that ``.gitignore`` does not exclude
    (a file added in the working tree counts before it is committed).
    Deleted-but-tracked files are left out.
    """
    out = subprocess.run([
        'git', 'ls-files', '--cached', '--others', '--exclude-standard', '-z'
    ],
                         cwd=repo,
                         check=True,
                         capture_output=True).stdout.decode()
    files = {
        p
        for p in out.split('\0') if p and osp.lexists(osp.join(repo, p))
    }
    dirs = {''}
    for path in files:
        parent = posixpath.dirname(path)
        while parent not in dirs:
            dirs.add(parent)
            parent = posixpath.dirname(parent)
    return frozenset(files), frozenset(dirs)


def is_shipped(path: str, repo: str = REPO) -> bool:
    files, dirs = shipped_paths(repo)
    return path in files or path in dirs


@functools.lru_cache(maxsize=None)
def makefile_targets(repo: str = REPO) -> frozenset:
    with open(osp.join(repo, 'Makefile'), encoding='utf-8') as f:
        text = f.read()
    return frozenset(
        m.group(1)
        for m in re.finditer(r'^([\w.-]+)\s*:(?!=)', text, re.MULTILINE))


# ------------------------------------------------------------------ links
def check_links(page: str, repo: str = REPO) -> List[str]:
    """Problems with the relative links of one page (path from ``repo``)."""
    with open(osp.join(repo, page), encoding='utf-8') as f:
        text = f.read()
    _, prose = split_markdown(text)
    prose = strip_inline_code(prose)
    problems = []
    page_dir = posixpath.dirname(page)
    for num, line in enumerate(prose.split('\n'), 1):
        targets = [m.group(1) for m in LINK_RE.finditer(line)]
        targets += [m.group(1) for m in SRC_RE.finditer(line)]
        for target in targets:
            if re.match(r'[a-z][a-z0-9+.-]*:', target):  # http:, mailto:
                continue
            where = f'{page}:{num}: link {target!r}'
            path, _, anchor = target.partition('#')
            if path.startswith('/'):
                problems.append(f'{where} is absolute; use a relative link')
                continue
            resolved = posixpath.normpath(posixpath.join(page_dir, path))
            if not path:
                resolved = page
            if resolved.startswith('..'):
                problems.append(f'{where} leaves the repository')
                continue
            if resolved == '.':
                resolved = ''
            if not is_shipped(resolved, repo):
                exists = osp.exists(osp.join(repo, resolved))
                problems.append(f'{where}: {resolved} is git-ignored' if exists
                                else f'{where}: {resolved} does not exist')
                continue
            if anchor:
                if not resolved.endswith('.md'):
                    problems.append(f'{where}: anchor on a non-Markdown file')
                    continue
                with open(osp.join(repo, resolved), encoding='utf-8') as f:
                    if anchor not in anchors(f.read()):
                        problems.append(
                            f'{where}: no heading #{anchor} in {resolved}')
    return problems


# ---------------------------------------------------------------- configs
@dataclass
class TrainedConfig:
    """What a training command's config writes into its work directory."""
    config: str
    model_type: str
    scope: Optional[str]
    # exact checkpoint names left at the end of the run, or None when only
    # the pattern is known (epoch loop, iteration checkpoints)
    checkpoints: Optional[Set[str]]
    pattern: str


def _parse_value(value: str):
    from mmengine.config import DictAction
    return DictAction._parse_iterable(value)


@functools.lru_cache(maxsize=None)
def _load_config(config: str, options: Tuple[Tuple[str, str], ...],
                 repo: str) -> TrainedConfig:
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(repo, config))
    if options:
        cfg.merge_from_dict({k: _parse_value(v) for k, v in options})
    hook = cfg.get('default_hooks', {}).get('checkpoint') or {}
    interval = hook.get('interval', -1)
    hook_by_epoch = hook.get('by_epoch', True)
    keep = hook.get('max_keep_ckpts', -1)
    save_last = hook.get('save_last', True)
    train_cfg = cfg.get('train_cfg') or {}
    loop_by_epoch = (
        train_cfg.get('by_epoch', False) or 'max_epochs' in train_cfg
        or train_cfg.get('type') == 'EpochBasedTrainLoop')
    prefix = 'epoch' if hook_by_epoch else 'iter'
    pattern = rf'{prefix}_\d+\.pth'
    checkpoints = None
    if hook_by_epoch == loop_by_epoch and interval and interval > 0:
        total = train_cfg['max_epochs' if loop_by_epoch else 'max_iters']
        steps = list(range(interval, total + 1, interval))
        if save_last and (not steps or steps[-1] != total):
            steps.append(total)
        if keep and keep > 0:
            steps = steps[-keep:]
        checkpoints = {f'{prefix}_{n}.pth' for n in steps}
    return TrainedConfig(config, cfg.model.get('type', ''),
                         cfg.get('default_scope'), checkpoints, pattern)


# --------------------------------------------------------------- commands
@dataclass
class PageState:
    """What the commands read so far have defined and produced."""
    variables: Dict[str, str] = field(default_factory=dict)
    # produced file -> format ('mmpretrain', 'mmseg', 'timm', 'file')
    files: Dict[str, str] = field(default_factory=dict)
    dirs: Set[str] = field(default_factory=set)  # any content allowed
    work_dirs: Dict[str, TrainedConfig] = field(default_factory=dict)


@dataclass
class Resolved:
    """How a path was accounted for."""
    how: str  # 'shipped', 'external', 'produced', 'checkpoint'
    kind: str = 'file'
    trained: Optional[TrainedConfig] = None


def logical_lines(text: str) -> List[Tuple[int, str]]:
    """Join backslash continuations; returns (offset of first line, line)."""
    lines, current, start = [], '', None
    for num, line in enumerate(text.split('\n')):
        if start is None:
            start = num
        if line.rstrip().endswith('\\'):
            current += line.rstrip()[:-1] + ' '
            continue
        lines.append((start, current + line))
        current, start = '', None
    if current:
        lines.append((start, current))
    return lines


def tokenize(line: str) -> List[str]:
    """Shell words of a line, comments dropped, operators as own tokens."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=';&|<>')
    lexer.whitespace_split = True
    lexer.commenters = '#'
    return list(lexer)


class CommandChecker:
    """Reads the shell blocks of one page in order and collects problems."""

    def __init__(self, page: str, repo: str = REPO) -> None:
        self.page = page
        self.repo = repo
        self.state = PageState()
        self.problems: List[str] = []

    # -- helpers
    def _problem(self, where: str, message: str) -> None:
        self.problems.append(f'{where}: {message}')

    def _expand(self, token: str, where: str) -> Optional[str]:

        def repl(match):
            name = match.group(1) or match.group(2)
            if name not in self.state.variables:
                raise KeyError(name)
            return self.state.variables[name]

        try:
            return re.sub(r'\$\{(\w+)\}|\$(\w+)', repl, token)
        except KeyError as err:
            self._problem(
                where, f'undefined shell variable ${err.args[0]} '
                f'in {token!r}')
            return None

    @staticmethod
    def looks_like_path(token: str) -> bool:
        if not token or token.startswith('-') or '://' in token:
            return False
        if re.search(r'[\s\'"*?<>|]', token) or '...' in token:
            return False
        return '/' in token or token.endswith(PATH_EXTS)

    @staticmethod
    def normalize(path: str) -> str:
        path = posixpath.normpath(path)
        return '' if path == '.' else path

    def resolve(self, path: str, where: str) -> Optional[Resolved]:
        """Account for one repository path, or record a problem."""
        path = self.normalize(path)
        state = self.state
        if path in state.files:
            return Resolved('produced', state.files[path])
        if path in state.work_dirs or path in state.dirs:
            return Resolved('produced', 'dir')
        for produced in list(state.files) + list(state.work_dirs):
            if produced.startswith(path + '/'):
                return Resolved('produced', 'dir')
        for folder in state.dirs:
            if path.startswith(folder + '/'):
                return Resolved('produced')
        parent, name = posixpath.split(path)
        if parent in state.work_dirs:
            trained = state.work_dirs[parent]
            if name == 'last_checkpoint':
                return Resolved('checkpoint', 'last_checkpoint', trained)
            if trained.checkpoints is not None:
                if name in trained.checkpoints:
                    return Resolved('checkpoint', 'checkpoint', trained)
                self._problem(
                    where, f'{path}: {trained.config} leaves only '
                    f'{sorted(trained.checkpoints)} in {parent} at the end '
                    'of its run')
                return None
            if re.fullmatch(trained.pattern, name):
                return Resolved('checkpoint', 'checkpoint', trained)
            self._problem(
                where, f'{path}: {trained.config} writes no such '
                f'file in its work dir {parent}')
            return None
        if path.startswith(EXTERNAL_DATA) or path == 'data':
            return Resolved('external')
        if path.startswith('/tmp/'):
            self._problem(
                where, f'{path} is used before a command of '
                'this page writes it')
            return None
        if is_shipped(path, self.repo):
            return Resolved('shipped')
        if path.startswith('work_dirs/'):
            self._problem(
                where, f'{path} is not written by an earlier '
                'command of this page (work_dirs/ is not shipped)')
        else:
            self._problem(
                where, f'{path} is neither shipped, written by an '
                'earlier command of this page, nor under data/')
        return None

    def _check_path(self, token: str, where: str) -> Optional[Resolved]:
        return self.resolve(token,
                            where) if self.looks_like_path(token) else None

    def _trained(self, config: str, options, where: str):
        try:
            return _load_config(
                self.normalize(config), tuple(options), self.repo)
        except Exception as err:  # a broken config is a docs problem too
            self._problem(where, f'cannot load config {config}: {err}')
            return None

    # -- one command
    def check_command(self, argv: List[str], where: str) -> None:
        # VAR=value prefixes: a plain assignment, or env for the command
        env = []
        while argv and re.fullmatch(r'[A-Za-z_]\w*=.*', argv[0]):
            env.append(argv.pop(0))
        if not argv:
            for item in env:
                name, _, value = item.partition('=')
                # checked where it is used, e.g. W=work_dirs/demo
                self.state.variables[name] = value
            return
        # redirections
        args, outputs = [], []
        i = 0
        while i < len(argv):
            if argv[i] in ('>', '>>', '<') and i + 1 < len(argv):
                if argv[i] == '<':
                    self._check_path(argv[i + 1], where)
                else:
                    outputs.append(self.normalize(argv[i + 1]))
                i += 2
            else:
                args.append(argv[i])
                i += 1
        self._dispatch(args, where)
        for out in outputs:
            self.state.files[out] = 'file'

    def _dispatch(self, args: List[str], where: str) -> None:
        prog = posixpath.basename(args[0])
        if re.fullmatch(r'python[\d.]*', prog) and len(args) > 1:
            if args[1] == '-m':
                return self._module(args[2:], where)
            if args[1] == '-c':
                return
            return self._script(args[1], args[2:], where)
        if prog in ('bash', 'sh') and len(args) > 1:
            return self._script(args[1], args[2:], where)
        if prog == 'make':
            for target in args[1:]:
                if target.startswith('-') or '=' in target:
                    continue
                if target not in makefile_targets(self.repo):
                    self._problem(
                        where, f'make target {target!r} is not a '
                        'rule of the Makefile')
            return
        if prog == 'mim' and len(args) > 2 and args[1] in ('train', 'test'):
            return self._mim(args[1], args[2], args[3:], where)
        if prog == 'mkdir':
            for arg in args[1:]:
                if not arg.startswith('-'):
                    self.state.dirs.add(self.normalize(arg))
            return
        if prog == 'cp':
            paths = [a for a in args[1:] if not a.startswith('-')]
            for src in paths[:-1]:
                self._check_path(src, where)
            if paths:
                self.state.dirs.add(self.normalize(paths[-1]))
            return
        self._generic_args(args[1:], where)

    def _generic_args(self, args: List[str], where: str) -> None:
        """Check every path argument; register ``--out X``-style outputs."""
        i = 0
        while i < len(args):
            key, eq, value = args[i].partition('=')
            if key in OUTPUT_OPTIONS and (eq or i + 1 < len(args)):
                if not eq:
                    value = args[i + 1]
                    i += 1
                out = self.normalize(value)
                if posixpath.splitext(out)[1] and not value.endswith('/'):
                    self.state.files[out] = 'file'
                else:
                    self.state.dirs.add(out)
            else:
                self._generic_arg(args[i], where)
            i += 1

    def _generic_arg(self, arg: str, where: str) -> None:
        if arg.startswith('-') and '=' in arg:
            arg = arg.split('=', 1)[1]
        elif '=' in arg and not arg.startswith('-'):
            key, value = arg.split('=', 1)
            resolved = self._check_path(value, where)
            need = WEIGHT_OPTIONS.get(key)
            if need and resolved and resolved.how == 'produced' and \
                    resolved.kind != need:
                self._problem(
                    where, f'{key} needs a {need} checkpoint, but {value} '
                    f'was written as {resolved.kind}')
            return
        self._check_path(arg, where)

    def _module(self, args: List[str], where: str) -> None:
        if args[:1] == ['venv']:
            for arg in args[1:]:
                if not arg.startswith('-'):
                    self.state.dirs.add(self.normalize(arg))
            return
        self._generic_args(args[1:], where)

    @staticmethod
    def _split_options(args: List[str]):
        """Positional arguments, --key value options, cfg-options."""
        positional, options, cfg_options = [], {}, []
        i = 0
        while i < len(args):
            arg = args[i]
            if arg == '--cfg-options':
                i += 1
                while i < len(args) and not args[i].startswith('--'):
                    cfg_options.append(args[i])
                    i += 1
                continue
            if arg.startswith('--'):
                key, eq, value = arg.partition('=')
                if eq:
                    options[key] = value
                elif i + 1 < len(args) and not args[i + 1].startswith('-'):
                    options[key] = args[i + 1]
                    i += 1
                else:
                    options[key] = None
            else:
                positional.append(arg)
            i += 1
        return positional, options, cfg_options

    def _script(self, script: str, args: List[str], where: str) -> None:
        script = self.normalize(script)
        if self.resolve(script, where) is None:
            return
        if script in TRAIN_SCRIPTS:
            positional, options, cfg_options = self._split_options(args)
            if script == 'tools/slurm_train.sh':
                positional = positional[2:]  # PARTITION JOB_NAME
            if not positional:
                self._problem(where, f'{script} without a config')
                return
            config = positional[0]
            work_dir = options.get('--work-dir')
            if script == 'tools/slurm_train.sh' and len(positional) > 1:
                work_dir = positional[1]
            return self._train(config, work_dir, options, cfg_options, where)
        if script in TEST_SCRIPTS:
            positional, options, cfg_options = self._split_options(args)
            if script == 'tools/slurm_test.sh':
                positional = positional[2:]
            if len(positional) < 2:
                self._problem(where, f'{script} needs a config and a '
                              'checkpoint')
                return
            return self._test(positional[0], positional[1], cfg_options, where)
        if script in CONVERTERS:
            positional, options, _ = self._split_options(args)
            if len(positional) != 2:
                self._problem(where, f'{script} takes IN and OUT')
                return
            src = self.resolve(positional[0], where)
            if src is not None and src.how == 'checkpoint' and \
                    src.trained.model_type not in PRETRAIN_MODELS:
                self._problem(
                    where, f'{script} converts pre-training checkpoints, '
                    f'but {positional[0]} comes from '
                    f'{src.trained.config} ({src.trained.model_type})')
            self.state.files[self.normalize(positional[1])] = \
                CONVERTERS[script]
            return
        if script == 'tools/make_fewshot_split.py':
            positional, _, _ = self._split_options(args)
            for src in positional[:-1]:
                self._check_path(src, where)
            if positional:
                self.state.files[self.normalize(positional[-1])] = 'file'
            return
        self._generic_args(args, where)

    def _cfg_pairs(self, cfg_options: List[str], where: str):
        pairs = []
        for item in cfg_options:
            key, _, value = item.partition('=')
            self._generic_arg(item, where)
            if key.startswith(('train_cfg.', 'default_hooks.checkpoint.')):
                pairs.append((key, value))
        return pairs

    def _train(self, config, work_dir, options, cfg_options, where):
        if self.resolve(config, where) is None:
            return
        pairs = self._cfg_pairs(cfg_options, where)
        if options.get('--resume'):
            resolved = self.resolve(options['--resume'], where)
            if resolved is not None and resolved.how == 'produced':
                self._problem(
                    where, f'--resume {options["--resume"]} is '
                    'not a training checkpoint')
        trained = self._trained(config, pairs, where)
        if trained is None:
            return
        if work_dir is None:
            name = posixpath.splitext(posixpath.basename(config))[0]
            work_dir = f'work_dirs/{name}'
        self.state.work_dirs[self.normalize(work_dir)] = trained

    def _test(self, config, checkpoint, cfg_options, where):
        if self.resolve(config, where) is None:
            return
        self._cfg_pairs(cfg_options, where)
        resolved = self.resolve(checkpoint, where)
        if resolved is not None and resolved.how == 'checkpoint' and \
                resolved.trained.config != self.normalize(config):
            self._problem(
                where, f'{checkpoint} was trained with '
                f'{resolved.trained.config}, not {config}')

    def _mim(self, action, library, args, where):
        positional, options, cfg_options = self._split_options(args)
        if not positional:
            self._problem(where, f'mim {action} without a config')
            return
        config = positional[0]
        if action == 'train':
            self._train(config, options.get('--work-dir'), options,
                        cfg_options, where)
        else:
            if self.resolve(config, where) is None:
                return
            self._cfg_pairs(cfg_options, where)
            if options.get('--checkpoint'):
                self._check_path(options['--checkpoint'], where)
        if self.looks_like_path(config) and is_shipped(
                self.normalize(config), self.repo):
            trained = self._trained(config, (), where)
            scope = MIM_SCOPES.get(library)
            if trained is not None and scope != trained.scope:
                self._problem(
                    where, f'mim {action} {library} runs a config '
                    f'of default_scope {trained.scope!r}')

    # -- a page
    def check_block(self, block: str, first_line: int) -> None:
        for offset, line in logical_lines(block):
            where = f'{self.page}:{first_line + 1 + offset}'
            if line.lstrip().startswith('$ '):  # console prompt
                line = line.lstrip()[2:]
            try:
                tokens = tokenize(line)
            except ValueError as err:
                self._problem(where, f'cannot parse {line!r}: {err}')
                continue
            command: List[str] = []
            for token in tokens + [';']:
                if token in SEPARATORS:
                    if command:
                        self._run(command, where)
                    command = []
                else:
                    command.append(token)

    def _run(self, command: List[str], where: str) -> None:
        expanded = []
        for token in command:
            value = self._expand(token, where)
            if value is None:
                return
            expanded.append(value)
        self.check_command(expanded, where)


def check_commands(page: str,
                   repo: str = REPO,
                   text: Optional[str] = None) -> List[str]:
    """Problems with the paths in the shell blocks of one page.

    Args:
        page: the page's path from the repository root (used in messages).
        repo: the repository root.
        text: the page's text; read from ``repo/page`` when omitted.
    """
    if text is None:
        with open(osp.join(repo, page), encoding='utf-8') as f:
            text = f.read()
    blocks, _ = split_markdown(text)
    checker = CommandChecker(page, repo)
    for block in blocks:
        if block.lang in SHELL_LANGS:
            checker.check_block(block.text, block.line)
    return checker.problems


def shell_commands(text: str) -> List[str]:
    """The logical command lines of a page's shell blocks, comments dropped,
    whitespace normalised (for comparing pages)."""
    blocks, _ = split_markdown(text)
    result = []
    for block in blocks:
        if block.lang not in SHELL_LANGS:
            continue
        for _, line in logical_lines(block.text):
            words = tokenize(line)
            if words:
                result.append(' '.join(words))
    return result


def doc_pages(repo: str = REPO) -> List[str]:
    """README.md and every shipped Markdown page under docs/."""
    files, _ = shipped_paths(repo)
    return ['README.md'] + sorted(
        p for p in files if p.startswith('docs/') and p.endswith('.md'))


# ------------------------------------------------------------ inline code
def resolve_dotted(name: str) -> bool:
    """Whether ``folk.x.y`` names an importable module or an attribute."""
    import importlib
    parts = name.split('.')
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module('.'.join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False


def _python_names(code: str) -> List[str]:
    """``folk`` names that Python code imports (``from folk.x import a``)."""
    import ast
    names = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom) and node.module and \
                node.module.split('.')[0] == 'folk':
            names += [f'{node.module}.{a.name}' for a in node.names]
        elif isinstance(node, ast.Import):
            names += [
                a.name for a in node.names if a.name.split('.')[0] == 'folk'
            ]
    return names


def check_inline_code(page: str,
                      repo: str = REPO,
                      text: Optional[str] = None) -> List[str]:
    """Problems with the scripts, tests and modules that prose names.

    Inline code is prose, not a runnable sequence, so only what must exist
    is checked: the script of an inline ``python X.py`` or ``bash X.sh``
    command and its ``configs/`` arguments; each
    ``tests/...py::test_name`` reference (the file is shipped and defines
    that test); each dotted ``folk.x.y`` name and each name imported from
    ``folk`` (inline, or in a ``python`` code block) resolves.
    """
    if text is None:
        with open(osp.join(repo, page), encoding='utf-8') as f:
            text = f.read()
    blocks, prose = split_markdown(text)
    problems = []
    for block in blocks:
        if block.lang not in ('python', 'py'):
            continue
        try:
            names = _python_names(block.text)
        except SyntaxError as err:
            problems.append(f'{page}:{block.line}: python block does not '
                            f'parse: {err}')
            continue
        for name in names:
            if not resolve_dotted(name):
                problems.append(f'{page}:{block.line}: python block: '
                                f'{name} does not resolve')
    for match in re.finditer(r'(`+)(.+?)\1', prose, re.S):
        span = ' '.join(match.group(2).split())
        if '\n\n' in match.group(2):
            continue
        num = prose.count('\n', 0, match.start()) + 1
        where = f'{page}:{num}: `{span}`'
        try:
            words = shlex.split(span)
        except ValueError:
            words = span.split()
        for path, name in re.findall(r'\b(tests/[\w/.-]+\.py)(?:::(\w+))?',
                                     span):
            if not is_shipped(path, repo):
                problems.append(f'{where}: {path} is not shipped')
            elif name:
                with open(osp.join(repo, path), encoding='utf-8') as f:
                    if not re.search(rf'^\s*def {name}\b', f.read(),
                                     re.MULTILINE):
                        problems.append(f'{where}: {path} defines no {name}')
        dotted = re.findall(r'(?<![\w./-])(folk(?:\.\w+)+)', span)
        imported = re.match(r'from (folk(?:\.\w+)*) import (.+)', span)
        if imported:
            dotted += [
                f'{imported.group(1)}.{n.strip()}'
                for n in imported.group(2).split(',')
                if re.fullmatch(r'\w+', n.strip())
            ]
        for name in dotted:
            if not resolve_dotted(name):
                problems.append(f'{where}: {name} does not resolve')
        if len(words) < 2 or not re.fullmatch(r'(python[\d.]*|bash|sh)',
                                              posixpath.basename(words[0])):
            continue
        if words[1].startswith('-'):
            continue
        paths = [words[1]] + [w for w in words[2:] if w.startswith('configs/')]
        for path in paths:
            path = posixpath.normpath(path)
            if '$' in path or '...' in path:
                continue
            if not is_shipped(path, repo):
                problems.append(f'{where}: {path} is not shipped')
    return problems
