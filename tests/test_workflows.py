"""The GitHub workflows (nbdev's test and deploy, in this project's terms) cannot run here: this reads them
and checks that every command they call exists, so that a fork on GitHub tests and publishes as it should."""
import configparser
import re
import shlex
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML is a dev requirement: pip install -e .[dev]")

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"


def steps(name: str) -> list:
    "Every step of every job of a workflow file."
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def make_targets() -> set:
    "The targets the Makefile defines."
    return set(re.findall(r"^([A-Za-z][\w-]*):", (ROOT / "Makefile").read_text(), re.M))


def called(step: dict) -> list:
    "The commands a step's `run` calls, as argument lists."
    return [shlex.split(line) for line in step.get("run", "").splitlines() if line.strip()]


@pytest.mark.parametrize("name", ["test.yaml", "deploy.yaml"])
def test_every_command_a_workflow_calls_exists(name):
    targets = make_targets()
    for step in steps(name):
        for command in called(step):
            if command[0] == "make":
                missing = [t for t in command[1:] if not t.startswith("-") and t not in targets]
                assert not missing, f"{name}: make {missing} is not a target of the Makefile"
            elif command[0] == "bash":
                assert (ROOT / command[1]).is_file(), f"{name}: {command[1]} does not exist"
            else:
                assert command[0] == "git", f"{name}: an unexpected command {command}"
        if "uses" in step:  # an action, pinned to a major version
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@v\d+", step["uses"]), step["uses"]


def test_ci_workflow_runs_what_the_local_ci_runs():
    runs = [command for step in steps("test.yaml") for command in called(step)]
    assert ["bash", ".ci/run"] in runs
    script = (ROOT / ".ci" / "run").read_text()
    assert "nbdev_export" in script and "nbdev_clean" in script and "make test" in script


def test_deploy_publishes_the_folder_make_docs_builds():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "settings.ini")
    uploads = [s for s in steps("deploy.yaml") if s.get("uses", "").startswith("actions/upload-pages-artifact")]
    assert uploads and uploads[0]["with"]["path"] == cfg["DEFAULT"]["doc_path"]
    assert ["make", "docs"] in [c for s in steps("deploy.yaml") for c in called(s)]


def test_the_pinned_nbdev_set_is_the_one_that_works():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "settings.ini")
    dev = cfg["DEFAULT"]["dev_requirements"].split()
    for pin in ("nbdev==2.4.14", "execnb==0.1.18", "fastcore==1.14.5", "ghapi==1.1.1"):
        assert pin in dev, f"settings.ini's dev_requirements lack {pin}"
