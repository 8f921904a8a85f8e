import re
import subprocess
import sys

from tests.conftest import REPO


def test_ci_runs_the_readme_test_command_verbatim():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)\n```", quick_start, re.S)
    assert len(commands) == 2  # install + main job; test extras + tests
    ci_lines = (REPO / ".ci/run").read_text(encoding="utf-8").splitlines()
    assert commands[1] in ci_lines


def test_readme_documents_every_config_key():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    reference = subprocess.run([sys.executable, str(REPO / "scripts/config_reference.py")], capture_output=True,
                               text=True, check=True).stdout
    assert reference.strip() in readme
