"""The snippets of the README and of the docs run as written, in the
environment they state.

Conventions, for README.md and docs/*.md alike:

- A fenced block tagged ```python or ```bash is a snippet; a ```text block is
  output (or a recorded transcript, or a formula), never run. No other fence
  (no untagged one), so that no snippet escapes these rules. A fence may be
  indented (in a list item); its code is read dedented.
- Every snippet runs, unless the comment line before its fence (blank lines
  aside) is `<!-- test: skip (REASON) -->`, REASON saying what it needs that
  a test cannot have: ImageNet, a download, a GPU, a long training, a
  server, a file of the reader's own.
- A snippet states its environment: a Python snippet in a comment among its
  first lines, `# environment: NAME=value ... (why)`; a bash snippet before
  the command, as a reader types it (`TFDS_DATA_DIR=... python -m ...`).
  Nothing else reaches it: `TFDS_DATA_DIR` points at an empty directory
  unless the snippet sets it, so a snippet that reads MNIST without saying
  where fails here. Nothing is downloaded: `HTTP(S)_PROXY` points at a
  closed port and `KERAS_HOME` at an empty directory, so a snippet that
  needs a download fails here too.
- A page's snippets run in its reading order in one scratch directory laid
  out like the checkout's root: `bn_zoo/`, `configs/` and `trainers/` link
  to the checkout's, and `../shared/tensorflow_datasets` to the MNIST copy
  tests/conftest.py found. Paths a snippet writes (`workdirs/...`,
  `exports/...`) land there, and a later snippet of the page finds them.
- A bash snippet runs in `bash -e` (its `python` is this interpreter).
  Python snippets that follow one another and state the same environment
  run in one process (importing TensorFlow is most of a small snippet's
  cost), each in a fresh namespace as `__main__`; a bash snippet or another
  environment starts a new process. A Python snippet whose first line is a
  comment naming a relative `.py` path (`# mypackage/nets.py`) is a file the
  reader writes: it is written there and imported afresh as its module
  (`mypackage.nets`), as the code that uses it will import it.
- Expected output: `print(...)  # -> TEXT` in Python, `command ...  # -> TEXT`
  in bash, asserts that TEXT appears in the snippet's stdout, after the
  previous such TEXT. A `# ->` anywhere else is refused (it would go
  unchecked).
"""

import json
import os
import re
import subprocess
import sys

import pytest

import commands

# Every page's snippets in fresh processes: about 3.5 min of CPU (README 0.7,
# docs 2.9), most of it TensorFlow's import in each command.
pytestmark = pytest.mark.heavy

ROOT = commands.ROOT
README = "README.md"
SKIP = "skip"
LANGUAGES = ("python", "bash", "text")
_FENCE = re.compile(r"^( *)```(\S*)\s*$")
_MARKER = re.compile(r"^<!-- test: skip \((.+)\) -->$")
_ENVIRONMENT = re.compile(r"^#\s*environment:\s*(.*)$")
_ASSIGNMENT = re.compile(r"^([A-Z_][A-Z0-9_]*)=(\S+)$")
_ARROW = re.compile(r"#\s*->")
_EXPECTED = {
    "python": re.compile(r"^\s*print\(.*\)\s*#\s*->\s*(.+?)\s*$"),
    "bash": re.compile(r"^\s*[^#\s].*?\s#\s*->\s*(.+?)\s*$"),
}
_FILE = re.compile(r"^#\s*([A-Za-z_]\w*(?:/[A-Za-z_]\w*)*)\.py(?:\s|$)")
_NAMES_A_FILE = re.compile(r"^#\s*\S+\.py(?:\s|$)")
_OFFLINE = "http://127.0.0.1:9"  # The discard port: nothing listens, so a download fails.
_TIMEOUT_S = 300

# Runs one process's Python snippets in order: argv[1] is a JSON list of
# {"line", "file", "module", "module_path"} ("module": None for a snippet
# run as `__main__`). Before each it prints a marker line on stdout and
# stderr; the first that raises ends the process with status 1.
_RUNNER = r'''
import importlib, json, os, sys, traceback

sys.path[0] = os.getcwd()  # As for `python snippet.py` in the working directory.
for snippet in json.load(open(sys.argv[1], encoding="utf-8")):
    for stream in (sys.stdout, sys.stderr):
        print(f"==== snippet {snippet['line']} ====", file=stream, flush=True)
    code = open(snippet["file"], encoding="utf-8").read()
    try:
        if snippet["module"]:
            os.makedirs(os.path.dirname(snippet["module_path"]) or ".", exist_ok=True)
            with open(snippet["module_path"], "w", encoding="utf-8") as f:
                f.write(code)
            sys.modules.pop(snippet["module"], None)  # Afresh, as a new process would.
            importlib.invalidate_caches()
            importlib.import_module(snippet["module"])
        else:
            sys.argv = [snippet["file"]]
            exec(compile(code, snippet["file"], "exec"), {"__name__": "__main__",
                                                          "__file__": snippet["file"]})
    except BaseException:
        traceback.print_exc()
        sys.stdout.flush()
        sys.exit(1)
'''
_SPLIT = re.compile(r"^==== snippet (\d+) ====$", re.M)


