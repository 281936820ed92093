"""The project's promises about itself: README commands, CI and Docker agree."""
import os
import re

from tests.helpers import REPO_ROOT

ROOT = REPO_ROOT


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


def test_ci_turns_the_missing_data_and_browser_skips_into_failures():
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    test_line = ci_lines.index(readme_commands()[1])
    assert ci_lines.index("export SVC_REQUIRE_LFW=1 SVC_REQUIRE_BROWSER=1") < test_line
    assert ci_lines.index("command -v chromium || (apt-get update && apt-get install -y chromium)") < test_line


def test_tests_that_need_lfw_skip_with_one_reason_or_fail_when_required(tmp_path, monkeypatch):
    import pytest

    from tests.helpers import lfw_parts_or_skip

    monkeypatch.setenv("SVC_LFW_PARTS", str(tmp_path / "absent"))
    monkeypatch.delenv("SVC_REQUIRE_LFW", raising=False)
    reason = f"LFW Part Labels not found at {tmp_path / 'absent'}; set SVC_LFW_PARTS=<dir> to run these"
    with pytest.raises(pytest.skip.Exception, match=re.escape(reason)):
        lfw_parts_or_skip()
    monkeypatch.setenv("SVC_REQUIRE_LFW", "1")
    with pytest.raises(pytest.fail.Exception, match=re.escape(reason)):
        lfw_parts_or_skip()
    (tmp_path / "absent" / "splits").mkdir(parents=True)
    (tmp_path / "absent" / "images").mkdir()
    (tmp_path / "absent" / "splits" / "test.txt").write_text("x\n")
    assert lfw_parts_or_skip() == tmp_path / "absent"


def test_dockerfile_installs_like_readme():
    install = readme_commands()[0].split(" && labelgen")[0]
    steps = [part.strip() for part in install.split("&&")]
    # The image adds the s3 extra (stores on object storage, for cluster jobs) to README's install.
    docker = (ROOT / "Dockerfile").read_text().replace("--no-cache-dir ", "").replace('-e ".[s3]"', "-e .")
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
        # A recipe runs our tools: a console script, or one of our measurement programs, itself or through
        # the shell functions of pipelines/ it sources (paper_steps.sh).
        text = script.read_text()
        text += "".join((ROOT / "pipelines" / name).read_text()
                        for name in re.findall(r'^\. "\$here/pipelines/(\w+\.sh)"', text, re.M))
        assert re.search(r"^\s*(labelgen|svc-\w+) |benchmarks/\w+\.py", text, re.M), script.name
    for module in sorted((ROOT / "pipelines").glob("*.py")):
        py_compile.compile(str(module), doraise=True)


def test_pipeline_scripts_that_are_run_are_executable():
    # The docs run them as `pipelines/NAME.sh`; only files that are sourced (no shebang) may lack the bit.
    for script in sorted((ROOT / "pipelines").glob("*.sh")):
        if script.read_text().startswith("#!"):
            assert os.access(script, os.X_OK), f"{script.name}: chmod +x (git update-index --chmod=+x)"


def console_scripts() -> dict:
    """``{script name: click command}`` from setup.cfg's entry points."""
    import configparser
    import importlib

    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    scripts = {}
    for line in config["options.entry_points"]["console_scripts"].strip().splitlines():
        name, target = (part.strip() for part in line.split("="))
        module, function = target.split(":")
        scripts[name] = getattr(importlib.import_module(module), function)
    return scripts


def documented_invocations() -> list[tuple[str, list[str]]]:
    """``(where, argv)`` of every call of our tools in README's, docs' and pipelines' shell code."""
    import shlex

    texts = {str(path.relative_to(ROOT)): "\n".join(re.findall(r"```bash\n(.*?)```", path.read_text(), re.S))
             for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
                          *sorted((ROOT / "pipelines").glob("*.md"))]}
    texts.update({str(path.relative_to(ROOT)): path.read_text() for path in sorted((ROOT / "pipelines").glob("*.sh"))})
    names = set(console_scripts())
    calls = []
    for where, text in texts.items():
        for line in text.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0]
            for segment in re.split(r"&&|\|\||;|\|", line):
                try:
                    words = shlex.split(segment)
                except ValueError:
                    continue
                if words and words[0] in names:
                    calls.append((where, words))
    return calls


def test_help_texts_render_without_printf_escapes():
    """Click prints help text as written: a ``%%`` meant for printf-style formatting shows doubled."""
    import click

    for name, command in console_scripts().items():
        commands = [command, *command.commands.values()] if isinstance(command, click.Group) else [command]
        for each in commands:
            text = each.get_help(click.Context(each, info_name=name))
            assert "%%" not in text, f"{name} {each.name}"
    run = console_scripts()["labelgen"].commands["run"]
    assert "i % N == K" in run.get_help(click.Context(run, info_name="run"))


def test_documented_commands_use_only_options_that_exist():
    import click

    scripts = console_scripts()
    calls = documented_invocations()
    assert {argv[0] for _, argv in calls} >= {"labelgen", "svc-train", "svc-loop", "svc-export", "svc-eval"}
    for where, argv in calls:
        command, rest = scripts[argv[0]], argv[1:]
        if isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
            assert rest[0] in command.commands, f"{where}: {' '.join(argv)}: no subcommand {rest[0]!r}"
            command, rest = command.commands[rest[0]], rest[1:]
        known = {name for param in command.params for name in (*param.opts, *param.secondary_opts)}
        known |= {"-h", "--help"}
        for word in rest:
            if word.startswith("--"):
                assert word.split("=")[0] in known, f"{where}: {' '.join(argv)}: unknown option {word}"
