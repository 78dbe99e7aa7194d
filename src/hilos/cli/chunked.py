"""`hilos scan`/`sweep` as chunked jobs: --checkpoint FILE, --resume FILE, --cluster ADDR.

Only when asked: --checkpoint FILE, --resume FILE (a chunked job's) or --cluster (checkpoint
next to the first output file unless --no-checkpoint); else a run is one piece with the default
checkpoint (cli.keep): chunks cost a short scan up to 2x. The job (targets with excludes
applied, ports, type, options, one seed) runs as chunks of the keyed walk, here or on a Dask
cluster; every completed chunk lands in the checkpoint (kept when done if the user named it). A
host is written once all its ports are in; the checkpoint pairs the hosts written with the
output files' lengths: a resumed run cuts them there and appends (each host once, XML closed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from hilos.cli.options import notifier, open_cli_outputs, parse_cli_targets
from hilos.cli.process import EXIT_INTERRUPTED, EXIT_OK
from hilos.errors import UsageError

if TYPE_CHECKING:  # the library is imported lazily, inside run()
    from hilos.output.progress import Progress

__all__ = [
    "add_options",
    "explicit",
    "open_appended",
    "output_files",
    "resumable_files",
    "run",
    "saved_options",
    "wanted",
]

# Options a resumed run takes from the command line rather than from its checkpoint.
_RUNTIME = ("resume", "handler", "quiet")


def add_options(p: argparse.ArgumentParser) -> None:
    """--cluster, --certs, --insecure, --checkpoint, --no-checkpoint, --resume."""
    p.add_argument(
        "--cluster",
        metavar="tls://ADDR:PORT",
        help="run the chunks on the hilos cluster (Dask) scheduler at ADDR:PORT "
        "(needs hilos[cluster]; --rate is then each worker's rate)",
    )
    p.add_argument(
        "--certs", metavar="DIR", help="the cluster's certificates (hilos cluster certs)"
    )
    p.add_argument("--insecure", action="store_true",
                   help="allow --cluster tcp:// (no TLS) on a loopback or lab address")  # fmt: skip
    p.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="run in chunks of about a second and keep their checkpoint in FILE: --resume FILE "
        "then sends at most a chunk again (FILE stays, marked finished, once the run completes; "
        "without it a run keeps its own next to its first output file, or in "
        "$XDG_STATE_HOME/hilos, and removes it when done)",
    )
    p.add_argument("--no-checkpoint", action="store_true",
                   help="keep no checkpoint (no --resume after a crash)")  # fmt: skip
    p.add_argument(
        "--resume",
        metavar="FILE",
        help="continue the run saved in checkpoint FILE (no other options needed; the outputs "
        "are appended to)",
    )


def explicit(args: argparse.Namespace) -> bool:
    """Did the command line ask for a chunked job (--checkpoint, --resume, --cluster)?"""
    return bool(args.cluster or args.checkpoint or args.resume)


def wanted(args: argparse.Namespace) -> bool:
    """Does this scan or sweep run as a chunked job? Only when the command line asks for it
    (--checkpoint, --resume, --cluster): a one-piece run is faster."""
    if getattr(args, "no_checkpoint", False) and (args.checkpoint or args.resume):
        raise UsageError("--no-checkpoint with --checkpoint/--resume: give one of them")
    return explicit(args)


def output_files(args: argparse.Namespace) -> list[str]:
    """The output files the options name (not stdout), -oA's base first."""
    files = [p for p in (args.output or []) if p != "-"]
    files += [p for _fmt, p in (getattr(args, "nmap_outputs", None) or []) if p != "-"]
    if args.output_all:
        files.insert(0, str(args.output_all))
    return files


