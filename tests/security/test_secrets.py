"""Secrets and the stale lock, on real runs against the simulator (real CLI, real
ansible-runner, real XML-RPC).

One site for the module: the simulator's oned password is a fresh random string, the inventory
carries Ansible Vault values (``!vault``) that a step's playbook and the gates' gather play
really use, and a dead process holds the staging run lock. Then, in order: ``run`` (refused:
the lock), ``gates`` (the gather play), ``run --take-over`` (succeeds), a run whose front-end
step fails (error paths print more), and the reports of both runs in the three formats. Every
command after the refusal is watched through /proc while it goes, under umask 022; afterwards
every file under the site root (TMPDIR included) is searched for the three secrets.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.security.watch import ProcWatch, files_holding, files_scanned, run_watched
from tests.support import oned, site
from upgrader.journal.store import read_events

HOSTS = ["node01", "node02"]
ANSIBLE_VAULT = str(Path(sys.executable).parent / "ansible-vault")
STALE_RUN = "staging-gone"

# What the fixture playbook does with the vaulted value: what a real step does with a
# database password (no_log: Ansible would otherwise print it in the task's result).
SECRET_TASK = """
    - name: Use the vaulted secret the way a real step uses a password
      ansible.builtin.copy:
        content: "{{ vaulted_secret }}"
        dest: "{{ secret_sink }}/{{ marker_name }}-{{ inventory_hostname }}"
        mode: "0600"
      no_log: true
"""


@dataclass
class Scene:
    """The module's site, and what each command did to it."""

    root: Path
    config: Path
    sink: Path  # where the "hosts" put what the playbook handed them
    secrets: dict[str, str]
    keep: tuple[Path, ...]  # the files meant to hold a secret: credentials, vault password
    env: dict[str, str]
    stale_pid: int
    refused: subprocess.CompletedProcess[str]
    runs_after_refusal: list[str]
    markers_after_refusal: list[str]
    runs: dict[str, tuple[subprocess.CompletedProcess[str], ProcWatch]] = field(
        default_factory=dict
    )
    run_ids: dict[str, str] = field(default_factory=dict)
    gates: tuple[subprocess.CompletedProcess[str], ProcWatch] | None = None
    outputs: list[str] = field(default_factory=list)  # every stdout and stderr

    def watches(self) -> list[tuple[str, ProcWatch]]:
        """Every watched command's watch, by name: gates, ok, failed."""
        out = [(name, watch) for name, (_, watch) in self.runs.items()]
        return ([("gates", self.gates[1])] if self.gates else []) + out


def _seeded_simulator(work: Path, password: str) -> oned.Simulator:
    """A 3.2.1 cloud whose oneadmin password is ``password`` (set when the database is made;
    ``oned.start`` then rewrites its own one_auth, which only a new database reads)."""
    auth = oned.write_auth(work, password)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "upgrader.lab.oned.seed",
            "--version",
            "3.2.1",
            "--db",
            str(work / "one.db"),
            "--one-auth",
            str(auth),
            "--hosts",
            "2",
            "--vms",
            "0",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    auth.unlink()
    sim = oned.start(work, "3.2.1", speed=50)
    sim.session = f"oneadmin:{password}"
    assert sim.raw("one.hostpool.info")[0], "the cloud takes the random password"
    return sim


