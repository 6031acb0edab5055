"""Turn a pdp bundle directory into a Kubernetes ConfigMap, and the volume `items` to mount it.

    python deploy/kubernetes/bundle_configmap.py BUNDLE --name NAME --namespace NS > cm.yaml
    python deploy/kubernetes/bundle_configmap.py BUNDLE --items     # the Deployment's items

A ConfigMap is flat: its keys cannot contain `/`. A bundle file `orders/read.cedar` is stored
under the key `orders__read.cedar`, and the pod's volume maps each key back to its path with
`items`. A key missing from `items` is not mounted at all, so both come from this script and
tests/deploy checks that the examples agree. The bundle is loaded and compiled first (as `pdp
check` does): a bundle that does not load is never turned into a ConfigMap. Exit 0 written,
3 the bundle does not load or cannot be stored in a ConfigMap (the reason names the file).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from pdp.bundle import load_bundle
from pdp.bundle.loader import read_bundle
from pdp.errors import BundleError

KEY_SEPARATOR = "__"
KEY_PATTERN = re.compile(r"[-._a-zA-Z0-9]+")  # what the API server accepts as a ConfigMap key
MAX_KEY_LENGTH = 253
# The API server refuses a ConfigMap over 1 MiB (etcd's object limit); keep room for metadata.
MAX_DATA_BYTES = 1024 * 1024 - 16 * 1024
DEFAULT_LABELS = {"app.kubernetes.io/name": "pdp", "app.kubernetes.io/component": "bundle"}
EXIT_OK = 0
EXIT_BUNDLE = 3
REVISION_ANNOTATION = "pdp/bundle-revision"  # the revision pdp will report for this content
NAME_ANNOTATION = "pdp/bundle-name"


class ConfigMapError(Exception):
    """The bundle cannot be stored in a ConfigMap; the message names the file."""


def key_for(path: str) -> str:
    """The ConfigMap key of bundle path `path` (POSIX, relative): `/` becomes `__`."""
    if KEY_SEPARATOR in path:
        raise ConfigMapError(f"{path}: `{KEY_SEPARATOR}` is reserved to stand for `/` in keys")
    key = path.replace("/", KEY_SEPARATOR)
    if not KEY_PATTERN.fullmatch(key) or len(key) > MAX_KEY_LENGTH:
        raise ConfigMapError(
            f"{path}: not a valid ConfigMap key as `{key}` (letters, digits, `-`, `_`, `.`, "
            f"at most {MAX_KEY_LENGTH} characters)"
        )
    return key


def bundle_files(root: Path) -> dict[str, str]:
    """The bundle's content files as {relative path: text}, exactly those pdp reads."""
    if not root.is_dir():
        raise ConfigMapError(f"{root}: not a directory")
    return dict(read_bundle(root).files)


def items(files: dict[str, str]) -> list[dict[str, str]]:
    """The volume `items` that mount every key at its bundle path, sorted by path."""
    return [{"key": key_for(path), "path": path} for path in sorted(files)]


def configmap(
    root: Path, name: str, namespace: str, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    """The ConfigMap holding the bundle at `root`; raises BundleError or ConfigMapError."""
    bundle = load_bundle(root)
    files = bundle_files(root)
    size = sum(len(key_for(p)) + len(text.encode()) for p, text in files.items())
    if size > MAX_DATA_BYTES:
        raise ConfigMapError(
            f"{root}: {size} bytes, over the {MAX_DATA_BYTES} a ConfigMap can hold; "
            "split the bundle or serve it from an image volume"
        )
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels or DEFAULT_LABELS,
            "annotations": {
                REVISION_ANNOTATION: bundle.revision,
                NAME_ANNOTATION: bundle.name,
            },
        },
        "data": {key_for(path): files[path] for path in sorted(files)},
    }


class _LiteralDumper(yaml.SafeDumper):
    """Multi-line strings as `|` blocks, so a policy reads in the ConfigMap as in its file."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_LiteralDumper.add_representer(str, _text)


def dump(document: Any, header: str = "") -> str:
    """YAML text of `document`, keys in the given order, with `header` as a comment on top."""
    body = yaml.dump(document, Dumper=_LiteralDumper, sort_keys=False, width=100)
    comment = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return comment + body


def rewrite_items(manifest: Path, files: dict[str, str]) -> None:
    """Replace the flow-style `items:` list(s) in `manifest` with the bundle's, in place."""
    lines = manifest.read_text(encoding="utf-8").splitlines(keepends=True)
    out: list[str] = []
    index = 0
    found = False
    while index < len(lines):
        line = lines[index]
        out.append(line)
        index += 1
        if line.strip() != "items:":
            continue
        found = True
        indent = " " * (len(line) - len(line.lstrip()) + 2)
        while index < len(lines) and lines[index].strip().startswith("- { key:"):
            index += 1
        out += [f"{indent}- {{ key: {i['key']}, path: {i['path']} }}\n" for i in items(files)]
    if not found:
        raise ConfigMapError(f"{manifest}: no `items:` list to rewrite")
    manifest.write_text("".join(out), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bundle_configmap.py", description="A pdp bundle as a Kubernetes ConfigMap."
    )
    parser.add_argument("bundle", type=Path, help="bundle directory")
    parser.add_argument("--name", default="pdp-bundle", help="ConfigMap name")
    parser.add_argument("--namespace", default="default", help="ConfigMap namespace")
    parser.add_argument(
        "--items", action="store_true", help="print the volume `items` list instead"
    )
    parser.add_argument(
        "--write-items",
        type=Path,
        action="append",
        default=[],
        metavar="MANIFEST",
        help="rewrite the `items:` list of MANIFEST in place (repeatable), print nothing",
    )
    args = parser.parse_args(argv)
    try:
        if args.write_items:
            load_bundle(args.bundle)
            for manifest in args.write_items:
                rewrite_items(manifest, bundle_files(args.bundle))
            return EXIT_OK
        if args.items:
            sys.stdout.write(dump(items(bundle_files(args.bundle))))
            return EXIT_OK
        document = configmap(args.bundle, args.name, args.namespace)
    except BundleError as exc:
        for problem in exc.problems:
            print(f"{problem}", file=sys.stderr)
        print(f"error: bundle {args.bundle} does not load", file=sys.stderr)
        return EXIT_BUNDLE
    except (ConfigMapError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BUNDLE
    header = (
        f"The bundle {args.bundle.as_posix()} as a ConfigMap, generated by "
        "deploy/kubernetes/bundle_configmap.py:\ndo not edit, re-run it. Mount it with the "
        "volume `items` that `--items` prints."
    )
    sys.stdout.write(dump(document, header))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
