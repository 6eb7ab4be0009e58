"""The README's main code example (the first Python block of its "## The model" section) runs as written."""

import re
from pathlib import Path


def test_readme_model_example_runs(capsys):
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = re.search(r"^## The model\n(.*?)(?=^## )", readme, re.S | re.M)
    assert section, 'README.md has no "## The model" section'
    example = re.search(r"^```python\n(.*?)^```", section.group(1), re.S | re.M)
    assert example, 'the "## The model" section of README.md has no ```python block'
    exec(compile(example.group(1), "README.md", "exec"), {})
    assert "tensor([6])" in capsys.readouterr().out  # 6 speech tokens for 2 s at f_Q = 3, as its comment says
