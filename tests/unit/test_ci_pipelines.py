"""The example pipelines' syntax (examples/ci): GitHub Actions and GitLab CI against the
schemas their runners publish (vendored by check-jsonschema, offline), plus the keys each
runner requires read with ruamel.yaml; the Jenkinsfile's declarative skeleton. Every one
calls deploy.sh for each stage. No Jenkins, GitHub or GitLab runner is run here."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

CI = Path(__file__).resolve().parents[2] / "examples" / "ci"
STEPS = {"build", "test", "push", "deploy"}
CALL = re.compile(r"\./deploy\.sh (build|test|push|deploy)\b")


def _yaml(name: str) -> Any:
    return YAML(typ="safe", pure=True).load((CI / name).read_text())


@pytest.mark.parametrize(("name", "schema"), [("github-actions.yml", "vendor.github-workflows"),
                                              ("gitlab-ci.yml", "vendor.gitlab-ci")])
def test_the_runners_own_schema_accepts_the_file(name: str, schema: str) -> None:
    done = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema,
                           str(CI / name)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_schema_check_catches_a_broken_file(tmp_path: Path) -> None:
    """The check above can fail: a job without runs-on is refused."""
    data = (CI / "github-actions.yml").read_text()
    broken = tmp_path / "broken.yml"
    broken.write_text(re.sub(r"(?m)^\s+runs-on:.*\n", "", data))
    done = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema",
                           "vendor.github-workflows", str(broken)], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 1, done.stdout


def test_github_actions_has_what_the_runner_requires() -> None:
    data = _yaml("github-actions.yml")
    assert "on" in data and data["jobs"]
    called: set[str] = set()
    for job in data["jobs"].values():
        assert job["runs-on"] and job["steps"]
        for step in job["steps"]:
            assert "run" in step or "uses" in step, step
            called |= set(CALL.findall(step.get("run", "")))
    assert called == STEPS
    assert any(s.get("uses", "").startswith("actions/upload-artifact")
               and s["with"]["path"] == "rollback.json" and s.get("if") == "always()"
               for job in data["jobs"].values() for s in job["steps"])


def test_gitlab_ci_has_what_the_runner_requires() -> None:
    data = _yaml("gitlab-ci.yml")
    stages = data["stages"]
    jobs = {name: job for name, job in data.items()
            if isinstance(job, dict) and name not in ("variables", "default", "workflow")}
    called: set[str] = set()
    for name, job in jobs.items():
        assert job["script"], name
        assert job["stage"] in stages, name
        called |= {step for line in job["script"] for step in CALL.findall(line)}
    assert called == STEPS
    assert jobs["deploy"]["artifacts"] == {"when": "always", "paths": ["rollback.json"]}
    assert jobs["deploy"]["retry"]["exit_codes"] == 4  # the lock held: try again


# -- the Jenkinsfile: a small reader of Groovy's blocks ---------------------------------------
@dataclass
class Block:
    head: str
    children: list[Block] = field(default_factory=list)
    text: str = ""  # the block's own text (its children's left out)

    def find(self, pattern: str) -> list[Block]:
        return [c for c in self.children if re.fullmatch(pattern, c.head)]


def _blocks(source: str) -> Block:
    """Blocks by their heads (``stage('build')``), skipping strings and comments; unbalanced
    braces fail."""
    root, stack, head = Block("<file>"), [], ""
    stack.append(root)
    i = 0
    while i < len(source):
        ch, two = source[i], source[i:i + 2]
        if two == "//":
            i = source.find("\n", i) if "\n" in source[i:] else len(source)
            continue
        if two == "/*":
            end = source.find("*/", i + 2)
            assert end != -1, "an unclosed comment"
            i = end + 2
            continue
        if ch in "'\"":
            end = source.find(ch, i + 1)
            assert end != -1, f"an unclosed string at {i}"
            head += source[i:end + 1]
            stack[-1].text += source[i:end + 1]
            i = end + 1
            continue
        if ch == "{":
            block = Block(" ".join(head.split()))
            stack[-1].children.append(block)
            stack.append(block)
            head = ""
        elif ch == "}":
            assert len(stack) > 1, f"an unbalanced }} at {i}"
            stack.pop()
            head = ""
        else:
            head = "" if ch == "\n" else head + ch
            stack[-1].text += ch
        i += 1
    assert len(stack) == 1, f"{len(stack) - 1} unclosed block(s)"
    return root


def test_the_jenkinsfile_is_a_declarative_pipeline_calling_the_script() -> None:
    [pipeline] = _blocks((CI / "Jenkinsfile").read_text()).find("pipeline")
    assert re.search(r"(?m)^\s*agent\s+\S", pipeline.text), "pipeline needs an agent"
    [stages] = pipeline.find("stages")
    names, called = [], set()
    for stage in stages.children:
        match = re.fullmatch(r"stage\('([^']+)'\)", stage.head)
        assert match, stage.head
        names.append(match.group(1))
        [steps] = stage.find("steps")
        called |= set(CALL.findall(steps.text))
    assert names == ["build", "test", "push", "deploy"]
    assert called == STEPS
    [post] = pipeline.find("post")
    [always] = post.find("always")
    assert "archiveArtifacts artifacts: 'rollback.json'" in always.text
    assert post.find("failure")


def test_the_block_reader_refuses_unbalanced_braces() -> None:
    with pytest.raises(AssertionError, match="unclosed"):
        _blocks("pipeline { stages { stage('x') { steps { sh 'a' } }\n}")
    with pytest.raises(AssertionError, match="unbalanced"):
        _blocks("pipeline { } }")
    assert _blocks("x { sh '}' // }\n }").children[0].head == "x"
