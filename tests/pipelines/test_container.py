"""The container image's static facts, which pipelines/container_check.sh (run by .ci/run) relies on.

Building the image and labelling the sample inside it takes minutes and root, so that is CI's step of its
own, not a test; these checks are cheap and hold on any machine.
"""
import configparser
import os
import subprocess
import sys
from tests.helpers import REPO_ROOT

ROOT = REPO_ROOT
CHECK = ROOT / "pipelines" / "container_check.sh"

# Each found missing by running the image without it (see the Dockerfile's comment): OpenCV's cv2 loads
# libGL.so.1 and libgthread-2.0.so.0, MediaPipe's FaceLandmarker libEGL.so.1 and libGLESv2.so.2.
SYSTEM_PACKAGES = {"libgl1", "libglib2.0-0", "libegl1", "libgles2"}


def dockerfile_instructions() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_the_image_installs_the_system_libraries_the_wheels_load():
    installs = [line for line in dockerfile_instructions() if line.startswith("RUN ") and "apt-get install" in line]
    assert len(installs) == 1
    words = installs[0].split("apt-get install", 1)[1].split("&&")[0].split()
    assert SYSTEM_PACKAGES <= {word for word in words if not word.startswith("-")}


def test_the_default_command_is_labelgen_help():
    instructions = dockerfile_instructions()
    assert 'ENTRYPOINT ["labelgen"]' in instructions and 'CMD ["--help"]' in instructions


def test_the_build_context_is_what_the_dockerfile_copies():
    patterns = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and line[0] != "#"]
    assert patterns[0] == "*"  # everything else (.venv, .git, stores) stays out of the context
    allowed = {pattern[1:] for pattern in patterns if pattern.startswith("!")}
    copied = {word for line in dockerfile_instructions() if line.startswith("COPY ") for word in line.split()[1:-1]}
    assert copied == allowed and all((ROOT / name).exists() for name in copied)


def test_the_check_is_executable_and_parses():
    assert os.access(CHECK, os.X_OK)
    parsed = subprocess.run(["bash", "-n", str(CHECK)], capture_output=True, text=True)
    assert parsed.returncode == 0, parsed.stderr


def test_ci_runs_the_check_after_the_tests_with_its_own_timing_line():
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    pytest_line = next(i for i, line in enumerate(lines) if line.endswith("python -m pytest"))
    check_line = lines.index("pipelines/container_check.sh")
    assert pytest_line < check_line
    # An install failing inside the README line's && list does not stop set -e: the next line must.
    assert lines[pytest_line + 1].startswith("#") and "exit" in lines[pytest_line + 2]
    assert any("apt-get install -y buildah debootstrap" in line for line in lines[pytest_line:check_line])
    assert any(line.startswith('echo "container_check: ') for line in lines[check_line + 1:])


def test_the_hosts_pip_settings_reach_the_build_moved_under_its_mount(tmp_path):
    wheels, index, cert = tmp_path / "wheels", tmp_path / "pypi" / "simple", tmp_path / "ca.crt"
    wheels.mkdir()
    index.mkdir(parents=True)
    cert.write_text("certificate")
    config_list = "\n".join([  # what `pip config list` prints: section.option=repr(value)
        f"global.find-links='{tmp_path}/absent'",
        f":env:.find-links='{wheels}'",  # PIP_* variables win over every file
        f"global.extra-index-url='file://{index} https://example.org/simple'",
        f"global.cert='{cert}'",
        "global.timeout='10'",
        "install.timeout='20'",  # [install] wins over [global] for pip install
        "download.timeout='30'",  # another command's section: not the build's
        "",
    ])
    conf = tmp_path / "pip.conf"
    run = subprocess.run([sys.executable, str(ROOT / "pipelines" / "pip_settings.py"), str(conf), "/etc/xdg/pip"],
                         input=config_list, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    settings = configparser.ConfigParser()
    settings.read(conf)
    inner = f"/etc/xdg/pip/host{tmp_path}"
    assert dict(settings["global"]) == {
        "find-links": f"{inner}/wheels",
        "extra-index-url": f"file://{inner}/pypi/simple https://example.org/simple",
        "cert": f"{inner}/ca.crt",
        "timeout": "20",
    }
    # The index's parent is bound: its pages link their files as ../../files/...
    assert run.stdout.split() == sorted([str(wheels), str(tmp_path / "pypi"), str(cert)])
