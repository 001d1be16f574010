"""Options from TOML files and BASCULE_* variables: conversion, errors, precedence.

The first half calls ``bascule.config_file`` / ``bascule.cli.config_from_args``
directly with a real parser, real files and an explicit environment mapping;
the second half runs the real ``bascule`` command.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from bascule.cli import build_parser, config_from_args
from bascule.config import Config, Interface, LogFormat, LogLevel
from bascule.config_file import env_options, load_options
from bascule.errors import ConfigError

from .e2e.process import APPS_DIR, run_bascule, start_bascule

HTTP_TIMEOUT = 10.0


def config(argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> Config:
    """The Config the command would build from ``argv``, ``env`` and files in ``cwd``."""
    args = build_parser().parse_args(argv)
    return config_from_args(args, env or {}, cwd or Path("/nonexistent-bascule-dir"))


# conversion --------------------------------------------------------------------------------


def test_file_values_take_the_command_line_rules(tmp_path: Path) -> None:
    path = tmp_path / "bascule.toml"
    path.write_text(
        "\n".join(
            [
                'app = "mod:app"',
                "port = 9001",
                'log-level = "debug"',  # the flag's spelling
                'log_format = "json"',  # the field's spelling
                'limit_request_body = "64k"',  # sizes with suffixes
                "h2_max_header_list_size = 20000",  # or plain integers
                "http2 = false",
                "timeout_keep_alive = 3",  # an integer where a number is expected
                'bind = ["127.0.0.1:1", "unix:/tmp/b.sock"]',
                'header = "X-One: 1"',  # one string for a list
                'interface = "ASGI2"',
            ]
        ),
        encoding="utf-8",
    )
    options = load_options(path)
    assert options == {
        "app": "mod:app",
        "port": 9001,
        "log_level": LogLevel.DEBUG,
        "log_format": LogFormat.JSON,
        "limit_request_body": 65536,
        "h2_max_header_list_size": 20000,
        "http2": False,
        "timeout_keep_alive": 3.0,
        "bind": ("127.0.0.1:1", "unix:/tmp/b.sock"),
        "header": ("X-One: 1",),
        "interface": Interface.ASGI2,
    }
    Config(**options).validate()  # what run(**load_options(path)) does


def test_env_values_are_parsed_like_the_command_line() -> None:
    options, warnings = env_options(
        {
            "BASCULE_PORT": "9000",
            "BASCULE_HTTP2": "false",
            "BASCULE_WS": "ON",
            "BASCULE_BIND": "127.0.0.1:1, 127.0.0.1:2",
            "BASCULE_HEADER": '["Cache-Control: no-cache, no-store", "X-A: 1"]',
            "BASCULE_LIMIT_REQUEST_BODY": "1m",
            "BASCULE_LIMIT_CONCURRENCY": "",  # none
            "BASCULE_TIMEOUT_KEEP_ALIVE": "2.5",
            "BASCULE_LOG_LEVEL": "warning",
            "BASCULE_ROOT_PATH": "/api",
            "HOME_PORT": "1",  # not ours
            "BASCULE_E2E_SHUTDOWN_MARKER": "/tmp/x",  # ours in name only: no warning
        }
    )
    assert options == {
        "port": 9000,
        "http2": False,
        "ws": True,
        "bind": ("127.0.0.1:1", "127.0.0.1:2"),
        "header": ("Cache-Control: no-cache, no-store", "X-A: 1"),
        "limit_request_body": 1048576,
        "limit_concurrency": None,
        "timeout_keep_alive": 2.5,
        "log_level": LogLevel.WARNING,
        "root_path": "/api",
    }
    assert warnings == []


def test_misspelt_env_variable_is_warned_about() -> None:
    options, warnings = env_options({"BASCULE_PROT": "1", "BASCULE_WORKER": "2"})
    assert options == {}
    assert warnings == [
        "BASCULE_PROT is not an option (did you mean BASCULE_PORT?); ignored",
        "BASCULE_WORKER is not an option (did you mean BASCULE_WORKERS?); ignored",
    ]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BASCULE_PORT": "eighty"}, "BASCULE_PORT: port: expected an integer, got 'eighty'"),
        ({"BASCULE_HTTP2": "maybe"}, "BASCULE_HTTP2: http2: expected true or false"),
        ({"BASCULE_LOG_LEVEL": "loud"}, "BASCULE_LOG_LEVEL: log_level: expected one of critical"),
        ({"BASCULE_LIMIT_REQUEST_BODY": "1t"}, "BASCULE_LIMIT_REQUEST_BODY: limit_request_body"),
        ({"BASCULE_BIND": '["a", 1]'}, "BASCULE_BIND: bind: expected a list of strings"),
        ({"BASCULE_BIND": "[oops"}, "BASCULE_BIND: bind: expected a list of strings"),
    ],
)
def test_env_type_errors_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        env_options(env)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("prot = 8000", "unknown option 'prot' (did you mean 'port'?)"),
        ("[server]\nport = 1", "unknown option 'server'"),
        ('port = "8000"', "port: expected an integer, got '8000'"),
        ("http2 = 1", "http2: expected true or false, got 1"),
        ("port = true", "port: expected an integer, got True"),
        ('bind = ["a:1", 2]', "bind: expected a list of strings"),
        ('loop = "tokio"', "loop: expected one of auto, asyncio, uvloop, got 'tokio'"),
        ('config = "other.toml"', "'config' cannot be set in a config file"),
        ("log_level='info'\nlog-level='info'", "'log_level' is given twice"),
        ("port = ", "not valid TOML"),
    ],
)
def test_file_errors_name_the_file_and_key(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "bascule.toml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_options(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: "), text
    assert message in text


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: no such config file"):
        config(["--config", str(tmp_path / "nope.toml")])


# precedence -------------------------------------------------------------------------------


def test_precedence_command_line_env_file_defaults(tmp_path: Path) -> None:
    (tmp_path / "bascule.toml").write_text(
        'port = 1001\nroot_path = "/file"\nbacklog = 11\ntimeout_keep_alive = 7\n',
        encoding="utf-8",
    )
    env = {"BASCULE_PORT": "1002", "BASCULE_ROOT_PATH": "/env", "BASCULE_CONFIG": "bascule.toml"}
    got = config(["--port", "1003"], env, tmp_path)
    assert got.port == 1003  # command line beats environment and file
    assert got.root_path == "/env"  # environment beats file
    assert got.backlog == 11  # file beats default
    assert got.timeout_keep_alive == 7.0
    assert got.timeout_write == Config().timeout_write  # default
    # --config on the command line beats BASCULE_CONFIG
    (tmp_path / "other.toml").write_text("backlog = 22\n", encoding="utf-8")
    assert config(["--config", "other.toml"], env, tmp_path).backlog == 22


def test_list_options_are_replaced_not_merged(tmp_path: Path) -> None:
    (tmp_path / "bascule.toml").write_text('header = ["X-File: 1"]\n', encoding="utf-8")
    got = config(["--config", "bascule.toml", "--header", "X-Cli: 1"], {}, tmp_path)
    assert got.header == ("X-Cli: 1",)


def test_port_from_a_higher_layer_beats_bind_from_a_lower_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--host/--port and bind are two spellings of where to listen: the higher layer wins."""
    (tmp_path / "bascule.toml").write_text('bind = ["127.0.0.1:18431"]\n', encoding="utf-8")
    got = config(["--config", "bascule.toml", "--port", "9000"], {}, tmp_path)
    assert got.binds() == ["127.0.0.1:9000"]
    assert "bind from bascule.toml ignored: port is set by command line" in capsys.readouterr().err
    got = config(["--config", "bascule.toml"], {"BASCULE_HOST": "0.0.0.0"}, tmp_path)
    assert got.binds() == ["0.0.0.0:8000"]
    # the same layer, or a lower one, keeps bind
    got = config(["--config", "bascule.toml"], {}, tmp_path)
    assert got.binds() == ["127.0.0.1:18431"]
    got = config(["--bind", "127.0.0.1:1"], {"BASCULE_PORT": "2"}, tmp_path)
    assert got.binds() == ["127.0.0.1:1"]


