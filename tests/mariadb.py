"""A private MariaDB server for tests: its own data directory under a temp folder, a free loopback port.

Debian's ``mariadb-server`` provides the binaries (``make mariadb`` installs it when
missing); ``server_binaries()`` says why not where they are absent.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

CANDIDATES = {
    "server": ("mariadbd", "/usr/sbin/mariadbd", "mysqld", "/usr/sbin/mysqld"),
    "install_db": ("mariadb-install-db", "mysql_install_db"),
    "client": ("mariadb", "mysql"),
}


def _find(names) -> str | None:
    for name in names:
        found = shutil.which(name) or (name if os.path.isabs(name) and os.access(name, os.X_OK) else None)
        if found:
            return found
    return None


def server_binaries() -> tuple[dict[str, str], str]:
    """({role: path}, '') or ({}, why the server cannot be started here)."""
    found = {role: _find(names) for role, names in CANDIDATES.items()}
    missing = [role for role, path in found.items() if path is None]
    if missing:
        return {}, (
            f"MariaDB is not installed (no {', '.join(CANDIDATES[m][0] for m in missing)}): `make mariadb` installs "
            "Debian's mariadb-server, which needs root and apt-get"
        )
    return found, ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclasses.dataclass
class MariaDB:
    root: Path
    binaries: dict[str, str]
    port: int = 0
    user: str = "ltr"
    password: str = "ltr-test-password"
    process: subprocess.Popen | None = None

    @property
    def socket_path(self) -> str:
        return str(self.root / "mysqld.sock")

    def _root_args(self) -> list[str]:
        # mariadbd refuses to run as root unless told to; a non-root user runs it as itself.
        return ["--user=root"] if os.geteuid() == 0 else []

    def start(self, timeout_s: float = 60) -> MariaDB:
        data = self.root / "data"
        log = self.root / "install.log"
        with open(log, "w") as out:
            subprocess.run(
                [
                    self.binaries["install_db"],
                    "--no-defaults",
                    f"--datadir={data}",
                    # root@localhost without a password, reachable only over this server's own socket.
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                    *self._root_args(),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                check=True,
                timeout=timeout_s,
            )
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                self.binaries["server"],
                "--no-defaults",
                f"--datadir={data}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                f"--socket={self.socket_path}",
                f"--pid-file={self.root / 'mysqld.pid'}",
                f"--log-error={self.root / 'error.log'}",
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=32M",
                *self._root_args(),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout_s
        while not self._sql("SELECT 1", check=False):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"MariaDB did not start; see {self.root / 'error.log'}")
            time.sleep(0.3)
        self._sql(
            f"CREATE USER '{self.user}'@'127.0.0.1' IDENTIFIED BY '{self.password}'; "
            f"GRANT ALL PRIVILEGES ON *.* TO '{self.user}'@'127.0.0.1'; FLUSH PRIVILEGES;"
        )
        return self

    def _sql(self, statement: str, check: bool = True, database: str | None = None) -> str | None:
        """Runs SQL as the server's root user over its socket; the output, or None on failure if not ``check``."""
        command = [self.binaries["client"], "--no-defaults", f"--socket={self.socket_path}", "-u", "root", "-N", "-B"]
        if database:
            command.append(database)
        done = subprocess.run([*command, "-e", statement], capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            if check:
                raise RuntimeError(f"SQL failed ({statement}): {done.stderr.strip()}")
            return None
        return done.stdout

    def query(self, statement: str, database: str) -> list[list[str]]:
        return [line.split("\t") for line in (self._sql(statement, database=database) or "").splitlines()]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