def saved_options(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in vars(args).items():
        if key in _RUNTIME:
            continue
        try:
            json.dumps(value)
        except TypeError:
            continue
        out[key] = value
    return out


def _default_checkpoint(args: argparse.Namespace) -> str | None:
    """--checkpoint FILE, else with --cluster next to the first output file: FILE.checkpoint
    (none with --no-checkpoint, or when every output goes to stdout)."""
    if args.checkpoint:
        return str(args.checkpoint)
    if getattr(args, "no_checkpoint", False) or not args.cluster:
        return None
    files = output_files(args)
    return f"{files[0]}.checkpoint" if files else None


def _ports(args: argparse.Namespace) -> tuple[int, ...]:
    from hilos.targets.ports import exclude_ports, parse_ports, top_ports

    ports = parse_ports(args.ports) if args.ports else top_ports(args.top_ports or 1000)
    if args.exclude_ports:
        ports = exclude_ports(ports, args.exclude_ports)
    if not ports:
        raise UsageError("no ports left to scan after --exclude-ports")
    if args.shard:
        raise UsageError("--shard and a chunked scan (--cluster/--checkpoint) do not mix")
    return tuple(ports)


def _new_job(args: argparse.Namespace, kind: str, scan_type: str) -> Any:
    """A fresh checkpoint (not written yet) for the scan or sweep the options describe."""
    from hilos.resume import Checkpoint, JobSpec, space_cidrs
    from hilos.targets import random_seed

    targets = parse_cli_targets(args, notifier(args))
    if targets.size == 0:
        raise UsageError(f"no targets to {kind} (give addresses, CIDR ranges, names or -iL FILE)")
    sweep = kind == "sweep"
    spec = JobSpec(
        space_cidrs(targets),
        () if sweep else _ports(args),
        scan_type,
        discovery=not sweep and not args.no_discovery,
        rate=args.rate,
        timeout=args.timeout,
        retries=args.retries,
        threads=args.threads,
        seed=args.seed if args.seed is not None else random_seed(),
        banners=not sweep and args.banners,
        show_all=args.show_all,
        kind=kind,
        method=args.method if sweep else "auto",
    )
    names = {str(a): n for a, n in targets.names.items()}
    path = _default_checkpoint(args)
    keep = path is not None
    if path is None:
        import tempfile  # here: ~12 ms of imports every run would pay

        path = str(Path(tempfile.gettempdir()) / "hilos-unsaved.checkpoint")
    saved = saved_options(args)
    # --checkpoint FILE stays when the job is done (ChunkedJob.finish)
    saved.update(checkpoint=path if keep else None, checkpoint_named=bool(args.checkpoint))
    return Checkpoint(path, spec, saved, names), keep


def _executor(args: argparse.Namespace) -> Any:
    if not args.cluster:
        from hilos.resume import LocalExecutor

        return LocalExecutor()
    from hilos.cluster import require_distributed

    require_distributed()
    from hilos.cluster.client import DaskExecutor
    from hilos.cluster.security import parse_address, security_for

    address = parse_address(args.cluster, insecure=args.insecure, option="--cluster")
    return DaskExecutor(address, security_for(address, args.certs))


def _job_line(quiet: bool) -> Any:
    """The progress line of a chunked job: chunks, hosts up, workers and their pps."""
    from hilos.output.progress import Progress

    class JobLine(Progress):
        extra = ""

        def render(self, now: float | None = None) -> str:
            line = super().render(now)
            return f"{line}  {self.extra}" if self.extra else line

    return JobLine(sys.stderr, quiet=quiet, label="chunks")


def _load(
    args: argparse.Namespace, kind: str, pick_type: Any
) -> tuple[argparse.Namespace, Any, bool]:
    """(options, checkpoint, keep it?) of a resumed or a new job."""
    from hilos.resume import Checkpoint

    if args.resume:
        if args.targets or args.input_file or args.cluster or args.checkpoint:
            raise UsageError("--resume FILE takes the job from FILE: give no targets with it")
        ckpt = Checkpoint.load(args.resume)
        if ckpt.spec.kind != kind:
            raise UsageError(
                f"--resume {args.resume}: a {ckpt.spec.kind}: hilos {ckpt.spec.kind} --resume"
            )
        quiet = args.quiet
        args = argparse.Namespace(**{**vars(args), **ckpt.options})
        args.resume, args.quiet = None, quiet
        return args, ckpt, True
    scan_type, why = pick_type(args.type) if pick_type is not None else ("", "")
    ckpt, keep = _new_job(args, kind, "syn" if scan_type == "syn" else "connect")
    if why:
        notifier(args)(why)
    return args, ckpt, keep


def resumable_files(args: argparse.Namespace, kind: Literal["scan", "sweep"]) -> list[str]:
    """The output files a resumed run continues (not stdout; not HTML, written at close; not
    a device or pipe such as /dev/null: nothing to cut)."""
    from hilos.output import plan_outputs

    plan = plan_outputs(
        kind,
        args.format,
        args.output,
        args.output_all,
        explicit=getattr(args, "nmap_outputs", None),
    )
    return [s.path for s in plan if not s.to_stdout and s.format != "html" and _regular(s.path)]


def _regular(path: str) -> bool:
    """A regular file, or none yet (it will be one)."""
    return os.path.isfile(path) or not os.path.lexists(path)


def _open(
    args: argparse.Namespace,
    kind: Literal["scan", "sweep"],
    progress: Progress,
    ckpt: Any,
    resumed: bool,
) -> Any:
    """The outputs: new ones (their lengths after the headers go to the checkpoint), or a
    resumed job's, each cut to the length the checkpoint pairs with the hosts written."""
    import time

    meta: dict[str, object] = {"start": time.time()}
    if kind == "scan":
        meta.update(scan_type=ckpt.spec.scan_type, ports=ckpt.spec.ports)
    if not resumed:
        out = open_cli_outputs(kind, args, progress, meta)
        ckpt.offsets = _sizes(resumable_files(args, kind))
        return out
    return open_appended(args, kind, progress, meta, ckpt.path, ckpt.offsets)


def open_appended(
    args: argparse.Namespace,
    kind: Literal["scan", "sweep"],
    progress: Progress,
    meta: dict[str, object],
    path: Any,
    offsets: dict[str, int],
) -> Any:
    """A resumed run's outputs (checkpoint `path`): each file cut to its length in `offsets`
    (holding exactly the hosts written) and appended to, without a header."""
    from hilos.cli.options import OPENED
    from hilos.output import open_outputs

    for name in resumable_files(args, kind):
        if name not in offsets or not Path(name).is_file():
            raise UsageError(f"--resume: output {name} is gone (or was not saved); cannot append")
    out = open_outputs(
        kind,
        args.format,
        args.output,
        args.output_all,
        show_all=args.show_all,
        stdout=sys.stdout,
        meta={"args": f"hilos {kind} --resume {path}", **meta},
        progress=progress,
        explicit=getattr(args, "nmap_outputs", None),
        only_open=bool(getattr(args, "only_open", False)),
        append=offsets,
    )
    OPENED.append(out)
    return out


def _sizes(paths: list[str]) -> dict[str, int]:
    return {p: Path(p).stat().st_size for p in paths}


def _as_kind(kind: str, host: Any) -> Any:
    """A sweep's outputs take HostResults (the chunks all report ScanHostResults)."""
    if kind == "scan":
        return host
    from hilos.results import HostResult

    return HostResult(host.host, host.status, host.reason, host.rtt_ms, host.hostname)


def run(args: argparse.Namespace, kind: Literal["scan", "sweep"], pick_type: Any = None) -> int:
    """Run (or resume) the chunked scan or sweep the options describe (see the module
    docstring); `pick_type` chooses a scan's type from --type."""
    from hilos.resume import ChunkedJob, JobProgress

    resumed = bool(args.resume)
    args, ckpt, keep = _load(args, kind, pick_type)
    if resumed and ckpt.finished:  # a --checkpoint FILE kept after its job
        notifier(args)(f"{ckpt.path}: this {kind} finished already")
        return EXIT_OK
    executor = _executor(args)
    progress = _job_line(bool(args.quiet))

    def on_progress(p: JobProgress) -> None:
        pps = " ".join(f"{w}:{v:,.0f}" for w, v in sorted(p.pps.items()))
        progress.extra = f"{p.workers} worker(s)" + (f"  pps {pps}" if pps else "")
        progress.update(p.done, p.total, found=p.up)

    try:
        out = _open(args, kind, progress, ckpt, resumed)
    except BaseException:
        getattr(executor, "close", lambda: None)()
        raise
    files = resumable_files(args, kind)

    def on_hosts(hosts: list[Any]) -> dict[str, int]:
        for host in hosts:
            out.write(_as_kind(kind, host))
        return _sizes(files)

    job = ChunkedJob(
        ckpt, executor, keep_checkpoint=keep, on_progress=on_progress, on_hosts=on_hosts
    )
    finished = threading.Event()

    def tick() -> None:  # the checkpoint file never lags more than a second
        while not finished.wait(0.5):
            job.tick()
            on_progress(job.progress())

    threading.Thread(target=tick, name="hilos-job", daemon=True).start()
    try:
        job.run()
    except KeyboardInterrupt:
        finished.set()
        resume_from = f"{kind} --resume {ckpt.path}" if keep and not args.quiet else None
        return _stop(job, out, progress, kind, resume_from)
    except BaseException:
        finished.set()
        progress.close()
        for host in job.final():  # what was found still reaches the outputs
            out.write(_as_kind(kind, host))
        out.close(error="failed")
        raise
    finally:
        finished.set()
        getattr(executor, "close", lambda: None)()
    progress.close()
    for host in job.final():
        out.write(_as_kind(kind, host))
    out.close(_summary(job))
    job.finish()
    return EXIT_OK


def _summary(job: Any) -> dict[str, object]:
    import time

    return {
        "addresses": job.spec.space().size,
        "up": job.up(),
        "elapsed": time.monotonic() - job.started,
    }


def _stop(job: Any, out: Any, progress: Progress, kind: str, resume_from: str | None) -> int:
    """Ctrl-C (or SIGTERM): the cluster's tasks are cancelled, what was found is written
    (unfinished hosts marked so; a resumed run cuts them off again), and the checkpoint says
    where to continue."""
    progress.close()
    for host in job.final():
        out.write(_as_kind(kind, host))
    out.close(_summary(job), error="interrupted")
    sys.stderr.write("hilos: interrupted\n")
    if resume_from is not None:
        sys.stderr.write(f"hilos: continue with: hilos {resume_from}\n")
    return EXIT_INTERRUPTED
