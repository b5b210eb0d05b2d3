"""One built file of a package pinned in package-lock.json, from the npm registry, without npm.

    python tools/npm_vendor.py hls.js dist/hls.min.js static/vendor/hls.min.js

For a machine with Python and no Node.js: the package's tarball at the version the lock pins, from the
registry npm would use (``NPM_CONFIG_REGISTRY``, else registry.npmjs.org), checked against the lock's
integrity hash before anything is written.
"""

import base64
import hashlib
import io
import json
import os
import sys
import tarfile
import urllib.request
from pathlib import Path


def main(package: str, member: str, target: str) -> None:
    pinned = json.loads(Path("package-lock.json").read_text())["packages"][f"node_modules/{package}"]
    registry = os.environ.get("NPM_CONFIG_REGISTRY", "https://registry.npmjs.org/").rstrip("/")
    url = pinned.get("resolved") or f"{registry}/{package}/-/{package.split('/')[-1]}-{pinned['version']}.tgz"
    with urllib.request.urlopen(url, timeout=120) as answer:  # noqa: S310 (the registry's https address)
        data = answer.read()
    algorithm, expected = pinned["integrity"].split("-", 1)
    if base64.b64encode(hashlib.new(algorithm, data).digest()).decode() != expected:
        sys.exit(f"npm_vendor: {package} {pinned['version']} from {url} does not match package-lock.json")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        content = tar.extractfile(f"package/{member}").read()
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    Path(target).write_bytes(content)
    print(f"npm_vendor: {package} {pinned['version']} {member} -> {target}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
