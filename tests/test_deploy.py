"""The shipped ops files: systemd units, the crontab and the nginx snippet, checked for real.

``systemd-analyze verify`` checks the units (with paths pointed at this checkout), Debian's
nginx checks a configuration that includes the snippet and then serves a built output
folder, answering with the same types and caching as ``cccn-feeds serve``. The tools come
from scripts/system-deps.sh; without them these tests skip, except in CI (``CI=true``),
where a missing tool is a failure.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cccn_feeds.build import build
from cccn_feeds.cli import build_parser
from cccn_feeds.scheduler import cron_trigger
from cccn_feeds.settings import ScheduleSettings
from tests.conftest import EXAMPLE_NOW, LUX, ROOT, make_settings
from tests.test_server import MAX_AGE, expected_type
from tests.test_service import free_port, http_get, output_files, wait_until

DEPLOY = ROOT / "deploy"
UNITS = sorted(p.name for p in DEPLOY.glob("*.service")) + sorted(
    p.name for p in DEPLOY.glob("*.timer")
)
SNIPPET = DEPLOY / "nginx-cccn-feeds.conf"
INSTALL = "/srv/cccn-feeds"


def tool(name: str, *fallbacks: str) -> str:
    """The path of a system tool; skip without it, but fail in CI."""
    found = shutil.which(name) or next((f for f in fallbacks if os.access(f, os.X_OK)), None)
    if found:
        return found
    message = f"{name} is not installed (scripts/system-deps.sh installs it as root)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def exec_commands(unit: str) -> list[list[str]]:
    """The ExecStart command lines of a unit, split like a shell would."""
    text = (DEPLOY / unit).read_text(encoding="utf-8")
    return [shlex.split(line) for line in re.findall(r"^ExecStart=(.+)$", text, re.M)]


class TestSystemd:
    """A service for `serve`, and service + timer pairs for one-shot builds and link checks."""

    def test_the_expected_units_ship(self) -> None:
        assert set(UNITS) == {
            "cccn-feeds.service",
            "cccn-feeds-build.service",
            "cccn-feeds-build.timer",
            "cccn-feeds-linkcheck.service",
            "cccn-feeds-linkcheck.timer",
        }
        for timer in (u for u in UNITS if u.endswith(".timer")):
            text = (DEPLOY / timer).read_text(encoding="utf-8")
            target = re.search(r"^Unit=(\S+)$", text, re.M)
            assert target and target[1] in UNITS and target[1].endswith(".service")
            assert "Persistent=true" in text

    @pytest.mark.parametrize(
        ("unit", "command"),
        [
            ("cccn-feeds.service", "serve"),
            ("cccn-feeds-build.service", "build"),
            ("cccn-feeds-linkcheck.service", "check-links"),
        ],
    )
    def test_commands_parse(self, unit: str, command: str) -> None:
        (argv,) = exec_commands(unit)
        assert argv[0] == f"{INSTALL}/.venv/bin/cccn-feeds"
        args = build_parser().parse_args(argv[1:])
        assert args.command == command

    def test_serve_unit_stops_and_reloads_as_the_service_expects(self) -> None:
        text = (DEPLOY / "cccn-feeds.service").read_text(encoding="utf-8")
        assert "KillSignal=SIGTERM" in text
        assert "ExecReload=/bin/kill -HUP $MAINPID" in text
        assert re.search(r"^ReadWritePaths=/srv/cccn-feeds/feeds$", text, re.M)

    def test_systemd_analyze_verify(self, tmp_path: Path) -> None:
        analyze = tool("systemd-analyze")
        install = tmp_path / "srv"
        (install / "feeds").mkdir(parents=True)
        binary = Path(sys.executable).parent / "cccn-feeds"
        assert binary.exists(), "the console script is installed in the venv"
        for unit in UNITS:
            text = (DEPLOY / unit).read_text(encoding="utf-8")
            text = text.replace(f"{INSTALL}/.venv/bin/cccn-feeds", str(binary))
            (tmp_path / unit).write_text(text.replace(INSTALL, str(install)), encoding="utf-8")
        run = subprocess.run(
            [analyze, "verify", "--man=no", *UNITS],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        ours = [line for line in run.stderr.splitlines() if "cccn-feeds" in line]
        assert run.returncode == 0 and not ours, run.stderr

    def test_verify_catches_mistakes(self, tmp_path: Path) -> None:
        """The check above can fail: a typo in a unit is reported."""
        analyze = tool("systemd-analyze")
        text = (DEPLOY / "cccn-feeds-build.service").read_text(encoding="utf-8")
        (tmp_path / "cccn-feeds-build.service").write_text(
            text.replace("Type=oneshot", "Tpye=oneshot"), encoding="utf-8"
        )
        run = subprocess.run(
            [analyze, "verify", "--man=no", "cccn-feeds-build.service"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "Tpye" in run.stderr


class TestCrontab:
    """The crontab example runs the real commands on the service's default schedule."""

    def test_lines(self) -> None:
        lines = [
            line
            for line in (DEPLOY / "crontab.example").read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#") and "=" not in line.split()[0]
        ]
        schedules = {}
        for line in lines:
            fields = line.split(None, 5)
            expr = " ".join(fields[:5])
            cron_trigger(expr, LUX)  # a valid five-field expression
            argv = shlex.split(fields[5].split("&&")[-1])
            assert argv[0] == ".venv/bin/cccn-feeds"
            schedules[build_parser().parse_args(argv[1:]).command] = expr
        defaults = ScheduleSettings()
        assert schedules == {"build": defaults.build, "check-links": defaults.check_links}


