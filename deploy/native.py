"""Run docker-compose.yaml's topology on this machine without Docker, from the compose file itself.

``python deploy/native.py up`` (``make deploy``) reads docker-compose.yaml and starts every service
built from this repository's image as a local process, with the environment and command the compose
file gives it, rewritten for one machine:

- service hostnames become 127.0.0.1; each published port gets a native port (the published one, or
  ``--port-base`` + n), and a service that publishes a port but does not name it is told ``--port``;
- volumes become directories: bind mounts their source in this repository, named volumes
  ``<state>/volumes/<name>``, the image's ``/opt/airflow`` home ``<state>/airflow``;
- the image-less services (postgres, redis) are the machine's own servers: the PostgreSQL roles and
  databases the URLs name are created there (database names prefixed by the project), and Redis URLs
  use database ``--redis-db``;
- the Celery worker runs ``--workers`` times, each with its own Celery node name and log-server port.

Nothing else is invented here, so the two deployments cannot drift apart. Inherited ``AIRFLOW*``,
``MLFLOW_*`` and ``OPENLINEAGE_*`` variables are dropped: each process sees what its container would.
A service is healthy when its healthcheck's ``curl`` URL answers, or, without one, when it stays up.

``down`` (``make deploy-down``) stops exactly the processes ``up`` recorded in ``<state>/native.json``
(each process group, checked against its start time so a reused pid is never signalled); ``--purge``
also drops the databases, flushes the Redis database and deletes the state. ``stop``/``start SERVICE``
stop or restart one service; ``status`` and ``env`` show what runs and the environment to use the
Airflow CLI against it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yaml"
#: What the official image sets that the compose file relies on (its home and log folder).
IMAGE_HOME = "/opt/airflow"
IMAGE_ENV = {"AIRFLOW_HOME": IMAGE_HOME, "AIRFLOW__LOGGING__BASE_LOG_FOLDER": f"{IMAGE_HOME}/logs"}
#: Ports Airflow components listen on inside their containers without publishing them (the command
#: that listens, the option that moves it, Airflow's default); natively each process needs its own.
INTERNAL_PORTS = {
    ("airflow", "scheduler"): ("AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT", 8974),
    ("airflow", "triggerer"): ("AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT", 8794),
}
WORKER_LOG_PORT = "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"
DROPPED_PREFIXES = ("AIRFLOW", "_AIRFLOW", "MLFLOW_", "OPENLINEAGE_", "BREAST_CANCER_")
_INTERPOLATION = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?P<default>[^}]*))?\}")
_URL = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*)://(?:(?P<userinfo>[^@/\s\"']*)@)?(?P<host>[A-Za-z0-9_.-]+)"
    r"(?::(?P<port>\d+))?(?P<path>/[^\s\"',]*)?"
)
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "0.0.0.0")


class DeployError(RuntimeError):
    """The deployment cannot be started or stopped; the message says why and what to do."""


# --------------------------------------------------------------------------------------- the plan


@dataclass
class Process:
    """One native process of a compose service."""

    name: str
    service: str
    argv: list[str]
    env: dict[str, str]
    health_url: str | None
    health_timeout: float
    oneshot: bool
    pid: int | None = None
    start_time: int | None = None
    log: str = ""


@dataclass
class Plan:
    project: str
    state: Path
    processes: list[Process]
    urls: dict[str, str]
    login: tuple[str, str]
    databases: list[dict[str, str]]
    redis_url: str | None
    extra: dict[str, Any] = field(default_factory=dict)


def interpolate(value: Any, environ: Mapping[str, str]) -> Any:
    """Compose's variable substitution (``${VAR}``, ``${VAR:-default}``, ``$$``) over a loaded file."""
    if isinstance(value, str):
        return _INTERPOLATION.sub(
            lambda m: "$" if m.group(0) == "$$" else environ.get(m["name"]) or (m["default"] or ""), value
        )
    if isinstance(value, list):
        return [interpolate(v, environ) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v, environ) for k, v in value.items()}
    return value


