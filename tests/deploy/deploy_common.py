"""Shared helpers of the deployment checks: where the repository and the
plugin binary are, loading the YAML files, and reporting findings.

Each check script collects every problem it finds and exits 1 after printing
them all, 0 when there are none, and 77 (meson's "skipped") when a tool it
needs is missing."""

import os
import re
import subprocess
import sys

SKIP = 77

try:
    import yaml
except ImportError:  # python3-yaml, installed by scripts/install-deps.sh
    print("skipped: python3-yaml is not installed", file=sys.stderr)
    sys.exit(SKIP)

SOURCE_ROOT = os.environ.get(
    "KVGPU_SOURCE_ROOT",
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def source_path(*parts):
    return os.path.join(SOURCE_ROOT, *parts)


def plugin_binary():
    binary = os.environ.get("KVGPU_PLUGIN_BINARY")
    if not binary or not os.access(binary, os.X_OK):
        print("skipped: set KVGPU_PLUGIN_BINARY to the built kubevirt-gpu-device-plugin", file=sys.stderr)
        sys.exit(SKIP)
    return binary


def skip_unless_tool(tool):
    for directory in os.environ.get("PATH", "/usr/bin:/bin").split(":"):
        if os.access(os.path.join(directory, tool), os.X_OK):
            return
    print(f"skipped: {tool} is not installed", file=sys.stderr)
    sys.exit(SKIP)


def yaml_files(directory):
    """Every .yaml/.yml file of a repository directory, sorted."""
    full = source_path(directory)
    return sorted(os.path.join(directory, name) for name in os.listdir(full)
                  if name.endswith((".yaml", ".yml")))


def load_documents(relative):
    """The documents of one YAML file; raises with the file's name when it
    does not parse."""
    with open(source_path(relative), encoding="utf-8") as f:
        text = f.read()
    try:
        return [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        raise ValueError(f"{relative}: not valid YAML: {e}") from e


def check_parses(findings, directories):
    """Every YAML file of the directories parses, and every document in it is
    an object with apiVersion and kind. Stops the check when one does not."""
    for directory in directories:
        for relative in yaml_files(directory):
            try:
                docs = load_documents(relative)
            except ValueError as e:
                findings.check(False, str(e))
                continue
            findings.check(docs, f"{relative}: holds at least one document")
            for doc in docs:
                findings.check(isinstance(doc, dict) and doc.get("apiVersion") and doc.get("kind"),
                               f"{relative}: every document has apiVersion and kind")
    if findings.problems:
        findings.finish()


def objects_of_kind(kind, directories):
    """(file, object) for every Kubernetes object of `kind` in the directories."""
    found = []
    for directory in directories:
        for relative in yaml_files(directory):
            for doc in load_documents(relative):
                if isinstance(doc, dict) and doc.get("kind") == kind:
                    found.append((relative, doc))
    return found


def meson_project():
    """(version, license) from the project() call of the top-level meson.build."""
    with open(source_path("meson.build"), encoding="utf-8") as f:
        text = f.read()
    version = re.search(r"^\s*version:\s*'([^']+)'", text, re.M)
    licence = re.search(r"^\s*license:\s*'([^']+)'", text, re.M)
    return (version.group(1) if version else None, licence.group(1) if licence else None)


def run(argv, **kwargs):
    return subprocess.run(argv, capture_output=True, text=True, **kwargs)


# The kubelet's rule for an extended resource name, checked in Register: one
# "/", a lowercase DNS-1123 subdomain before it, not (ending in)
# kubernetes.io, and a name part of at most 63 characters.
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_NAME_PART = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


def resource_name_problem(name):
    """Why the kubelet would refuse `name` as a device plugin resource, or None."""
    if not isinstance(name, str) or name.count("/") != 1:
        return "needs exactly one '/'"
    domain, part = name.split("/")
    if not _DNS1123_SUBDOMAIN.match(domain):
        return f"domain {domain!r} is not a lowercase DNS-1123 subdomain"
    if domain == "kubernetes.io" or domain.endswith(".kubernetes.io"):
        return "the kubernetes.io domain is reserved"
    if len("requests." + name) > 253:
        return "longer than 253 characters with the requests. prefix"
    if len(part) > 63 or not _NAME_PART.match(part):
        return f"name part {part!r} is not at most 63 characters of [A-Za-z0-9] with -_. inside"
    return None


class Findings:
    """Collects failed checks so that one run reports all of them."""

    def __init__(self, title):
        self.title = title
        self.problems = []
        self.checked = 0

    def check(self, condition, message):
        self.checked += 1
        if not condition:
            self.problems.append(message)
        return bool(condition)

    def finish(self):
        for problem in self.problems:
            print(f"FAIL: {problem}")
        print(f"{self.title}: {self.checked - len(self.problems)} checks passed, {len(self.problems)} failed")
        sys.exit(1 if self.problems else 0)