@pytest.fixture
def settings_out(tmp_path: Path, data_dir: Path) -> Path:
    """The example corpus built into tmp_path/feeds."""
    out = tmp_path / "feeds"
    build(make_settings(data_dir, out), now=EXAMPLE_NOW)
    return out


def nginx_config(tmp: Path, out: Path, port: int) -> Path:
    """A standalone nginx configuration that includes the shipped snippet."""
    snippet = tmp / "cccn-feeds.conf"
    text = SNIPPET.read_text(encoding="utf-8")
    assert f"root {INSTALL}/feeds;" in text
    snippet.write_text(text.replace(f"{INSTALL}/feeds", str(out)), encoding="utf-8")
    for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp / name).mkdir()
    conf = tmp / "nginx.conf"
    conf.write_text(
        f"""daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        include {snippet};
    }}
}}
""",
        encoding="utf-8",
    )
    return conf


@pytest.fixture
def nginx(tmp_path: Path, settings_out: Path) -> Iterator[tuple[int, Path]]:
    """Debian's nginx serving a built output folder through the snippet: (port, output)."""
    binary = tool("nginx", "/usr/sbin/nginx")
    ngx = tmp_path / "nginx"
    ngx.mkdir()
    port = free_port()
    conf = nginx_config(ngx, settings_out, port)
    base = [binary, "-p", str(ngx), "-e", str(ngx / "error.log"), "-c", str(conf)]
    check = subprocess.run([*base, "-t"], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    assert "test is successful" in check.stderr
    proc = subprocess.Popen(base, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:

        def answering() -> bool:
            try:
                return http_get(port, "/")[0] == 200
            except OSError:
                assert proc.poll() is None, (ngx / "error.log").read_text(encoding="utf-8")
                return False

        wait_until(answering, 10, "nginx to answer")
        yield port, settings_out
    finally:
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class TestNginx:
    """nginx -t accepts the snippet, and nginx serves like `cccn-feeds serve` does."""

    def test_nginx_rejects_a_broken_snippet(self, tmp_path: Path) -> None:
        """The syntax check can fail: a broken directive is reported."""
        binary = tool("nginx", "/usr/sbin/nginx")
        conf = nginx_config(tmp_path, tmp_path, free_port())
        snippet = tmp_path / "cccn-feeds.conf"
        snippet.write_text(
            snippet.read_text(encoding="utf-8").replace("gzip_vary on;", "gzip_vary maybe;"),
            encoding="utf-8",
        )
        check = subprocess.run(
            [binary, "-p", str(tmp_path), "-e", str(tmp_path / "e.log"), "-c", str(conf), "-t"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert check.returncode != 0 and "gzip_vary" in check.stderr

    def test_same_types_and_caching(self, nginx: tuple[int, Path]) -> None:
        port, out = nginx
        files = output_files(out)
        assert len(files) > 10
        for path, data in files.items():
            status, headers, body = http_get(port, "/" + path)
            assert status == 200 and body == data, path
            assert headers["content-type"] == expected_type(path, data), path
            age = MAX_AGE.get(os.path.splitext(path)[1], 86400)
            assert headers["cache-control"] == f"public, max-age={age}", path
            assert headers["access-control-allow-origin"] == "*"
        status, headers, _ = http_get(port, "/")
        assert headers["cache-control"] == "public, max-age=300"
        assert headers["content-type"] == "text/html; charset=utf-8"

    def test_validators_and_gzip(self, nginx: tuple[int, Path]) -> None:
        port, _ = nginx
        _, headers, _ = http_get(port, "/events.ics")
        assert headers["last-modified"] and headers["etag"]
        again = http_get(port, "/events.ics", {"If-None-Match": headers["etag"]})
        assert again[0] == 304
        since = http_get(port, "/events.ics", {"If-Modified-Since": headers["last-modified"]})
        assert since[0] == 304
        _, gz, _ = http_get(port, "/news.rss", {"Accept-Encoding": "gzip"})
        assert gz["content-encoding"] == "gzip" and gz["vary"] == "Accept-Encoding"

    def test_nothing_hidden_or_outside(self, nginx: tuple[int, Path], tmp_path: Path) -> None:
        port, out = nginx
        secret = tmp_path / "secret.txt"
        secret.write_text("top secret", encoding="utf-8")
        (out / "leak.txt").symlink_to(secret)
        for path in (
            "/.state/history.json",
            "/.state/manifest.json",
            "/%2estate/history.json",
            "/tags/../.state/history.json",
            "/../../etc/passwd",
            "/leak.txt",
            "/tags/",
            "/no-such-file.rss",
        ):
            status, _, body = http_get(port, path)
            assert status in {400, 403, 404}, path  # 403: disable_symlinks refused it
            assert b"secret" not in body and b"revisions" not in body, path