def load_compose(path: Path = COMPOSE_FILE, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The compose file with anchors merged and variables substituted, as ``docker compose config`` sees it."""
    loaded = yaml.safe_load(path.read_text())
    return interpolate(loaded, os.environ if environ is None else environ)


def _argv(command: Any) -> list[str]:
    return list(command) if isinstance(command, list) else shlex.split(str(command))


def _environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def _container_ports(service: Mapping[str, Any]) -> list[tuple[int, int]]:
    """(published, container) port pairs of a service."""
    pairs = []
    for spec in service.get("ports") or []:
        published, _, target = str(spec).rpartition(":")
        pairs.append((int(published or target), int(target)))
    return pairs


@dataclass
class Rewriter:
    """Rewrites container addresses and paths into this machine's."""

    #: (service, container port) -> native port
    ports: dict[tuple[str, int], int]
    services: set[str]
    #: container path prefix -> host path, longest first
    paths: list[tuple[str, str]]
    postgres_services: set[str]
    redis_services: set[str]
    db_prefix: str
    redis_db: int
    postgres_port: int
    redis_port: int

    def native_port(self, service: str, port: int | None) -> int | None:
        if service in self.postgres_services:
            return self.postgres_port
        if service in self.redis_services:
            return self.redis_port
        return self.ports.get((service, port)) if port is not None else None

    def _url(self, m: re.Match[str]) -> str:
        host, port, path = m["host"], m["port"], m["path"] or ""
        if host not in self.services:
            return m.group(0)
        native = self.native_port(host, int(port) if port else None)
        if host in self.postgres_services and path:
            path = f"/{self.db_prefix}{path.lstrip('/')}"
        if host in self.redis_services:
            path = f"/{self.redis_db}"
        userinfo = f"{m['userinfo']}@" if m["userinfo"] is not None else ""
        port_part = f":{native}" if native else (f":{port}" if port else "")
        return f"{m['scheme']}://{userinfo}127.0.0.1{port_part}{path}"

    def text(self, value: str, own_service: str | None = None) -> str:
        value = _URL.sub(self._url, value)
        for (service, port), native in self.ports.items():
            value = re.sub(rf"(?<![\w.-]){re.escape(service)}:{port}\b", f"127.0.0.1:{native}", value)
            if service == own_service:
                value = re.sub(rf"\b(localhost|127\.0\.0\.1|0\.0\.0\.0):{port}\b", rf"\g<1>:{native}", value)
        for container, host in self.paths:
            value = re.sub(rf"(?<![\w/.-]){re.escape(container)}(?=/|$|[\s\"',:])", host, value)
        return value

    def argv(self, argv: list[str], own_service: str) -> list[str]:
        out = [self.text(a, own_service) for a in argv]
        own_ports = {p for (s, p) in self.ports if s == own_service}
        for i, arg in enumerate(out[:-1]):
            if arg == "--port" and own_ports and int(argv[i + 1]) in own_ports:
                out[i + 1] = str(self.ports[(own_service, int(argv[i + 1]))])
            if arg == "--host" and out[i + 1] == "0.0.0.0":
                out[i + 1] = "127.0.0.1"  # natively nothing listens beyond loopback
        return out


def _health(service: Mapping[str, Any], rewriter: Rewriter, name: str) -> tuple[str | None, float]:
    check = service.get("healthcheck") or {}
    test = check.get("test") or []
    url = None
    if isinstance(test, list) and len(test) > 1 and test[0] == "CMD" and test[1] == "curl":
        url = next((rewriter.text(t, name) for t in test if t.startswith("http")), None)

    def seconds(key: str, default: float) -> float:
        raw = str(check.get(key, f"{default}s"))
        return float(raw.rstrip("s")) if raw.endswith("s") and raw[:-1].replace(".", "").isdigit() else default

    timeout = seconds("start_period", 0) + seconds("interval", 30) * int(check.get("retries", 3))
    return url, max(timeout, 60.0)


def _free_ports(count: int, base: int | None) -> Iterator[int]:
    if base is not None:
        yield from range(base, base + count)
        return
    for _ in range(count):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            yield int(s.getsockname()[1])


def make_plan(
    compose: Mapping[str, Any],
    *,
    project: str,
    state: Path,
    port_base: int | None = None,
    workers: int = 2,
    redis_db: int = 0,
    profiles: tuple[str, ...] = (),
    mounts: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
    postgres_port: int = 5432,
    redis_port: int = 6379,
    base_env: Mapping[str, str] | None = None,
) -> Plan:
    """Every native process of the compose file's topology, in start order, with its environment."""
    services: dict[str, dict[str, Any]] = compose["services"]
    ours = {
        n: s for n, s in services.items()
        if "build" in s and (not s.get("profiles") or set(s["profiles"]) & set(profiles))
    }
    external = {n: s for n, s in services.items() if "build" not in s}
    postgres = {n for n, s in external.items() if str(s.get("image", "")).startswith("postgres")}
    redis = {n for n, s in external.items() if str(s.get("image", "")).startswith("redis")}
    unknown = set(external) - postgres - redis
    if unknown:
        raise DeployError(f"services {sorted(unknown)} have no native counterpart (only postgres and redis do)")

    # Published ports first (their native port is the published one unless --port-base), then internal ones.
    published = [(n, pub, target) for n, s in ours.items() for pub, target in _container_ports(s)]
    worker = next((n for n, s in ours.items() if _argv(s.get("command", ""))[-2:] == ["celery", "worker"]), None)
    internal_count = len(INTERNAL_PORTS) + workers
    allocated = iter(_free_ports(len(published) + internal_count, port_base))
    ports: dict[tuple[str, int], int] = {}
    for n, pub, target in published:
        ports[(n, target)] = next(allocated) if port_base is not None else pub
    if port_base is None:
        allocated = iter(_free_ports(internal_count, None))
    internal: dict[str, str] = {}
    for command, (option, default) in INTERNAL_PORTS.items():
        native = next(allocated)
        internal[option] = str(native)
        for n, s in ours.items():
            if tuple(_argv(s.get("command", ""))) == command:
                ports[(n, default)] = native
    worker_log_ports = [next(allocated) for _ in range(workers)]

    state = state.resolve()
    paths: dict[str, str] = {IMAGE_HOME: str(state / "airflow")}
    for s in ours.values():
        for spec in s.get("volumes") or []:
            source, target = str(spec).split(":")[:2]
            if source.startswith((".", "/")):
                paths[target] = str((ROOT / source).resolve())
            else:
                paths[target] = str(state / "volumes" / source)
    for target, source in (mounts or {}).items():
        paths[target] = str(Path(source).resolve())
    rewriter = Rewriter(
        ports=ports, services=set(services), paths=sorted(paths.items(), key=lambda p: -len(p[0])),
        postgres_services=postgres, redis_services=redis, db_prefix=f"{project}_", redis_db=redis_db,
        postgres_port=postgres_port, redis_port=redis_port,
    )

    base = {k: v for k, v in (os.environ if base_env is None else base_env).items()
            if not k.startswith(DROPPED_PREFIXES)}
    base["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{base.get('PATH', '')}"

    processes: list[Process] = []
    for name in _start_order(ours):
        service = ours[name]
        env = {**base}
        for k, v in {**IMAGE_ENV, **_environment(service)}.items():
            env[k] = rewriter.text(v, name)
        env.update(internal)
        env.update(overrides or {})
        argv = rewriter.argv(_argv(service["command"]), name)
        own = [target for (n, _, target) in published if n == name]
        if own and "--port" not in argv:
            argv += ["--port", str(ports[(name, own[0])])]
        url, timeout = _health(service, rewriter, name)
        oneshot = any(
            (dep.get("condition") if isinstance(dep, dict) else None) == "service_completed_successfully"
            for other in ours.values() for dep_name, dep in _depends(other).items() if dep_name == name
        )
        copies = workers if name == worker else 1
        for i in range(1, copies + 1):
            proc_name = f"{name}-{i}" if name == worker else name
            proc_env = dict(env)
            proc_argv = list(argv)
            if name == worker:
                proc_env[WORKER_LOG_PORT] = str(worker_log_ports[i - 1])
                proc_argv += ["--celery-hostname", f"{proc_name}@%h"]
            processes.append(Process(proc_name, name, proc_argv, proc_env, url, timeout, oneshot))

    init_env = next((p.env for p in processes if p.oneshot), {})
    login = (init_env.get("_AIRFLOW_WWW_USER_USERNAME", "admin"), init_env.get("_AIRFLOW_WWW_USER_PASSWORD", "admin"))
    urls = {n: f"http://127.0.0.1:{ports[(n, target)]}" for n, _, target in published}
    all_text = [v for p in processes for v in [*p.env.values(), *p.argv]]
    return Plan(
        project=project, state=state, processes=processes, urls=urls, login=login,
        databases=_databases(all_text, f"{project}_", postgres_port),
        redis_url=f"redis://127.0.0.1:{redis_port}/{redis_db}" if redis else None,
        extra={"worker_log_ports": worker_log_ports, "paths": paths, "internal_ports": internal},
    )


def _depends(service: Mapping[str, Any]) -> dict[str, Any]:
    deps = service.get("depends_on") or {}
    return {d: {} for d in deps} if isinstance(deps, list) else dict(deps)


def _start_order(services: Mapping[str, Mapping[str, Any]]) -> list[str]:
    order: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in order or name not in services:
            return
        if name in path:
            raise DeployError(f"depends_on cycle: {' -> '.join((*path, name))}")
        for dep in _depends(services[name]):
            visit(dep, (*path, name))
        order.append(name)

    for name in services:
        visit(name, ())
    return order


def _databases(texts: list[str], prefix: str, port: int) -> list[dict[str, str]]:
    """The (role, password, database) of every PostgreSQL URL the processes use."""
    found: dict[str, dict[str, str]] = {}
    pattern = re.compile(rf"postgresql(?:\+\w+)?://(?P<user>[^:@/]+)(?::(?P<pw>[^@/]*))?@127\.0\.0\.1:{port}/"
                         rf"(?P<db>{re.escape(prefix)}\w+)")
    for text in texts:
        for m in pattern.finditer(text):
            found[m["db"]] = {"role": m["user"], "password": m["pw"] or "", "database": m["db"]}
    return list(found.values())


# ------------------------------------------------------------------------------------- processes


def _start_time(pid: int) -> int | None:
    """The kernel's start time of a process (field 22 of /proc/<pid>/stat), None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def alive(proc: Process) -> bool:
    return proc.pid is not None and proc.start_time is not None and _start_time(proc.pid) == proc.start_time


#: The processes this invocation started (a oneshot is waited for through its Popen).
_children: dict[str, subprocess.Popen[bytes]] = {}


def _spawn(proc: Process, state: Path) -> None:
    logs = state / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{proc.name}.log"
    with log_path.open("ab") as log:
        child = subprocess.Popen(
            proc.argv, env=proc.env, cwd=state, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    proc.pid, proc.start_time, proc.log = child.pid, _start_time(child.pid), str(log_path)
    _children[proc.name] = child


def _tail(path: str, lines: int = 25) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_healthy(proc: Process) -> None:
    deadline = time.monotonic() + (proc.health_timeout if proc.health_url else 4)
    while time.monotonic() < deadline:
        if not alive(proc):
            raise DeployError(f"{proc.name} exited while starting; last lines of {proc.log}:\n{_tail(proc.log)}")
        if proc.health_url:
            try:
                with urllib.request.urlopen(proc.health_url, timeout=3) as answer:
                    if answer.status < 400:
                        return
            except (OSError, urllib.error.URLError):
                pass
        time.sleep(0.5)
    if proc.health_url:
        raise DeployError(
            f"{proc.name} did not answer {proc.health_url} within {proc.health_timeout:.0f} s; "
            f"last lines of {proc.log}:\n{_tail(proc.log)}"
        )


def start(proc: Process, state: Path) -> None:
    """Start one process and wait until it is healthy (a oneshot: until it succeeded)."""
    _spawn(proc, state)
    if proc.oneshot:
        code = _children.pop(proc.name).wait()
        if code != 0:
            raise DeployError(f"{proc.name} failed (exit {code}); last lines of {proc.log}:\n{_tail(proc.log)}")
        proc.pid = proc.start_time = None
        return
    _wait_healthy(proc)


def stop(proc: Process, grace: float = 30.0) -> bool:
    """Stop a process's whole group (SIGTERM, then SIGKILL after ``grace``); False if it was not running."""
    if not alive(proc):
        return False
    assert proc.pid is not None
    pgid = proc.pid  # started with start_new_session: the leader's pid is the group id
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return True


# ----------------------------------------------------------------------------------- servers


def _admin_connect(admin_url: str) -> Any:
    import psycopg

    try:
        return psycopg.connect(admin_url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as e:
        raise DeployError(
            f"cannot reach the local PostgreSQL as {admin_url!r}: {e}. Start it, or pass --postgres-admin-url "
            "with a superuser that may create roles and databases."
        ) from e


def create_databases(plan: Plan, admin_url: str) -> None:
    from psycopg import sql

    with _admin_connect(admin_url) as conn:
        for db in plan.databases:
            role, name = db["role"], db["database"]
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(db["password"])))
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(role)))


