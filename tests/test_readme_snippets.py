"""The README's snippets run as written, in the environment they state.

Conventions, for README.md and docs/*.md:

- A fenced block tagged ```python or ```bash is a snippet; a ```text block is
  output, never run. README.md may hold no other fence (no untagged one), so
  that no snippet escapes these rules.
- README.md: every snippet runs, unless the comment line before its fence
  (blank lines aside) is `<!-- test: skip (REASON) -->`, REASON saying what it
  needs that a test cannot have: ImageNet, a download, a long training, a
  server. docs/*.md: a snippet runs only when the line before its fence is
  `<!-- test: run -->`.
- A snippet states its environment: a Python snippet in a comment among its
  first lines, `# environment: NAME=value ... (why)`; a bash snippet before
  the command, as a reader types it (`TFDS_DATA_DIR=... python -m ...`).
  Nothing else reaches it: `TFDS_DATA_DIR` points at an empty directory
  unless the snippet sets it, so a snippet that reads MNIST without saying
  where fails here.
- Each snippet runs in a fresh process (`python snippet.py`, `bash -e`) in a
  scratch directory laid out like the checkout's root: `configs/` and
  `trainers/` link to the checkout's, and `../shared/tensorflow_datasets` to
  the MNIST copy tests/conftest.py found. Paths a snippet writes
  (`workdirs/...`, `exports/...`) land in the scratch directory.
- Expected output: a Python line `print(...)  # -> TEXT` asserts that TEXT
  appears in the snippet's stdout, after the previous such TEXT.

The Quickstart's two commands (Figure 1, the whole suite) are skipped here:
tests/test_trainer.py runs Figure 1's code on a short config, CI runs the suite.
"""

import os
import re
import subprocess
import sys

import pytest

# Six snippets in fresh processes, about a minute of CPU on 2 idle cores.
pytestmark = pytest.mark.heavy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = "README.md"
RUN, SKIP = "run", "skip"
_FENCE = re.compile(r"^```(\S*)\s*$")
_MARKER = re.compile(r"^<!-- test: (run|skip)(?: \((.+)\))? -->$")
_ENVIRONMENT = re.compile(r"^#\s*environment:\s*(.*)$")
_ASSIGNMENT = re.compile(r"^([A-Z_][A-Z0-9_]*)=(\S+)$")
_EXPECTED = re.compile(r"^\s*print\(.*\)\s*#\s*->\s*(.+?)\s*$")
_TIMEOUT_S = 300


def _documents():
    docs = sorted(os.path.join("docs", name) for name in os.listdir(os.path.join(ROOT, "docs"))
                  if name.endswith(".md"))
    return [README, *docs]


def _blocks(path):
    """[(first line number, language, code, marker, reason)] of every fenced
    block of `path`; `marker` is the `<!-- test: ... -->` before the fence,
    if any."""
    lines = open(os.path.join(ROOT, path), encoding="utf-8").read().split("\n")
    blocks, index = [], 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and lines[end].rstrip() != "```":
            end += 1
        assert end < len(lines), f"{path}:{index + 1}: a fence that is never closed"
        before = index - 1
        while before >= 0 and not lines[before].strip():
            before -= 1
        marker = _MARKER.match(lines[before].strip()) if before >= 0 else None
        blocks.append((index + 1, match.group(1), "\n".join(lines[index + 1:end]) + "\n",
                       marker.group(1) if marker else None,
                       marker.group(2) if marker else None))
        index = end + 1
    return blocks


def _snippets():
    """pytest params of every snippet that runs."""
    params = []
    for path in _documents():
        for line, language, code, marker, _ in _blocks(path):
            runs = marker != SKIP if path == README else marker == RUN
            if language in ("python", "bash") and runs:
                params.append(pytest.param(path, line, language, code,
                                           id=f"{path}:{line}:{language}"))
    return params


def test_every_readme_snippet_runs_or_says_why_not():
    """No unmarked unrun snippet: README.md's blocks are python, bash (run
    unless skipped with a reason) or text; every marker in the README and the
    docs sits right before a snippet."""
    counts = {RUN: 0, SKIP: 0}
    for line, language, code, marker, reason in _blocks(README):
        where = f"README.md:{line}"
        assert language in ("python", "bash", "text"), (
            f"{where}: a ```{language} block; use python or bash (run by this test) or "
            "text (output)")
        if language == "text":
            assert marker is None, f"{where}: a text block is never run; drop its marker"
            continue
        if marker == SKIP:
            assert reason and reason.strip(), (
                f"{where}: `<!-- test: skip -->` without a reason; write "
                "`<!-- test: skip (what it needs) -->`")
        counts[marker or RUN] += 1
        # A snippet that runs must not depend on ImageNet or a release download.
        if (marker or RUN) == RUN:
            assert "imagenet" not in code.lower(), (
                f"{where}: runs, but mentions ImageNet; mark it `<!-- test: skip (...) -->`")
    assert counts[RUN] >= 5, counts
    for path in _documents():
        text = open(os.path.join(ROOT, path), encoding="utf-8").read().split("\n")
        fences = {line - 1 for line, *_ in _blocks(path)}
        for number, text_line in enumerate(text):
            if text_line.strip().startswith("<!-- test:"):
                assert _MARKER.match(text_line.strip()), (
                    f"{path}:{number + 1}: write `<!-- test: run -->` or "
                    "`<!-- test: skip (reason) -->`")
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


def _scratch_checkout(tmp_path):
    """tmp/checkout (configs/, trainers/ linked) beside tmp/shared/tensorflow_datasets."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for name in ("configs", "trainers"):
        os.symlink(os.path.join(ROOT, name), checkout / name)
    shared = os.environ.get("TFDS_DATA_DIR")  # tests/conftest.py's shared copy
    if shared and os.path.isdir(os.path.join(shared, "mnist")):
        (tmp_path / "shared").mkdir()
        os.symlink(os.path.abspath(shared), tmp_path / "shared" / "tensorflow_datasets")
    return checkout


@pytest.mark.parametrize("path, line, language, code", _snippets())
def test_snippet_runs(tmp_path, path, line, language, code):
    checkout = _scratch_checkout(tmp_path)
    if "TFDS_DATA_DIR" in code and not (tmp_path / "shared").exists():
        pytest.skip("no MNIST prepared by TFDS beside the checkout (tests/conftest.py)")
    empty = tmp_path / "no_data_here"
    empty.mkdir()
    env = {key: value for key, value in os.environ.items()
           if key not in ("TFDS_DATA_DIR", "PYTHONPATH")}
    env.update(TFDS_DATA_DIR=str(empty), PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    env.update(_environment(language, code))
    if language == "python":
        (checkout / "snippet.py").write_text(code, encoding="utf-8")
        command = [sys.executable, "snippet.py"]
    else:
        # `python` in a bash snippet is this interpreter.
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
        command = ["bash", "-e", "-c", code]
    result = subprocess.run(command, cwd=checkout, env=env, capture_output=True, text=True,
                            timeout=_TIMEOUT_S)
    where = f"{path}:{line}"
    assert result.returncode == 0, (
        f"{where} failed (exit status {result.returncode}):\n{code}\n"
        f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}")
    position = 0
    for expected in (m.group(1) for m in map(_EXPECTED.match, code.split("\n")) if m):
        found = result.stdout.find(expected, position)
        assert found >= 0, (
            f"{where}: expected {expected!r} in the output after position {position}; "
            f"stdout:\n{result.stdout[-3000:]}")
        position = found + len(expected)