def _vaulted(vault_file: Path, name: str, value: str) -> str:
    """``name: !vault |`` and the encrypted value, as a line of the inventory's ``all.vars``
    (the value goes in on stdin, never on a command line)."""
    encrypted = subprocess.run(
        [
            ANSIBLE_VAULT,
            "encrypt_string",
            "--vault-password-file",
            str(vault_file),
            "--stdin-name",
            name,
        ],
        input=value,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    block = [line.strip() for line in encrypted.splitlines()[1:] if line.strip()]
    return f"    {name}: !vault |\n" + "".join(f"      {b}\n" for b in block)


def _add_vault(root: Path, config: Path, sink: Path, vault_password: str, value: str) -> Path:
    """A vault password file, ``!vault`` values in the inventory, the key in the config, and
    the first step's playbook: the fixture's, plus a task that uses the value. The gate play's
    libvirtd command is vaulted too: the gates see libvirtd only if the vault reached them."""
    vault_file = root / "vault.pass"
    vault_file.write_text(vault_password + "\n")
    vault_file.chmod(0o600)
    inventory = root / "inventory.yml"
    text = inventory.read_text()
    for line in ("\n  vars:\n", "    libvirtd_status_command: 'true'\n"):
        assert text.count(line) == 1, text
    text = text.replace(
        "    libvirtd_status_command: 'true'\n",
        _vaulted(vault_file, "libvirtd_status_command", "true"),
    )
    text = text.replace(
        "\n  vars:\n",
        "\n  vars:\n"
        + _vaulted(vault_file, "vaulted_secret", value)
        + f"    secret_sink: {sink}\n",
    )
    inventory.write_text(text)
    doc = yaml.safe_load(config.read_text())
    for env in doc["environments"].values():
        env["vault_password_file"] = vault_file.name  # relative: to the config's directory
    config.write_text(yaml.safe_dump(doc))
    mark = (root / "playbooks" / "mark.yml").read_text()
    (root / "playbooks" / "secret.yml").write_text(mark.rstrip("\n") + "\n" + SECRET_TASK)
    runbook = root / "runbooks" / "opennebula-3.2-to-3.4.yml"
    doc = yaml.safe_load(runbook.read_text())
    assert doc["steps"][0]["id"] == "prepare"
    doc["steps"][0]["playbook"] = "secret.yml"
    runbook.write_text(yaml.safe_dump(doc, sort_keys=False))
    return vault_file


def _stale_lock(root: Path) -> int:
    """The staging lock of a run whose process is gone; returns that process's pid."""
    code = (
        "import sys; from pathlib import Path; from upgrader.run.lock import RunLock; "
        f"RunLock.acquire(Path(sys.argv[1]), 'staging', '{STALE_RUN}', "
        "expiry_seconds=3600)"
    )
    subprocess.run([sys.executable, "-c", code, str(root / "runs" / "locks")], check=True)
    return int(json.loads((root / "runs" / "locks" / "staging.lock").read_text())["pid"])


def _run_dirs(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "runs").glob("staging-*") if p.name != STALE_RUN)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    root = tmp_path_factory.mktemp("secrets-site")
    sink = tmp_path_factory.mktemp("secrets-hosts")
    values = {
        "oned password": f"oned-{secrets.token_hex(16)}",
        "vault password": f"vault-{secrets.token_hex(16)}",
        "vaulted value": f"vaulted-{secrets.token_hex(16)}",
    }
    sim = _seeded_simulator(tmp_path_factory.mktemp("secrets-oned"), values["oned password"])
    try:
        config = site.make_site(root, sim, HOSTS)
        vault_file = _add_vault(
            root, config, sink, values["vault password"], values["vaulted value"]
        )
        (root / "tmp").mkdir()  # TMPDIR: a traceback file of an internal error lands here
        env = {**os.environ, "UPGRADER_CONFIG": "", "TMPDIR": str(root / "tmp")}
        stale_pid = _stale_lock(root)
        refused = subprocess.run(
            site.command(config, "run", "3.6", "--stage", "--yes"),
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
            check=False,
        )
        scene = Scene(
            root,
            config,
            sink,
            values,
            (root / "one_auth", vault_file),
            env,
            stale_pid,
            refused,
            _run_dirs(root),
            site.markers(root),
        )
        scene.outputs += [refused.stdout, refused.stderr]
        scene.gates = run_watched(
            site.command(config, "gates", "--stage", "--gate", "libvirtd-alive", "--wait", "0"),
            values,
            cwd=root,
            env=env,
        )
        scene.outputs += [scene.gates[0].stdout, scene.gates[0].stderr]
        _run(
            scene,
            "ok",
            "run",
            "3.6",
            "--stage",
            "--yes",
            "--take-over",
            "--report",
            str(root / "ok-report.html"),
        )
        runbook = root / "runbooks" / "opennebula-3.2-to-3.4.yml"
        doc = yaml.safe_load(runbook.read_text())
        doc["steps"][1]["playbook"] = "fail.yml"  # the front end's step fails
        runbook.write_text(yaml.safe_dump(doc, sort_keys=False))
        _run(scene, "failed", "run", "3.6", "--stage", "--yes")
        for run_id in scene.run_ids.values():
            for fmt in ("md", "html", "json"):
                out = root / "reports" / f"{run_id}.{fmt}"
                out.parent.mkdir(exist_ok=True)
                done = subprocess.run(
                    site.command(config, "report", run_id, "--format", fmt, "-o", str(out)),
                    cwd=root,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=60,
                    umask=0o022,
                    check=False,
                )
                assert done.returncode == 0, done.stderr
                scene.outputs += [done.stdout, done.stderr]
        yield scene
    finally:
        sim.stop()


def _run(scene: Scene, name: str, *args: str) -> None:
    before = set(_run_dirs(scene.root))
    result, watch = run_watched(
        site.command(scene.config, *args), scene.secrets, cwd=scene.root, env=scene.env
    )
    scene.runs[name] = (result, watch)
    scene.outputs += [result.stdout, result.stderr]
    new = sorted(set(_run_dirs(scene.root)) - before)
    assert len(new) == 1, (name, new, result.stderr)
    scene.run_ids[name] = new[0]


def test_run_refuses_a_dead_processs_lock_and_take_over_journals_it(scene: Scene) -> None:
    refused = scene.refused
    assert refused.returncode == 4, refused.stderr
    lines = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert refused.stderr.rstrip().endswith(lines[0])  # after the plan, one line says why
    assert f"stale lock of run {STALE_RUN} (pid {scene.stale_pid} is not running)" in lines[0]
    assert "--take-over" in lines[0]
    assert scene.runs_after_refusal == [] and scene.markers_after_refusal == []  # nothing ran

    ok, _ = scene.runs["ok"]
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == scene.run_ids["ok"]
    events = read_events(scene.root / "runs" / scene.run_ids["ok"] / "journal.jsonl")
    notes = [e.get("text") for e in events if e.type == "note"]
    assert f"took over the stale lock of run {STALE_RUN} (pid {scene.stale_pid})" in notes
    # released at the end: the next run needs no --take-over
    assert not (scene.root / "runs" / "locks" / "staging.lock").exists()


