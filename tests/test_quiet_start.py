"""The README's first snippet, run as a user would (no TF_CPP_MIN_LOG_LEVEL set), prints
its results and nothing on stderr: none of TensorFlow's start-up lines."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Each line TensorFlow 2.21 prints when it loads on a CPU, with no TF_CPP_MIN_LOG_LEVEL set.
TF_START_UP = re.compile(r"absl::InitializeLog|oneDNN custom operations|cpu_feature_guard"
                         r"|To enable the following instructions|cuda|TensorFlow binary")


def readme_first_snippet() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.search(r"```python\n(.*?)```", text, re.S).group(1)


def test_readme_snippet_prints_no_tensorflow_start_up_lines(tmp_path):
    code = readme_first_snippet()
    assert "AgeGenderDetector()" in code and ".predict(" in code
    prelude = f"import sys; sys.path.insert(0, {str(ROOT / 'src')!r})\n"
    done = subprocess.run([sys.executable, "-c", prelude + code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg", "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert "models/pretrained/clips/" in done.stdout  # it did load TensorFlow and predict
    assert not TF_START_UP.search(done.stderr), done.stderr
    assert done.stderr.strip() == "", done.stderr
