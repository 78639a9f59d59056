"""Headless Chromium for the nspawn tier's Cockpit tests, driven through
chromedriver by python3-selenium (Debian's chromium, chromium-driver and
python3-selenium).

The browser runs in a container's network namespace: cockpit-ws's local
session needs no login, so it listens on that container's loopback only
(cockpit-ws(8): isolate its port). The driving code is therefore a process
of its own, started with nsenter --net= and run by Debian's /usr/bin/python3
(whose dist-packages hold selenium, whichever python3 runs the tests). The
tests talk to it through Browser: one JSON command per line on its stdin,
one JSON answer per line on its stdout.
"""
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

SYSTEM_PYTHON = "/usr/bin/python3"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def missing():
    """Why no browser can be driven here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER, SYSTEM_PYTHON):
        if not os.access(path, os.X_OK):
            return f"{path} is not installed (apt-get install chromium chromium-driver python3-selenium)"
    r = subprocess.run([SYSTEM_PYTHON, "-c", "import selenium"], capture_output=True)
    if r.returncode != 0:
        return "python3-selenium is not installed"
    return None


class Browser:
    """The test's side: starts the driver process in network namespace `netns`."""

    def __init__(self, netns, log_path):
        self.log = open(log_path, "w")
        self.home = tempfile.mkdtemp(prefix="freeha-browser-")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.home, "LANG": "C.UTF-8"}
        self.proc = subprocess.Popen(["nsenter", f"--net=/run/netns/{netns}", SYSTEM_PYTHON, os.path.abspath(__file__)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     env=env, start_new_session=True)
        self.answers = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.call("start", timeout=60)

    def _read(self):
        for line in self.proc.stdout:
            self.answers.put(line)
        self.answers.put(None)

    def call(self, op, *args, timeout=30):
        self.proc.stdin.write(json.dumps([op, *args]) + "\n")
        self.proc.stdin.flush()
        try:
            line = self.answers.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the browser did not answer {op}{list(args)} within {timeout} s") from None
        if line is None:
            raise AssertionError(f"the browser process ended (status {self.proc.wait()}); see {self.log.name}")
        answer = json.loads(line)
        if "error" in answer:
            raise AssertionError(f"browser: {op}{list(args)}: {answer['error']}")
        return answer["value"]

    def __getattr__(self, op):
        return lambda *args, **kw: self.call(op, *args, **kw)

    def close(self):
        if self.log.closed:
            return
        try:
            if self.proc.poll() is None:
                self.call("quit", timeout=20)
                self.proc.wait(timeout=10)
        except Exception:  # noqa: BLE001 - a browser that does not quit is killed
            os.killpg(self.proc.pid, 9)
            self.proc.wait()
        finally:
            self.log.close()
            shutil.rmtree(self.home, ignore_errors=True)


# --- the driver process -------------------------------------------------------

def serve():
    from selenium import webdriver
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver = None

    def find(css):
        return driver.find_element(By.CSS_SELECTOR, css)

    def live(read):
        """read(), again when the page re-rendered the element between its
        lookup and its use (the page redraws its tables at every update)."""
        for _ in range(20):
            try:
                return read()
            except StaleElementReferenceException:
                time.sleep(0.01)
        return read()

    def start():
        nonlocal driver
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1280,1100", "--no-first-run", "--disable-extensions",
                    f"--user-data-dir={os.environ['HOME']}/profile"):
            options.add_argument(arg)
        driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
        driver.set_page_load_timeout(20)

    def wait_http(url, timeout):
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    return r.status
            except OSError as e:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{url} did not answer within {timeout} s: {e}") from None
                time.sleep(0.1)

    def text(css):
        """The element's text, or None when there is none (or it is hidden: then "")."""
        try:
            return live(lambda: find(css).text)
        except NoSuchElementException:
            return None

    def wait_text(css, expected, timeout):
        """Waits until the element's text starts with `expected`; returns how long that took."""
        started = time.monotonic()
        seen = None
        while time.monotonic() - started < timeout:
            seen = text(css)
            if seen is not None and seen.startswith(expected):
                return time.monotonic() - started
            time.sleep(0.02)
        raise RuntimeError(f"{css} still says {seen!r}, not {expected!r}, after {timeout} s")

    ops = {
        "start": start,
        "wait_http": wait_http,
        "open": lambda url: driver.get(url),
        "text": text,
        "texts": lambda css: live(lambda: [e.text for e in driver.find_elements(By.CSS_SELECTOR, css)]),
        "displayed": lambda css: live(lambda: find(css).is_displayed()),
        "enabled": lambda css: live(lambda: find(css).is_enabled()),
        "attribute": lambda css, name: live(lambda: find(css).get_attribute(name)),
        "click": lambda css: live(lambda: find(css).click()),
        "select": lambda css, value: live(lambda: Select(find(css)).select_by_value(value)),
        "wait_text": wait_text,
        "screenshot": lambda path: driver.save_screenshot(path),
        "console": lambda: [e["message"] for e in driver.get_log("browser")],
    }
    for line in sys.stdin:
        op, *args = json.loads(line)
        if op == "quit":
            if driver is not None:
                driver.quit()
            print(json.dumps({"value": None}), flush=True)
            return
        try:
            answer = {"value": ops[op](*args)}
        except Exception as e:  # noqa: BLE001 - every failure is the caller's answer
            answer = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    serve()