def test_the_vaulted_value_reached_the_play_that_uses_it(scene: Scene) -> None:
    ok, _ = scene.runs["ok"]
    assert ok.returncode == 0, ok.stderr
    plays = [
        c
        for _, w in scene.watches()
        for c in w.commands  # ours, not other tests'
        if "ansible-playbook" in c and f" -i {scene.root}/" in c
    ]
    assert len(plays) >= 8 and all(" --vault-password-file " in c for c in plays), plays
    value = scene.secrets["vaulted value"]
    handed = {p.name: p.read_text() for p in scene.sink.iterdir()}
    assert handed == {f"prepare-{host}": value for host in HOSTS}
    failed, _ = scene.runs["failed"]
    assert failed.returncode == 1 and "the fixture step failed on node01" in failed.stderr


def test_the_watch_sees_a_secret_on_a_command_line_and_in_an_environment(tmp_path: Path) -> None:
    """The watch itself: a short-lived process that shows the secret is caught both ways."""
    secret = f"watched-{secrets.token_hex(8)}"
    script = "import time; time.sleep(0.5)"
    _, by_argv = run_watched(
        [sys.executable, "-c", script, secret], {"s": secret}, cwd=tmp_path, env=os.environ
    )
    _, by_env = run_watched(
        [sys.executable, "-c", script],
        {"s": secret},
        cwd=tmp_path,
        env={**os.environ, "SOME_TOKEN": secret},
    )
    assert {s.where for s in by_argv.sightings} == {"cmdline"}
    assert {s.where for s in by_env.sightings} == {"environ"}


def test_the_gate_play_reads_the_vault_too(scene: Scene) -> None:
    assert scene.gates is not None
    result, watch = scene.gates
    assert result.returncode == 0, result.stderr
    assert "libvirtd-alive" in result.stdout + result.stderr
    assert watch.saw("gather-host-facts.yml", f" -i {scene.root}/")


@pytest.mark.parametrize("run", ["gates", "ok", "failed"])
def test_no_secret_on_any_command_line_or_environment_while_a_run_goes(
    scene: Scene, run: str
) -> None:
    watch = dict(scene.watches())[run]
    assert watch.rounds >= 20, "the watch did not watch"
    command = "upgrader gates" if run == "gates" else "upgrader run 3.6"
    assert watch.saw("ansible-playbook", f" -i {scene.root}/"), "saw none of its plays"
    assert watch.saw(command, str(scene.config)), "did not see the command itself"
    assert [str(s) for s in watch.sightings] == []


def test_no_secret_in_any_file_the_tool_wrote_or_in_what_it_printed(scene: Scene) -> None:
    roots = [scene.root]
    assert files_scanned(roots) > 100  # journals, state files, runner artifacts, reports
    assert list((scene.root / "runs" / scene.run_ids["failed"] / "steps").rglob("stdout"))
    assert files_holding(roots, scene.secrets, skip=scene.keep) == []
    for label, value in scene.secrets.items():
        assert not any(value in text for text in scene.outputs), label


def test_run_directories_journals_and_reports_are_owner_only_under_umask_022(
    scene: Scene,
) -> None:
    runs = scene.root / "runs"
    loose = []
    for top in [runs / run_id for run_id in scene.run_ids.values()]:
        for path in [top, *top.rglob("*")]:
            mode = stat.S_IMODE(path.lstat().st_mode)
            if path.is_symlink():
                continue
            want = 0o700 if path.is_dir() else 0o600
            if mode != want:
                loose.append(f"{oct(mode)} {path.relative_to(runs)}")
    assert loose == []
    assert stat.S_IMODE(runs.stat().st_mode) == 0o700
    for report in [scene.root / "ok-report.html", *(scene.root / "reports").iterdir()]:
        assert stat.S_IMODE(report.stat().st_mode) == 0o600, report


@pytest.mark.parametrize("mode", [0o640, 0o604], ids=lambda m: f"{m:04o}")
def test_a_vault_password_file_others_may_read_is_refused(
    scene: Scene, tmp_path: Path, mode: int
) -> None:
    vault_file = tmp_path / "open.vault"
    shutil.copy(scene.keep[1], vault_file)
    vault_file.chmod(mode)
    doc = yaml.safe_load(scene.config.read_text())
    doc["environments"]["staging"]["vault_password_file"] = str(vault_file)
    doc["environments"]["production"]["vault_password_file"] = str(scene.keep[1])
    config = tmp_path / "upgrader.yml"
    config.write_text(yaml.safe_dump(doc))
    before = _run_dirs(scene.root), site.markers(scene.root)
    result = site.upgrader(config, "run", "3.6", "--stage", "--yes")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert f"permissions 0{mode:o} for '{vault_file}' are too open" in lines[0]
    assert (_run_dirs(scene.root), site.markers(scene.root)) == before
