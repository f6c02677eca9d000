"""Our own test helpers for plugin packages: a throwaway virtual environment that borrows
this one, and pip installs into it (moved out of hbench.testing, which plugin authors get)."""

from __future__ import annotations

import sys
from pathlib import Path



def borrowing_venv(dest: str | Path) -> Path:
    """A new virtual environment at ``dest`` that sees this one's packages (hbench, its
    dependencies and pip) through a ``.pth`` file, so a plugin package installed into it
    changes nothing here. Returns its python. ``site.addsitedir`` (not a bare path) makes
    this environment's own ``.pth`` files run too, editable installs included."""
    import subprocess
    import sysconfig

    dest = Path(dest)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(dest)], check=True, timeout=120)
    py = dest / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    host = sysconfig.get_paths()["purelib"]
    (Path(purelib) / "hbench-host.pth").write_text(f"import site; site.addsitedir({host!r})\n")
    return py


def pip_install(py: str | Path, package: str | Path) -> None:
    """``pip install --no-deps PACKAGE`` into the environment of ``py`` (a plugin package
    folder, as a user would install it); raises RuntimeError with pip's output tail."""
    import subprocess

    r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(package)],
                       capture_output=True, text=True, timeout=300)
    if r.returncode:
        raise RuntimeError(f"pip install {Path(package).name} failed: {(r.stdout + r.stderr)[-800:]}")


