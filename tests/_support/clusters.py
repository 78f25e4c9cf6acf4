"""Real schedulers for the launcher tests: SLURM and Grid Engine daemons, started as root.

Each class starts its daemons with a private configuration, waits until the
node takes jobs, and stops what it started, by PID. Facts behind the set-up:
../shared/notes/launchers.md (and docs/environments.md).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests._support.nodes import Nodes


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any launcher's variables (and without policy switches)."""
    drop = (
        "SLURM_",
        "OMPI_",
        "PMI",
        "TORCHELASTIC",
        "MASTER_",
        "LSB_",
        "JSM_",
        "PE_HOSTFILE",
        "JOB_ID",
        "NSLOTS",
        "LOCAL_RANK",
        "RANK",
        "WORLD_SIZE",
        "GROUP_RANK",
        "PLUGIN_REGISTRY_",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(extra)
    return env


class Unavailable(RuntimeError):
    """The scheduler cannot run here; the message says why (tests skip with it)."""


def _run(
    *cmd: str, env: dict[str, str] | None = None, check: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, env=env, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def _kill_pidfile(path: Path, grace: float = 15) -> None:
    """SIGTERM the daemon whose PID the file holds; SIGKILL it after ``grace`` seconds."""
    with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
        pid = int(path.read_text().strip())
        os.kill(pid, signal.SIGTERM)
        deadline = time.time() + grace
        while time.time() < deadline:
            os.kill(pid, 0)
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)


def _require(*programs: str) -> None:
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        raise Unavailable(f"not installed: {', '.join(missing)} (.ci/setup installs them)")
    if os.geteuid() != 0:
        raise Unavailable("the daemons are started as root, and this is not root")


class Munge:
    """munged, as the munge user; left running if it already was."""

    def __init__(self) -> None:
        self.started = False

    def start(self) -> None:
        if _run("pgrep", "-x", "munged", check=False).returncode == 0:
            return
        Path("/run/munge").mkdir(exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        _run("runuser", "-u", "munge", "--", "/usr/sbin/munged")
        self.started = True

    def stop(self) -> None:
        if self.started:
            _kill_pidfile(Path("/run/munge/munged.pid"))


class Slurm:
    """A one-node SLURM cluster with its configuration in ``directory``."""

    def __init__(self, directory: Path) -> None:
        _require("slurmctld", "slurmd", "sbatch", "srun", "munged")
        self.dir = directory
        self.host = socket.gethostname().split(".")[0]
        self.conf = directory / "slurm.conf"
        self.munge = Munge()
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    def _write_conf(self) -> None:
        for sub in ("state", "slurmd"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        cpus = os.cpu_count() or 1
        self.conf.write_text(
            f"""ClusterName=plugin-registry-tests
SlurmctldHost={self.host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
SlurmctldPidFile={self.dir}/slurmctld.pid
SlurmdPidFile={self.dir}/slurmd.pid
SlurmdSpoolDir={self.dir}/slurmd
StateSaveLocation={self.dir}/state
SlurmctldLogFile={self.dir}/slurmctld.log
SlurmdLogFile={self.dir}/slurmd.log
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
NodeName={self.host} CPUs={cpus} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""
        )

    def start(self) -> None:
        self._write_conf()
        self.munge.start()
        _run("slurmctld", env=self.env)
        _run("slurmd", env=self.env)
        deadline = time.time() + 60
        while time.time() < deadline:
            state = _run("sinfo", "-h", "-o", "%T", env=self.env, check=False).stdout.strip()
            if state == "idle":
                return
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"the SLURM node never became idle (state {state!r}); see {self.dir}")

    def stop(self) -> None:
        _kill_pidfile(self.dir / "slurmd.pid")
        _kill_pidfile(self.dir / "slurmctld.pid")
        self.munge.stop()

    def run(self, *cmd: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return _run(*cmd, env=self.env, timeout=timeout)


class SlurmOnNodes(Slurm):
    """SLURM across test nodes (:class:`~tests._support.nodes.Nodes`): slurmctld on the
    first, one slurmd on each (``NodeName=`` with its address), commands run on the first.

    munged runs on this host: its socket is a file, which every namespace shares.
    """

    def __init__(self, nodes: Nodes, directory: Path) -> None:
        super().__init__(directory)
        self.nodes = nodes
        self.host = nodes[0].name
        # sbatch and salloc export the submitting environment to the job: a MASTER_ADDR
        # left there would override the node list (seen: MASTER_ADDR=localhost).
        self.env = clean_env(SLURM_CONF=str(self.conf))

    def _write_conf(self) -> None:
        super()._write_conf()
        text = self.conf.read_text()
        head, _, _ = text.partition("NodeName=")
        head = (
            head.replace(
                f"SlurmctldHost={self.host}", f"SlurmctldHost={self.host}({self.nodes[0].address})"
            )
            .replace("slurmd.pid", "slurmd-%n.pid")
            .replace(
                "SlurmdSpoolDir=" + str(self.dir / "slurmd"), f"SlurmdSpoolDir={self.dir}/slurmd-%n"
            )
            .replace("slurmd.log", "slurmd-%n.log")
        )
        lines = "".join(
            f"NodeName={n.name} NodeAddr={n.address} CPUs={os.cpu_count() or 1} State=UNKNOWN\n"
            for n in self.nodes.nodes
        )
        self.conf.write_text(
            head + lines + "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n"
        )
        for n in self.nodes.nodes:
            (self.dir / f"slurmd-{n.name}").mkdir(exist_ok=True)

    def start(self) -> None:
        self._write_conf()
        self.munge.start()
        self.nodes.run(self.nodes[0], "slurmctld", env=self.env)
        for node in self.nodes.nodes:
            self.nodes.run(node, "slurmd", env=self.env)
        deadline = time.time() + 60
        states = ""
        while time.time() < deadline:
            states = self.run("sinfo", "-h", "-N", "-o", "%N %T", check=False).stdout
            if states.split()[1::2] == ["idle"] * self.nodes.count:
                return
            time.sleep(0.5)
        raise RuntimeError(f"the SLURM nodes never became idle ({states!r}); see {self.dir}")

    def stop(self) -> None:
        for node in self.nodes.nodes:
            _kill_pidfile(self.dir / f"slurmd-{node.name}.pid")
        _kill_pidfile(self.dir / "slurmctld.pid")
        self.munge.stop()

    def run(  # type: ignore[override]
        self,
        *cmd: str,
        timeout: float = 180,
        check: bool = True,
        env_extra: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """On the first node (where a user would log in)."""
        env = {**self.env, **(env_extra or {})}
        if not check:
            return subprocess.run(
                self.nodes.command(self.nodes[0], *cmd),
                env=env, capture_output=True, text=True, timeout=timeout,
            )  # fmt: skip
        return self.nodes.run(self.nodes[0], *cmd, env=env, timeout=timeout)

    def submit_and_wait(self, *sbatch_args: str, timeout: float = 180) -> str:
        """``sbatch`` a job and poll until it ends; its final state (COMPLETED, FAILED...).

        Not ``sbatch --wait``: it polls with growing sleeps, 30 s or more after the end.
        """
        job = self.run("sbatch", "--parsable", *sbatch_args).stdout.strip().split(";")[0]
        deadline = time.time() + timeout
        while time.time() < deadline:
            shown = self.run("scontrol", "show", "job", "-o", job, check=False).stdout
            state = dict(f.split("=", 1) for f in shown.split() if "=" in f).get("JobState")
            if state not in (None, "PENDING", "CONFIGURING", "RUNNING", "COMPLETING"):
                return state
            time.sleep(0.3)
        raise RuntimeError(f"SLURM job {job} did not end within {timeout} s")


class GridEngine:
    """Grid Engine's qmaster and execd on this host, with a 2-slot ``smp`` environment.

    Debian's packages leave an initialised cell in /var/lib/gridengine but start
    nothing. 127.0.0.1 resolves to "localhost" first here, so the host is aliased
    to localhost; jobs run as root, so min_uid/min_gid are 0 -- set before execd
    starts, which reads them once. The queue has no load thresholds: with the
    default ``np_load_avg=1.75`` a busy 2-core CI machine puts it in load alarm
    (state ``a``) and jobs never start.

    The cell is the system's: every change :meth:`start` makes (files in the
    cell's ``common`` directory, the global and scheduler configurations, the
    objects it adds) is undone by :meth:`stop`, also after a start that failed
    half-way.
    """

    ROOT = Path("/var/lib/gridengine")
    SPOOL = Path("/var/spool/gridengine")

    def __init__(self, directory: Path) -> None:
        _require("sge_qmaster", "sge_execd", "qsub", "qconf")
        if not (self.ROOT / "default" / "common" / "bootstrap").exists():
            raise Unavailable(f"no Grid Engine cell in {self.ROOT}: install gridengine-master")
        self.dir = directory
        self.env = {**os.environ, "SGE_ROOT": str(self.ROOT), "SGE_CELL": "default"}
        self.slots = 2
        self._undo: list[Callable[[], object]] = []
        self._qmaster_started = False
        self._execd_started = False

    def _keep_file(self, path: Path) -> None:
        """Note how ``path`` was, so that :meth:`stop` puts it back."""
        if path.exists():
            before = path.read_bytes()
            self._undo.append(lambda: path.write_bytes(before))
        else:
            self._undo.append(lambda: path.unlink(missing_ok=True))

    def _keep_config(self, show: str, modify: str) -> None:
        saved = self.dir / f"saved{show}"
        saved.write_text(self._qconf(show))
        self._undo.append(lambda: self._qconf(modify, str(saved)))

    def _qconf(self, *args: str, editor: str | None = None) -> str:
        env = {**self.env, "EDITOR": editor} if editor else self.env
        for _ in range(40):  # the qmaster drops connections while it settles
            proc = _run("qconf", *args, env=env, check=False)
            if "commlib error" not in proc.stderr:
                break
            time.sleep(0.5)
        if proc.returncode != 0:
            raise RuntimeError(f"qconf {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc.stdout

    def _editor(self, name: str, sed: str) -> str:
        script = self.dir / name
        script.write_text(f'#!/bin/sh\nsed -i {sed} "$1"\n')
        script.chmod(0o755)
        return str(script)

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        common = self.ROOT / "default" / "common"
        short = socket.gethostname().split(".")[0]
        for name in ("host_aliases", "act_qmaster"):
            self._keep_file(common / name)
        (common / "host_aliases").write_text(f"localhost {short}\n")
        (common / "act_qmaster").write_text("localhost\n")
        _run("/usr/sbin/sge_qmaster", env=self.env)
        self._qmaster_started = True
        deadline = time.time() + 30
        # -sh (admin hosts) answers on a fresh cell too; -ss fails there until a
        # submit host exists ("no submit host defined").
        while _run("qconf", "-sh", env=self.env, check=False).returncode != 0:
            if time.time() > deadline:
                raise RuntimeError("sge_qmaster did not answer within 30 s")
            time.sleep(0.3)
        submit_hosts = _run("qconf", "-ss", env=self.env, check=False).stdout.split()
        if "localhost" not in submit_hosts:
            self._qconf("-as", "localhost")
            self._undo.append(lambda: self._qconf("-ds", "localhost"))
        self._keep_config("-sconf", "-Mconf")
        self._keep_config("-ssconf", "-Msconf")
        config = self.dir / "global"
        lines = [line for line in self._qconf("-sconf").splitlines() if not line.startswith("#")]
        config.write_text(
            "\n".join(
                "min_uid 0"
                if line.startswith("min_uid")
                else "min_gid 0"
                if line.startswith("min_gid")
                else line
                for line in lines
            )
            + "\n"
        )
        self._qconf("-Mconf", str(config))
        # Schedule every second, not every 15: a test waits for each job.
        sched = self.dir / "sched"
        sched.write_text(
            "\n".join(
                "schedule_interval 0:0:1" if line.startswith("schedule_interval") else line
                for line in self._qconf("-ssconf").splitlines()
            )
            + "\n"
        )
        self._qconf("-Msconf", str(sched))
        if "smp" not in _run("qconf", "-spl", env=self.env, check=False).stdout.split():
            self._qconf(
                "-ap",
                "smp",
                editor=self._editor(
                    "edit-pe",
                    f"-e 's/^slots .*/slots {self.slots}/' "
                    "-e 's/^allocation_rule .*/allocation_rule $pe_slots/'",
                ),
            )
            self._undo.append(lambda: self._qconf("-dp", "smp"))
        if "localhost" not in _run("qconf", "-sel", env=self.env, check=False).stdout.split():
            exechost = self.dir / "exechost"
            exechost.write_text(
                "hostname localhost\nload_scaling NONE\ncomplex_values NONE\nuser_lists NONE\n"
                "xuser_lists NONE\nprojects NONE\nxprojects NONE\nusage_scaling NONE\n"
                "report_variables NONE\n"
            )
            self._qconf("-Ae", str(exechost))
            self._undo.append(lambda: self._qconf("-de", "localhost"))
        if "all.q" not in _run("qconf", "-sql", env=self.env, check=False).stdout.split():
            self._qconf(
                "-aq",
                "all.q",
                editor=self._editor(
                    "edit-queue",
                    "-e 's/^hostlist .*/hostlist localhost/' "
                    f"-e 's/^pe_list .*/pe_list smp/' -e 's/^slots .*/slots {self.slots}/'",
                ),
            )
            self._undo.append(lambda: self._qconf("-dq", "all.q"))
        else:
            before = self._qconf("-sq", "all.q")
            thresholds = next(
                (ln.split(None, 1)[1] for ln in before.splitlines() if ln.startswith("load_thr")),
                "np_load_avg=1.75",
            )
            self._undo.append(
                lambda: self._qconf("-rattr", "queue", "load_thresholds", thresholds, "all.q")
            )
        # Before execd starts: a loaded CI machine must not put the queue in alarm.
        self._qconf("-rattr", "queue", "load_thresholds", "NONE", "all.q")
        _run("/usr/sbin/sge_execd", env=self.env)
        self._execd_started = True
        _run("qmod", "-c", "all.q", env=self.env, check=False)
        deadline = time.time() + 60
        while time.time() < deadline:
            out = _run("qstat", "-f", env=self.env, check=False).stdout
            line = next((ln for ln in out.splitlines() if ln.startswith("all.q@")), "")
            fields = line.split()
            # "all.q@localhost BIP 0/0/2 0.03 lx-amd64" (a sixth field is a state: E, u, ...)
            if len(fields) == 5 and fields[3] != "-NA-":
                return
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"the Grid Engine queue never became ready:\n{out}")

    def stop(self) -> None:
        """Stop what :meth:`start` started and undo what it changed, newest first."""
        if self._execd_started:
            _run("qmod", "-d", "all.q", env=self.env, check=False)
            _kill_pidfile(self.SPOOL / "execd" / "localhost" / "execd.pid")
            self._execd_started = False
        while self._undo:
            undo = self._undo.pop()
            with contextlib.suppress(Exception):
                undo()
        if self._qmaster_started:
            _kill_pidfile(self.SPOOL / "qmaster" / "qmaster.pid")
            self._qmaster_started = False

    def qsub(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return _run("qsub", "-sync", "y", *args, env=self.env, timeout=timeout)