def _documents():
    docs = sorted(os.path.join("docs", name) for name in os.listdir(os.path.join(ROOT, "docs"))
                  if name.endswith(".md"))
    return [README, *docs]


def _blocks(path):
    """[(first line number, language, code, skip reason or None)] of every
    fenced block of `path`, the code dedented by the fence's indentation."""
    lines = open(os.path.join(ROOT, path), encoding="utf-8").read().split("\n")
    blocks, index = [], 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        indent, end = len(match.group(1)), index + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        assert end < len(lines), f"{path}:{index + 1}: a fence that is never closed"
        before = index - 1
        while before >= 0 and not lines[before].strip():
            before -= 1
        marker = _MARKER.match(lines[before].strip()) if before >= 0 else None
        code = "\n".join(line[indent:] if not line[:indent].strip() else line
                         for line in lines[index + 1:end]) + "\n"
        blocks.append((index + 1, match.group(2), code,
                       marker.group(1).strip() if marker else None))
        index = end + 1
    return blocks


def _runs(path):
    """[(line, language, code)] of the snippets of `path` that run, in order."""
    return [(line, language, code) for line, language, code, reason in _blocks(path)
            if language in ("python", "bash") and reason is None]


def _pages():
    return [path for path in _documents() if _runs(path)]


def test_every_snippet_runs_or_says_why_not():
    """Every block of the README and the docs is python, bash (run unless
    skipped with a reason) or text; every marker sits right before a
    snippet; every `# ->` is checked; a file snippet names a relative path."""
    for path in _documents():
        counts = {"run": 0, SKIP: 0}
        for line, language, code, reason in _blocks(path):
            where = f"{path}:{line}"
            assert language in LANGUAGES, (
                f"{where}: a ```{language} block; use python or bash (run by this test) or "
                "text (output, never run)")
            if language == "text":
                assert reason is None, f"{where}: a text block is never run; drop its marker"
                continue
            counts[SKIP if reason else "run"] += 1
            for number, text in enumerate(code.split("\n")):
                if _ARROW.search(text):
                    assert _EXPECTED[language].match(text), (
                        f"{where}, line {number + 1} of the snippet: `# ->` is checked only "
                        + ("after print(...)" if language == "python" else "after a command")
                        + f": {text.strip()!r}")
            first = code.split("\n", 1)[0]
            if language == "python" and _NAMES_A_FILE.match(first):
                assert _FILE.match(first), (
                    f"{where}: {first!r} names a file; name it relative to the working "
                    "directory, as a module path (`# mypackage/nets.py`)")
        if path == README:
            assert counts["run"] >= 5, counts
        text = open(os.path.join(ROOT, path), encoding="utf-8").read().split("\n")
        fences = {line - 1 for line, *_ in _blocks(path)}
        for number, text_line in enumerate(text):
            if text_line.strip().startswith("<!-- test:"):
                assert _MARKER.match(text_line.strip()), (
                    f"{path}:{number + 1}: write `<!-- test: skip (what it needs) -->`; "
                    "every other snippet runs")
                following = number + 1
                while following < len(text) and not text[following].strip():
                    following += 1
                assert following in fences, (
                    f"{path}:{number + 1}: a test marker with no snippet after it")


def _environment(language, code):
    """The variables a Python snippet's `# environment:` comment states."""
    if language != "python":
        return {}
    stated = {}
    for line in code.split("\n")[:5]:
        match = _ENVIRONMENT.match(line.strip())
        if match:
            for token in match.group(1).split():
                assignment = _ASSIGNMENT.match(token)
                if not assignment:
                    break
                stated[assignment.group(1)] = assignment.group(2)
    return stated


def _processes(snippets):
    """[(language, stated environment, [(line, code)])]: one per bash
    snippet, one per run of Python snippets with the same environment."""
    processes = []
    for line, language, code in snippets:
        stated = _environment(language, code)
        if (language == "python" and processes and processes[-1][0] == "python"
                and processes[-1][1] == stated):
            processes[-1][2].append((line, code))
        else:
            processes.append((language, stated, [(line, code)]))
    return processes


