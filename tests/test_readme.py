"""The README's usage example runs as written."""

import re
from pathlib import Path


def test_readme_usage_example_runs(capsys):
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    example = re.search(r"## Use\n\n```python\n(.*?)```", readme, re.S).group(1)
    exec(compile(example, "README.md", "exec"), {})
    assert "tensor([6])" in capsys.readouterr().out
