"""Differential, generated: ``.env`` files read by our port and by Compose itself agree.

Hypothesis writes ``.env`` files from the pieces that make parsers disagree (quotes, escapes,
comments, ``export``, ``KEY: value``, references with every operator, stray braces and
dollars, line breaks inside quotes). Compose reports what it read through labels of a
compose file (``${K0-__unset__}``, ...); our ``read_env_files`` must give the same values, and
must fail exactly when compose refuses the file. One ``config`` call per example.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from compose_rollback.dotenv import EnvFileError, TemplateError, read_env_files
from support.helpers import clean_env

pytestmark = pytest.mark.docker

KEYS = ("K0", "K1", "K2", "K3")
PIECES = ["a", "b", " ", "  ", "#", " #", "$", "$$", "${K0}", "${K1:-d}", "${UNSET:-x y}",
          "${K0:+alt}", "${K2-}", "${UNSET?}", "$K1", "${", "{", "}", "'", '"', "\\", "\\n",
          "\\$", '\\"', "\\'", "\\0101", "\\c", ":", "=", "\t", "\n", "é"]
VALUES = st.lists(st.sampled_from(PIECES), max_size=6).map("".join)
LINES = st.tuples(st.sampled_from(KEYS), st.sampled_from(["=", "= ", ": ", " = "]),
                  st.sampled_from(["", "'", '"']), VALUES, st.booleans()).map(
    lambda t: f"{'export ' if t[4] else ''}{t[0]}{t[1]}{t[2]}{t[3]}{t[2]}")
FILES = st.lists(st.one_of(LINES, st.sampled_from(["# note", "", "K3", "  K2=x # c"])),
                 min_size=1, max_size=5).map("\n".join)
COMPOSE = "services:\n  s:\n    image: crt-never-pulled:1\n    labels:\n" + "".join(
    f"      {k}: \"${{{k}-__unset__}}\"\n" for k in KEYS)


def _compose_reads(folder: Path) -> dict[str, str] | None:
    """What compose read from ``folder/.env``, or None if it refused the file."""
    done = subprocess.run(["docker", "compose", "config", "--format", "json"], cwd=folder,
                          env=clean_env({"PWD": str(folder)}), capture_output=True, text=True,
                          timeout=60, check=False)
    if done.returncode != 0:
        assert ".env" in done.stderr or "Invalid template" in done.stderr \
            or "required variable" in done.stderr, done.stderr
        return None
    labels: dict[str, str] = json.loads(done.stdout)["services"]["s"]["labels"]
    return {k: v.replace("$$", "$") for k, v in labels.items()}  # config escapes every $


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=FILES)
@example(text='K0="a \\"b\\" \\0101 \\012 $K1"\nK1=${K0:+set}')
@example(text="K0='it''s'\nexport K1: ${K0:-d} # c\nK2")
def test_env_files_read_as_compose_reads_them(text: str, tmp_path_factory: pytest.TempPathFactory
                                              ) -> None:
    folder = tmp_path_factory.mktemp("dotenv")
    (folder / "compose.yaml").write_text(COMPOSE)
    (folder / ".env").write_text(text + "\n", encoding="utf-8")
    expected = _compose_reads(folder)
    try:
        values = read_env_files([folder / ".env"], {})
    except (EnvFileError, TemplateError) as error:
        assert expected is None, f"compose reads {expected} but we refused: {error}"
        return
    assert expected is not None, f"compose refuses the file but we read {values}"
    assert {k: values.get(k, "__unset__") for k in KEYS} == expected