def _scratch_checkout(tmp_path):
    """tmp/checkout (bn_zoo/, configs/, trainers/ linked) beside
    tmp/shared/tensorflow_datasets."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for name in ("bn_zoo", "configs", "trainers"):
        os.symlink(os.path.join(ROOT, name), checkout / name)
    shared = os.environ.get("TFDS_DATA_DIR")  # tests/conftest.py's shared copy
    if shared and os.path.isdir(os.path.join(shared, "mnist")):
        (tmp_path / "shared").mkdir()
        os.symlink(os.path.abspath(shared), tmp_path / "shared" / "tensorflow_datasets")
    return checkout


def _base_environment(tmp_path):
    """A reader's shell: no TFDS_DATA_DIR (an empty directory), no network,
    no Keras cache, no Keras backend chosen."""
    dropped = {"TFDS_DATA_DIR", "PYTHONPATH", "KERAS_HOME", "KERAS_BACKEND", "no_proxy",
               "NO_PROXY"}
    env = {key: value for key, value in os.environ.items() if key not in dropped}
    for name in ("no_data_here", "keras_home"):
        (tmp_path / name).mkdir()
    env.update(TFDS_DATA_DIR=str(tmp_path / "no_data_here"),
               KERAS_HOME=str(tmp_path / "keras_home"), PYTHONPATH=ROOT,
               TF_CPP_MIN_LOG_LEVEL="2", HTTP_PROXY=_OFFLINE, HTTPS_PROXY=_OFFLINE,
               http_proxy=_OFFLINE, https_proxy=_OFFLINE)
    # `python` in a bash snippet is this interpreter.
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


def _python_command(tmp_path, path, snippets):
    """Writes the snippets and the runner; the command that runs them."""
    directory = tmp_path / "snippets"
    directory.mkdir(exist_ok=True)
    specs = []
    for line, code in snippets:
        name = f"{os.path.basename(path).replace('.', '_')}_{line}.py"
        (directory / name).write_text(code, encoding="utf-8")
        match = _FILE.match(code.split("\n", 1)[0])
        specs.append({"line": line, "file": str(directory / name),
                      "module": match.group(1).replace("/", ".") if match else None,
                      "module_path": f"{match.group(1)}.py" if match else None})
    listing = directory / f"run_{snippets[0][0]}.json"
    listing.write_text(json.dumps(specs), encoding="utf-8")
    runner = tmp_path / "run_snippets.py"
    runner.write_text(_RUNNER, encoding="utf-8")
    return [sys.executable, str(runner), str(listing)]


def _check_expected(where, language, code, stdout):
    position = 0
    for expected in (m.group(1) for m in map(_EXPECTED[language].match, code.split("\n")) if m):
        found = stdout.find(expected, position)
        assert found >= 0, (
            f"{where}: expected {expected!r} in the output after position {position}; "
            f"stdout:\n{stdout[-3000:]}")
        position = found + len(expected)


def _by_snippet(output):
    """{line: that snippet's part} of a Python process's stdout or stderr."""
    parts = _SPLIT.split(output)
    return {int(line): text for line, text in zip(parts[1::2], parts[2::2])}


@pytest.mark.parametrize("path", _pages())
def test_page_snippets_run(tmp_path, path):
    snippets = _runs(path)
    checkout = _scratch_checkout(tmp_path)
    if (any("TFDS_DATA_DIR" in code for _, _, code in snippets)
            and not (tmp_path / "shared").exists()):
        pytest.skip("no MNIST prepared by TFDS beside the checkout (tests/conftest.py)")
    base = _base_environment(tmp_path)
    for language, stated, group in _processes(snippets):
        env = dict(base, **stated)
        if language == "python":
            command = _python_command(tmp_path, path, group)
        else:
            command = ["bash", "-e", "-c", group[0][1]]
        result = subprocess.run(command, cwd=checkout, env=env, capture_output=True, text=True,
                                timeout=_TIMEOUT_S)
        stdouts = _by_snippet(result.stdout) if language == "python" else {
            group[0][0]: result.stdout}
        stderrs = _by_snippet(result.stderr) if language == "python" else {
            group[0][0]: result.stderr}
        if result.returncode != 0:
            line = max(stdouts, default=group[0][0])
            code = dict(group)[line]
            pytest.fail(
                f"{path}:{line} failed (exit status {result.returncode}):\n{code}\n"
                f"stdout:\n{stdouts.get(line, result.stdout)[-3000:]}\n"
                f"stderr:\n{stderrs.get(line, result.stderr)[-3000:]}")
        for line, code in group:
            _check_expected(f"{path}:{line}", language, code, stdouts.get(line, ""))
