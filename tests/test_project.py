"""The project's promises about itself: README commands, CI and Docker agree."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def test_readme_starts_with_exactly_two_commands():
    commands = readme_commands()
    assert len(commands) == 2
    assert "labelgen" in commands[0] and "pytest" in commands[1]


def test_ci_runs_exactly_the_readme_test_command():
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert readme_commands()[1] in ci_lines
    assert ci_lines[1].startswith("#") and "set -euo pipefail" in ci_lines


def test_dockerfile_installs_like_readme():
    install = readme_commands()[0].split(" && labelgen")[0]
    steps = [part.strip() for part in install.split("&&")]
    docker = (ROOT / "Dockerfile").read_text().replace("--no-cache-dir ", "")
    run_lines = [line for line in docker.splitlines() if line.startswith("RUN pip install torch==2.13.0 -e .")]
    assert len(run_lines) == 1
    assert [part.strip() for part in run_lines[0].removeprefix("RUN ").split("&&")] == steps
    copied = {word for line in docker.splitlines() if line.startswith("COPY ") for word in line.split()[1:-1]}
    assert {"setup.cfg", "pyproject.toml", "README.md", "labelgen", "train"} <= copied


def test_pipeline_recipes_parse():
    import py_compile
    import subprocess

    for script in sorted((ROOT / "pipelines").glob("*.sh")):
        result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, f"{script.name}: {result.stderr}"
        assert re.search(r"^\s*(labelgen|svc-\w+) ", script.read_text(), re.M), script.name
    for module in sorted((ROOT / "pipelines").glob("*.py")):
        py_compile.compile(str(module), doraise=True)