def drop_databases(databases: list[dict[str, str]], admin_url: str) -> None:
    from psycopg import sql

    with _admin_connect(admin_url) as conn:
        for db in databases:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db["database"])))


def flush_redis(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


def _check_redis(url: str) -> None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
    except redis.RedisError as e:
        raise DeployError(f"cannot reach the local Redis at {url}: {e}. Start redis-server first.") from e


# -------------------------------------------------------------------------------------- state


def _state_file(state: Path) -> Path:
    return state / "native.json"


def save(plan: Plan) -> None:
    data = {
        "project": plan.project, "urls": plan.urls, "login": list(plan.login), "databases": plan.databases,
        "redis_url": plan.redis_url, "extra": plan.extra,
        "processes": [asdict(p) for p in plan.processes],
    }
    path = _state_file(plan.state)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.chmod(0o600)  # it holds the processes' environments
    tmp.replace(path)


def load(state: Path) -> Plan:
    path = _state_file(state)
    if not path.exists():
        raise DeployError(f"no deployment recorded in {state} (nothing to stop); `make deploy` starts one")
    data = json.loads(path.read_text())
    return Plan(
        project=data["project"], state=state, processes=[Process(**p) for p in data["processes"]],
        urls=data["urls"], login=tuple(data["login"]), databases=data["databases"], redis_url=data["redis_url"],
        extra=data.get("extra", {}),
    )


# ---------------------------------------------------------------------------------------- CLI


def _summary(plan: Plan) -> str:
    workers = [p for p in plan.processes if p.service == "airflow-worker"]
    lines = [f"airflow-ml deployment {plan.project!r} is up (state: {plan.state})"]
    labels = {"airflow-apiserver": "Airflow UI and REST API", "mlflow": "MLflow tracking server",
              "openlineage": "OpenLineage receiver", "flower": "Celery Flower"}
    for service, label in labels.items():
        if service in plan.urls:
            lines.append(f"  {label:<24} {plan.urls[service]}")
    lines.append(f"  {'Airflow login':<24} {plan.login[0]} / {plan.login[1]}")
    lines.append(f"  {'Celery workers':<24} {len(workers)}")
    lines.append(f"  {'Logs':<24} {plan.state / 'logs'}")
    lines.append("Stop it with `make deploy-down` (add PURGE=1 to drop its databases and state).")
    return "\n".join(lines)


def _plan_from_args(args: argparse.Namespace, state: Path) -> Plan:
    def pairs(values: list[str], what: str) -> dict[str, str]:
        bad = [v for v in values if "=" not in v]
        if bad:
            raise DeployError(f"{what} must be KEY=VALUE, got {bad[0]!r}")
        return dict(v.split("=", 1) for v in values)

    return make_plan(
        load_compose(), project=args.project, state=state, port_base=args.port_base, workers=args.workers,
        redis_db=args.redis_db, profiles=tuple(args.profile), mounts=pairs(args.mount, "--mount"),
        overrides=pairs(args.env, "--env"),
    )


def cmd_plan(args: argparse.Namespace) -> None:
    """What `up` would start, as JSON, without starting anything."""
    plan = _plan_from_args(args, Path(args.state or ROOT / ".deploy" / args.project).resolve())
    print(json.dumps({"processes": [asdict(p) for p in plan.processes], "urls": plan.urls,
                      "databases": plan.databases, "redis_url": plan.redis_url, "extra": plan.extra}, indent=1))


def cmd_up(args: argparse.Namespace) -> None:
    state = Path(args.state or ROOT / ".deploy" / args.project).resolve()
    if _state_file(state).exists() and any(alive(p) for p in load(state).processes):
        raise DeployError(f"deployment {args.project!r} is already running (state: {state}); stop it first")
    plan = _plan_from_args(args, state)
    for directory in plan.extra["paths"].values():
        if Path(directory).is_relative_to(state):  # the home and named volumes; bind mounts exist already
            Path(directory).mkdir(parents=True, exist_ok=True)
    create_databases(plan, args.postgres_admin_url)
    if plan.redis_url:
        _check_redis(plan.redis_url)
    save(plan)
    try:
        for proc in plan.processes:
            print(f"starting {proc.name} ...", flush=True)
            start(proc, state)
            save(plan)
    except BaseException:
        for proc in reversed(plan.processes):
            stop(proc)
        save(plan)
        raise
    print(_summary(plan))


def cmd_down(args: argparse.Namespace) -> None:
    state = Path(args.state or ROOT / ".deploy" / args.project).resolve()
    plan = load(state)
    stopped = [p.name for p in reversed(plan.processes) if stop(p)]
    for p in plan.processes:
        p.pid = p.start_time = None
    save(plan)
    print(f"stopped {', '.join(stopped) or 'nothing (no process was running)'}")
    if args.purge:
        drop_databases(plan.databases, args.postgres_admin_url)
        if plan.redis_url:
            flush_redis(plan.redis_url)
        shutil.rmtree(state)
        print(f"dropped {', '.join(d['database'] for d in plan.databases)}; removed {state}")


def _select(plan: Plan, service: str) -> list[Process]:
    chosen = [p for p in plan.processes if service in (p.name, p.service) and not p.oneshot]
    if not chosen:
        names = sorted({p.name for p in plan.processes if not p.oneshot})
        raise DeployError(f"no service or process {service!r}; choose from {', '.join(names)}")
    return chosen


def cmd_stop(args: argparse.Namespace) -> None:
    state = Path(args.state or ROOT / ".deploy" / args.project).resolve()
    plan = load(state)
    for proc in _select(plan, args.service):
        print(f"{proc.name}: {'stopped' if stop(proc) else 'was not running'}")
    save(plan)


def cmd_start(args: argparse.Namespace) -> None:
    state = Path(args.state or ROOT / ".deploy" / args.project).resolve()
    plan = load(state)
    for proc in _select(plan, args.service):
        if alive(proc):
            print(f"{proc.name}: already running")
            continue
        start(proc, state)
        save(plan)
        print(f"{proc.name}: started")


def cmd_status(args: argparse.Namespace) -> None:
    state = Path(args.state or ROOT / ".deploy" / args.project).resolve()
    plan = load(state)
    rows = [{"name": p.name, "service": p.service, "pid": p.pid, "running": alive(p), "log": p.log}
            for p in plan.processes if not p.oneshot]
    if args.json:
        print(json.dumps({"processes": rows, "urls": plan.urls, "login": plan.login, "extra": plan.extra}))
        return
    for row in rows:
        running = "running" if row["running"] else "stopped"
        print(f"{row['name']:<24} {running:<8} pid {row['pid'] or '-':<8} {row['log']}")


def cmd_env(args: argparse.Namespace) -> None:
    """The environment of the scheduler: source it to run the Airflow CLI against the deployment."""
    state = Path(args.state or ROOT / ".deploy" / args.project).resolve()
    plan = load(state)
    proc = next(p for p in plan.processes if p.service == "airflow-scheduler")
    for key, value in sorted(proc.env.items()):
        if key.startswith(("AIRFLOW", "BREAST_CANCER_", "GIT_PYTHON")) or key == "PATH":
            print(f"export {key}={shlex.quote(value)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", default="airflow_ml", help="names the state directory and database prefix")
    parser.add_argument("--state", help="state directory (default .deploy/<project>)")
    parser.add_argument("--postgres-admin-url", default=os.environ.get(
        "AIRFLOW_ML_DEPLOY_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the topology")
    plan = sub.add_parser("plan", help="print what `up` would start (JSON), start nothing")
    for p in (up, plan):
        p.add_argument("--port-base", type=int, help="native ports from here on (default: the published ports)")
        p.add_argument("--workers", type=int, default=2, help="Celery workers (default 2)")
        p.add_argument("--redis-db", type=int, default=0, help="Redis database number for the broker")
        p.add_argument("--profile", action="append", default=[], help="compose profiles to include, e.g. flower")
        p.add_argument("--mount", action="append", default=[], metavar="CONTAINER_PATH=HOST_PATH",
                       help="use another host directory for a mount, e.g. /opt/airflow/dags=./my_dags")
        p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                       help="override a variable in every process (like a compose override file)")
    up.set_defaults(func=cmd_up)
    plan.set_defaults(func=cmd_plan)
    down = sub.add_parser("down", help="stop every process `up` started")
    down.add_argument("--purge", action="store_true", help="also drop the databases, Redis keys and state")
    down.set_defaults(func=cmd_down)
    for name, func in (("stop", cmd_stop), ("start", cmd_start)):
        one = sub.add_parser(name, help=f"{name} one service (e.g. mlflow, airflow-worker-1)")
        one.add_argument("service")
        one.set_defaults(func=func)
    status = sub.add_parser("status", help="what runs")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)
    sub.add_parser("env", help="export lines for the Airflow CLI").set_defaults(func=cmd_env)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except DeployError as e:
        sys.exit(f"deploy: {e}")


if __name__ == "__main__":
    main()