def test_pyproject_tool_table_is_read_from_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.bascule]\nbacklog = 33\napp = "pkg:app"\n',
        encoding="utf-8",
    )
    got = config([], {}, tmp_path)
    assert (got.backlog, got.app) == (33, "pkg:app")
    # an explicit file replaces pyproject.toml entirely
    (tmp_path / "b.toml").write_text("port = 5\n", encoding="utf-8")
    got = config(["--config", "b.toml"], {}, tmp_path)
    assert (got.backlog, got.app, got.port) == (Config().backlog, Config().app, 5)


def test_pyproject_without_tool_table_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n', encoding="utf-8")
    assert config([], {}, tmp_path) == Config()


def test_pyproject_unknown_key_names_the_table(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.bascule]\nworker = 2\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        config([], {}, tmp_path)
    assert str(caught.value) == (
        f"{tmp_path / 'pyproject.toml'} [tool.bascule]: unknown option 'worker' "
        "(did you mean 'workers'?)"
    )


def test_invalid_value_names_its_source(tmp_path: Path) -> None:
    (tmp_path / "bascule.toml").write_text("port = 70000\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        config(["--config", "bascule.toml"], {}, tmp_path)
    assert str(caught.value) == "--port: must be in 0..65535, got 70000 (from bascule.toml)"
    with pytest.raises(ConfigError) as caught:
        config([], {"BASCULE_WORKERS": "-1"}, tmp_path)
    assert str(caught.value) == "--workers: must be >= 0, got -1 (from BASCULE_WORKERS)"


# the real command -------------------------------------------------------------------------


def test_command_precedence_end_to_end(tmp_path: Path) -> None:
    """Every layer at once, seen from a client: cli > env > file > defaults."""
    (tmp_path / "bascule.toml").write_text(
        "\n".join(
            [
                'app = "e2e_app:app"',
                "port = 0",
                'root_path = "/file"',
                "server_header = false",
                "date_header = false",
                'header = ["X-Layer: file"]',
            ]
        ),
        encoding="utf-8",
    )
    env = {
        "BASCULE_APP_DIR": str(APPS_DIR),
        "BASCULE_ROOT_PATH": "/env",
        "BASCULE_SERVER_HEADER": "true",
    }
    args = ["--config", "bascule.toml", "--root-path", "/cli"]
    with start_bascule(args, tmp_path, env=env) as server:
        response = httpx.get(server.url + "/scope", timeout=HTTP_TIMEOUT)
    assert response.status_code == 200
    assert json.loads(response.text)["root_path"] == "/cli"  # command line
    assert response.headers.get("server") == "bascule"  # environment over file
    assert "date" not in response.headers  # file over default
    assert response.headers.get("x-layer") == "file"  # file


def test_command_reads_pyproject_tool_bascule(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        f'[tool.bascule]\napp = "e2e_app:app"\napp-dir = {json.dumps(str(APPS_DIR))}\n'
        'port = 0\nheader = ["X-From: pyproject"]\n',
        encoding="utf-8",
    )
    with start_bascule([], tmp_path) as server:
        response = httpx.get(server.url + "/", timeout=HTTP_TIMEOUT)
    assert response.text == "ok\n"
    assert response.headers.get("x-from") == "pyproject"


def test_command_env_list_and_bool(tmp_path: Path) -> None:
    env = {
        "BASCULE_APP": "e2e_app:app",
        "BASCULE_APP_DIR": str(APPS_DIR),
        "BASCULE_BIND": "127.0.0.1:0,127.0.0.1:0",
        "BASCULE_HEADER": '["X-List: a, b"]',
        "BASCULE_ACCESS_LOG": "false",
    }
    with start_bascule([], tmp_path, env=env, listeners=2) as server:
        ports = {int(address.rsplit(":", 1)[1]) for address in server.addresses}
        assert len(ports) == 2
        for port in ports:
            response = httpx.get(f"http://127.0.0.1:{port}/", timeout=HTTP_TIMEOUT)
            assert response.headers.get("x-list") == "a, b"
        assert server.stop() == 0
    assert "bascule.access" not in server.stderr


def test_command_unknown_key_exits_2_naming_key_and_file(tmp_path: Path) -> None:
    (tmp_path / "bascule.toml").write_text("port = 0\nlog_levle = 'debug'\n", encoding="utf-8")
    result = run_bascule(["--config", "bascule.toml"], tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        "bascule: error: bascule.toml: unknown option 'log_levle' (did you mean 'log_level'?)\n"
    )


def test_command_env_type_error_exits_2(tmp_path: Path) -> None:
    result = run_bascule([], tmp_path, env={"BASCULE_HTTP2": "sometimes"})
    assert result.returncode == 2
    assert result.stderr == (
        "bascule: error: BASCULE_HTTP2: http2: expected true or false, got 'sometimes'\n"
    )


def test_command_warns_about_misspelt_variable(tmp_path: Path) -> None:
    env = {"BASCULE_PROT": "9000", "BASCULE_APP": "e2e_app:app", "BASCULE_APP_DIR": str(APPS_DIR)}
    with start_bascule(["--port", "0"], tmp_path, env=env) as server:
        assert server.lines[0] == (
            "bascule: warning: BASCULE_PROT is not an option (did you mean BASCULE_PORT?); ignored"
        )


def test_command_startup_error_names_the_file(tmp_path: Path) -> None:
    """Errors found after validation (the log set-up) still say where the value came from."""
    (tmp_path / "bascule.toml").write_text(
        'app = "e2e_app:app"\nport = 0\naccess_log_format = "{client} {nope}"\n', encoding="utf-8"
    )
    result = run_bascule(["--config", "bascule.toml", "--app-dir", str(APPS_DIR)], tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("bascule: error: --access-log-format: unknown field {nope}")
    assert result.stderr.endswith(" (from bascule.toml)\n")
