"""The docs stay true: every setting, per-site setting, error code and CLI command is documented
(with its default or HTTP status where the docs give one), the README starts with the two
set-up commands, and its walkthrough prints what it shows when run against a real server."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import click
import pytest

from recotrack.cli import main
from recotrack.domain.errors import STATUS
from recotrack.domain.sites import WIRE, SiteSettings
from recotrack.settings import HELP, Settings

from .conftest import POSTGRES_URL, postgres_schema_url

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def table_rows(text: str) -> dict[str, list[str]]:
    """Markdown table rows whose first cell is a backticked name: name -> the other cells."""
    rows = {}
    for line in text.splitlines():
        match = re.match(r"\|\s*`([^`]+)`\s*\|(.*)\|\s*$", line)
        if match:
            rows[match[1]] = [cell.strip() for cell in match[2].split("|")]
    return rows


def section(text: str, heading: str) -> str:
    """The text under the first heading that contains ``heading``, to the next heading of the
    same or a higher level."""
    lines = text.splitlines()
    for start, line in enumerate(lines):
        match = re.match(r"(#+) ", line)
        if match and heading in line:
            level = len(match[1])
            end = next(
                (
                    n
                    for n in range(start + 1, len(lines))
                    if re.match(rf"#{{1,{level}}} ", lines[n])
                ),
                len(lines),
            )
            return "\n".join(lines[start + 1 : end])
    raise AssertionError(f"no heading containing {heading!r}")


def shown_default(value: object) -> str:
    if value == "":
        return "(none)"
    if isinstance(value, bool):
        return f"`{json.dumps(value)}`"
    return f"`{value}`"


# -- settings -------------------------------------------------------------------------------


def test_every_server_setting_is_documented_with_its_default() -> None:
    rows = table_rows(section(read(DOCS / "settings.md"), "Server settings"))
    for f in fields(Settings):
        key = f"RECOTRACK_{f.name.upper()}"
        assert key in rows, f"{key} is not in docs/settings.md"
        assert rows[key][0] == shown_default(getattr(Settings(), f.name)), (
            f"{key}: docs/settings.md gives the default {rows[key][0]}"
        )
        assert rows[key][1], f"{key} has no meaning in docs/settings.md ({HELP[f.name]!r})"


def test_no_server_setting_is_documented_that_does_not_exist() -> None:
    rows = table_rows(section(read(DOCS / "settings.md"), "Server settings"))
    known = {f"RECOTRACK_{f.name.upper()}" for f in fields(Settings)}
    assert set(rows) <= known, f"documented but not in Settings: {set(rows) - known}"


def test_every_per_site_setting_is_documented_with_its_default() -> None:
    rows = table_rows(section(read(DOCS / "settings.md"), "Per-site settings"))
    defaults = SiteSettings().to_wire()
    assert set(rows) == set(WIRE), f"docs/settings.md per-site table: {sorted(rows)}"
    for name, value in defaults.items():
        assert rows[name][0] == shown_default(value), f"{name}: default {rows[name][0]}"


# -- errors ---------------------------------------------------------------------------------


def test_every_error_code_is_documented_with_its_http_status() -> None:
    rows = table_rows(read(DOCS / "errors.md"))
    for code, status in STATUS.items():
        assert code in rows, f"{code} is not in docs/errors.md"
        assert rows[code][0] == str(status), f"{code}: docs say {rows[code][0]}, code {status}"
        assert rows[code][1], f"{code}: docs/errors.md does not say when it happens"
    assert set(rows) <= set(STATUS), f"documented but not raised: {set(rows) - set(STATUS)}"


# -- command line ---------------------------------------------------------------------------


def commands(group: click.Group, prefix: str = "recotrack") -> list[tuple[str, click.Command]]:
    found = []
    for name, command in sorted(group.commands.items()):
        path = f"{prefix} {name}"
        if isinstance(command, click.Group):
            found += commands(command, path)
        else:
            found.append((path, command))
    return found


def test_the_command_walk_finds_every_command() -> None:
    paths = [path for path, _ in commands(main)]
    assert "recotrack site create" in paths and "recotrack serve" in paths


@pytest.mark.parametrize("path,command", commands(main), ids=lambda v: getattr(v, "name", v))
def test_every_cli_command_and_option_is_documented(path: str, command: click.Command) -> None:
    text = section(read(DOCS / "cli.md"), f"`{path}`")
    for param in command.params:
        if isinstance(param, click.Option):
            for option in param.opts:
                if option.startswith("--"):
                    assert option in text, f"{path} {option} is not in its docs/cli.md section"
        else:
            assert param.human_readable_name.upper() in text, f"{path}: argument {param.name}"


# -- README ---------------------------------------------------------------------------------


def test_readme_starts_with_the_two_set_up_commands() -> None:
    lines = [line for line in read(README).splitlines() if line.strip()]
    assert lines[0].startswith("# "), "the README starts with its title"
    assert lines[1].startswith("```"), "then, first of all, a block with the two commands"
    assert lines[2].split("#")[0].strip() == "./dev serve"
    assert lines[3].split("#")[0].strip() == "./dev test"
    assert lines[4] == "```"


def test_readme_links_the_docs() -> None:
    text = read(README)
    for name in ("api.md", "decisions.md", "errors.md", "settings.md", "cli.md"):
        assert (DOCS / name).exists()
        assert f"](docs/{name})" in text, f"README does not link docs/{name}"


# -- the README walkthrough, run for real ---------------------------------------------------

# What differs from run to run: issued sessions and cuids, page tracking ids, times.
VOLATILE = [
    (re.compile(r"\b\d{12}[|/][0-9A-Za-z]{43}\b"), "<session>"),
    (re.compile(r"\b\d{11}[|/][0-9A-Za-z]{43}\b"), "<cuid>"),
    (re.compile(r"\b\d{9}/[0-9A-Za-z]{22}\b"), "<page-tracking-id>"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"), "<time>"),
]
VENDOR_SESSION = "123456789012|a1b2c3d4e5A6B7C8D9E0f1g2h3i4j5F1G2H3I4J5k1l"
VENDOR_CUID = "09876543210|Z0Y9X8W7V6z5y4x3w2v1U0T9S8R7Q6u5t4s3r2q1P0O"


def normalise(text: str) -> str:
    # The vendor's example ids have the issued shape but are fixed: keep them readable.
    text = text.replace(VENDOR_SESSION, "<vendor-session>").replace(VENDOR_CUID, "<vendor-cuid>")
    for pattern, mask in VOLATILE:
        text = pattern.sub(mask, text)
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def walkthrough_steps(readme: str) -> list[tuple[str, str]]:
    """(commands, expected output) for each ``sh`` block of the walkthrough; the output is
    the ``text`` block right after it, or nothing."""
    blocks = re.findall(r"```(\w+)\n(.*?)```", section(readme, "Walkthrough"), re.S)
    steps = []
    for n, (kind, body) in enumerate(blocks):
        if kind == "sh":
            following = blocks[n + 1] if n + 1 < len(blocks) else ("", "")
            steps.append((body, following[1] if following[0] == "text" else ""))
    return steps


def test_walkthrough_is_found_with_its_outputs() -> None:
    steps = walkthrough_steps(read(README))
    assert len(steps) >= 8
    assert any("cancel.pagex" in commands and "HTTP 401" in out for commands, out in steps)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(params=["sqlite", "postgres, serve --workers 2"])
def walkthrough_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[str]]:
    """The database URL and the extra serve options of each backend the walkthrough runs on."""
    if request.param == "sqlite":
        yield [f"sqlite:///{tmp_path / 'walkthrough.db'}"]
        return
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL tests need RECOTRACK_TEST_POSTGRES_URL (.ci/run sets it)")
    for url in postgres_schema_url(POSTGRES_URL):
        yield [url, "--workers", "2"]


@pytest.mark.slow
def test_readme_walkthrough_prints_what_it_shows(
    tmp_path: Path, walkthrough_server: list[str]
) -> None:
    recotrack = ROOT / ".venv" / "bin" / "recotrack"
    if shutil.which("curl") is None or shutil.which("bash") is None or not recotrack.exists():
        pytest.skip("the walkthrough needs curl, bash and .venv/bin/recotrack")
    token, port = secrets.token_urlsafe(16), free_port()
    database, *serve_options = walkthrough_server
    env = {
        **os.environ,
        "RECOTRACK_DATABASE_URL": database,
        "RECOTRACK_ADMIN_TOKEN": token,
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from recotrack.cli import main; main()",
            "serve",
            "--port",
            str(port),
            *serve_options,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_up(f"{base}/healthz")
        steps = walkthrough_steps(read(README))
        marker = "@@step-done@@"
        script = [f"TOKEN={token}", f"BASE={base}"]
        for commands, _ in steps:
            kept = [line for line in commands.splitlines() if not re.match(r"(TOKEN|BASE)=", line)]
            script += [*kept, f"echo {marker}"]
        run = subprocess.run(
            ["bash", "-c", "\n".join(script)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        outputs = run.stdout.split(marker + "\n")
        assert len(outputs) == len(steps) + 1, run.stdout + run.stderr
        for (commands, expected), actual in zip(steps, outputs, strict=False):
            assert normalise(actual) == normalise(expected), f"after:\n{commands}"
        assert run.stderr == ""
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


def wait_until_up(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)
