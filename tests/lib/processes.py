"""Ending the helper processes tests start (a probe, a Prometheus): politely, then surely."""
import subprocess


def end(process, grace):
    """SIGTERM, up to `grace` seconds to exit, then SIGKILL; returns once it is reaped."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
