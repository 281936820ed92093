"""The host's pip settings as one pip.conf for a container build, and the local paths it names.

``container_check.sh`` gives a build the pip settings of the machine it runs on (index URLs, find-links
folders, a certificate bundle, constraints), for that build only: this writes them as one pip.conf in
which every local path P reads INNER/host/P, and prints each host path to bind there (one a line).

    python3 -m pip config list | python3 pipelines/pip_settings.py OUT.conf INNER
"""
from __future__ import annotations

import ast
import os
import sys
from collections.abc import Iterable
from urllib.parse import quote, unquote, urlparse

# `pip install` reads [global], then [install], then the PIP_* variables (`pip config list` calls them :env:).
PRECEDENCE = {"global": 0, "install": 1, ":env:": 2}


def install_settings(config_list: Iterable[str]) -> dict[str, str]:
    """``{option: value}`` as ``pip install`` sees them, from ``pip config list``'s ``section.option='value'`` lines."""
    settings = {}
    entries = [line.strip().partition("=") for line in config_list if line.strip()]
    for name, _, value in sorted(entries, key=lambda entry: PRECEDENCE.get(entry[0].split(".", 1)[0], -1)):
        section, _, option = name.partition(".")
        if section in PRECEDENCE:
            settings[option] = ast.literal_eval(value)
    return settings


def rebase(settings: dict[str, str], inner: str) -> tuple[dict[str, str], list[str]]:
    """The settings with each existing local path P (or ``file:`` URL) moved to ``inner/host/P``, and the paths to bind.

    A local index (``file:///srv/pypi/simple``) links its files relative to its parent folder, so the parent
    is bound; a find-links folder, a certificate or a constraints file is bound itself.
    """
    binds = set()

    def moved(option: str, word: str) -> str:
        is_url = word.startswith("file:")
        path = unquote(urlparse(word).path) if is_url else word
        if not os.path.isabs(path) or not os.path.exists(path):
            return word  # a remote index, a plain number or flag
        binds.add(os.path.dirname(path) if option.endswith("index-url") else path)
        inside = f"{inner}/host{path}"
        return "file://" + quote(inside) if is_url else inside

    rebased = {option: " ".join(moved(option, word) for word in value.split()) for option, value in settings.items()}
    return rebased, sorted(binds)


def main(conf_path: str, inner: str) -> None:
    settings, binds = rebase(install_settings(sys.stdin), inner)
    with open(conf_path, "w") as conf:
        conf.write("[global]\n" + "".join(f"{option} = {value}\n" for option, value in settings.items()))
    for path in binds:
        print(path)


if __name__ == "__main__":
    main(*sys.argv[1:])
