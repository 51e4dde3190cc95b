#!/usr/bin/python3
"""container/Containerfile builds what the repository builds and ships what
the binary needs: the runtime stage installs exactly the packages owning the
shared libraries the binary links (every further library comes with their
dependencies), the pci.ids database, and runs the plugin as its entrypoint."""

import os
import re
import shlex

from deploy_common import Findings, meson_project, plugin_binary, run, skip_unless_tool, source_path

CONTAINERFILE = "container/Containerfile"
# Libraries a sanitizer build adds; the image is always a plain release build.
SANITIZER_RUNTIMES = re.compile(r"^lib(asan|ubsan|tsan|lsan|hwasan)\.so|^libclang_rt")
# Packages a Debian image always has (Essential), so no apt-get needs them.
ESSENTIAL = {"libc6"}

binary = plugin_binary()
for tool in ("readelf", "ldd", "dpkg", "dpkg-query"):
    skip_unless_tool(tool)
f = Findings("image")


# --- parse the Containerfile into stages of instructions ---------------------------------
with open(source_path(CONTAINERFILE), encoding="utf-8") as text:
    lines = []
    pending = ""
    for line in text.read().splitlines():
        if not pending and line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full and not full.startswith("#"):
            lines.append(full)

stages = []  # [{"from": image, "name": alias, "instructions": [(INSTR, rest)]}]
for line in lines:
    instruction, _, rest = line.partition(" ")
    instruction = instruction.upper()
    if instruction == "FROM":
        words = rest.split()
        stages.append({"from": words[0], "name": words[2] if len(words) > 2 and words[1].upper() == "AS" else None,
                       "instructions": []})
    elif stages:
        stages[-1]["instructions"].append((instruction, rest.strip()))

if not f.check(len(stages) == 2, f"{CONTAINERFILE}: two stages, build and runtime (found {len(stages)})"):
    f.finish()
build, runtime = stages


def apt_packages(stage):
    packages = []
    for instruction, rest in stage["instructions"]:
        if instruction != "RUN":
            continue
        for command in re.split(r"&&|;", rest):
            words = shlex.split(command)
            if "apt-get" in words and "install" in words:
                after = words[words.index("install") + 1:]
                packages += [w for w in after if not w.startswith("-")]
    return packages


def run_text(stage):
    return " ".join(rest for instruction, rest in stage["instructions"] if instruction == "RUN")


f.check(re.fullmatch(r"(docker\.io/(library/)?)?debian:bookworm", build["from"]),
        f"{CONTAINERFILE}: the build stage is debian:bookworm (is {build['from']})")
f.check(re.fullmatch(r"(docker\.io/(library/)?)?debian:bookworm-slim", runtime["from"]),
        f"{CONTAINERFILE}: the runtime stage is debian:bookworm-slim (is {runtime['from']})")

# --- build stage: the packages and the build of scripts/install-deps.sh and meson ----------
with open(source_path("scripts/install-deps.sh"), encoding="utf-8") as text:
    script = text.read()
group = re.search(r"#\s*build\s*\n(.*?)\n\s*#", script, re.S)
build_deps = set(group.group(1).split()) if group else set()
f.check(build_deps, "scripts/install-deps.sh has a '# build' package group")
build_packages = set(apt_packages(build))
f.check(build_packages == build_deps,
        f"{CONTAINERFILE}: the build stage installs the build packages of scripts/install-deps.sh "
        f"(missing {sorted(build_deps - build_packages)}, extra {sorted(build_packages - build_deps)})")
commands = run_text(build)
f.check(re.search(r"meson setup \S+.*-Dbuildtype=release", commands) and "-Dtests=false" in commands,
        f"{CONTAINERFILE}: the build stage runs meson setup -Dbuildtype=release -Dtests=false")
f.check(re.search(r"ninja -C \S+", commands), f"{CONTAINERFILE}: the build stage runs ninja")

# What the build reads must be copied: every subdir() the top-level
# meson.build enters outside an `if` (tests/ and bench/ only with -Dtests=true).
copied = set()
for instruction, rest in build["instructions"]:
    if instruction == "COPY" and not rest.startswith("--from"):
        copied |= {w.rstrip("/") for w in shlex.split(rest)[:-1]}
with open(source_path("meson.build"), encoding="utf-8") as text:
    depth = 0
    for line in text.read().splitlines():
        code = line.split("#")[0].strip()
        if re.match(r"^if\b", code):
            depth += 1
        elif code == "endif":
            depth -= 1
        elif depth == 0:
            for subdir in re.findall(r"subdir\('([^']+)'\)", code):
                f.check(subdir in copied or "." in copied, f"{CONTAINERFILE}: the build stage copies {subdir}/")
for needed in ("meson.build", "meson_options.txt"):
    if os.path.exists(source_path(needed)):
        f.check(needed in copied or "." in copied, f"{CONTAINERFILE}: the build stage copies {needed}")


# --- runtime stage: exactly the library packages the binary needs -----------------------------
def spellings(path):
    """The ways dpkg may record `path`: as given, resolved, and with and
    without /usr (bookworm records both)."""
    names = [path, os.path.realpath(path)]
    for p in list(names):
        names.append(p[4:] if p.startswith("/usr/") else "/usr" + p)
    return names


_owners = {}


def owner_package(path):
    """The Debian package that ships `path`, or None."""
    for spelling in spellings(path):
        if spelling in _owners:
            return _owners[spelling]
    return None


def learn_owners(paths):
    """Asks dpkg once about every spelling of every path: it prints
    "package: path" for those it knows and skips the others."""
    candidates = sorted({s for p in paths for s in spellings(p)})
    for line in run(["dpkg", "-S"] + candidates).stdout.splitlines():
        package, _, shipped = line.partition(": ")
        if shipped in candidates and "," not in package:
            _owners[shipped] = package.split(":")[0].strip()


resolved = {}  # soname -> path, from the dynamic loader
for line in run(["ldd", binary]).stdout.splitlines():
    match = re.match(r"^\s*(\S+)\s+=>\s+(/\S+)", line)
    if match:
        resolved[match.group(1)] = match.group(2)
    match = re.match(r"^\s*(/\S+)\s+\(", line)
    if match:
        resolved[os.path.basename(match.group(1))] = match.group(1)
f.check(resolved, f"ldd resolves the libraries of {binary}")
# gRPC, protobuf and abseil are linked in from Debian's static archives, and
# gRPC speaks plaintext only: none of them is a runtime package, and a build
# that maps them again has lost that. (OpenSSL is mapped, through libcurl,
# the DRA side's HTTPS client of the API server.)
LINKED_IN = re.compile(r"^lib(grpc|gpr|protobuf|absl_|upb|re2|cares|address_sorting)")
for soname in sorted(resolved):
    f.check(not LINKED_IN.match(soname),
            f"{binary} maps no shared gRPC, protobuf or abseil library (maps {soname})")
learn_owners(resolved.values())
needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", run(["readelf", "-d", binary]).stdout)
f.check(needed, f"readelf lists the libraries {binary} links")

installed = set(apt_packages(runtime))
direct = set()
for soname in needed:
    if SANITIZER_RUNTIMES.match(soname):
        continue
    package = owner_package(resolved.get(soname, soname))
    if f.check(package, f"a Debian package ships {soname} (linked directly)"):
        direct.add(package)
        f.check(package in installed or package in ESSENTIAL,
                f"{CONTAINERFILE}: the runtime stage installs {package} (ships {soname})")
extra = installed - direct - {"pci.ids"}
f.check(not extra, f"{CONTAINERFILE}: the runtime stage installs only library packages the binary links, "
                   f"and pci.ids (extra: {sorted(extra)})")
f.check("pci.ids" in installed, f"{CONTAINERFILE}: the runtime stage installs pci.ids (the naming database)")


def installed_packages():
    """package -> its Depends and Pre-Depends, for every installed package."""
    packages = {}
    listing = run(["dpkg-query", "-W", "-f", "${Package}\t${db:Status-Abbrev}\t${Depends}, ${Pre-Depends}\n"])
    for line in listing.stdout.splitlines():
        name, status, depends = (line.split("\t") + ["", ""])[:3]
        if status.startswith("ii"):
            packages[name] = depends
    return packages


def depends_closure(packages):
    """Every package reached through Depends/Pre-Depends, as installed here."""
    installed = installed_packages()
    seen = set()
    todo = list(packages)
    while todo:
        package = todo.pop()
        if package in seen:
            continue
        seen.add(package)
        for clause in installed.get(package, "").split(","):
            for alternative in clause.split("|"):
                name = alternative.strip().split(" ")[0].split(":")[0]
                if name in installed:
                    todo.append(name)
                    break
    return seen


closure = depends_closure(installed | ESSENTIAL)
for soname, path in sorted(resolved.items()):
    if SANITIZER_RUNTIMES.match(soname):
        continue
    package = owner_package(path)
    if f.check(package, f"a Debian package ships {path}"):
        f.check(package in closure,
                f"{CONTAINERFILE}: {soname} ({package}) comes with the runtime packages' dependencies")

# --- the binary, its entrypoint and the labels -------------------------------------------------
copies = [rest for instruction, rest in runtime["instructions"] if instruction == "COPY"]
f.check(any(c.startswith(f"--from={build['name']}") and c.split()[-1] == "/usr/bin/kubevirt-gpu-device-plugin"
            for c in copies), f"{CONTAINERFILE}: the runtime stage copies the binary to /usr/bin from the build stage")
entrypoints = [rest for instruction, rest in runtime["instructions"] if instruction == "ENTRYPOINT"]
f.check(entrypoints and entrypoints[-1].replace(" ", "") == '["/usr/bin/kubevirt-gpu-device-plugin"]',
        f"{CONTAINERFILE}: ENTRYPOINT runs the plugin (exec form)")
f.check(not any(i == "USER" for i, _ in runtime["instructions"]),
        f"{CONTAINERFILE}: no USER change (the DaemonSet runs UID 0 without capabilities)")

version, licence = meson_project()
args = {}
for instruction, rest in runtime["instructions"]:
    if instruction == "ARG":
        name, _, default = rest.partition("=")
        args[name] = default.strip('"')
f.check(args.get("VERSION") == version, f"{CONTAINERFILE}: ARG VERSION defaults to the meson project version {version}")
labels = " ".join(rest for instruction, rest in runtime["instructions"] if instruction == "LABEL")
for key in ("source", "version", "licenses", "title", "description"):
    f.check(f"org.opencontainers.image.{key}=" in labels, f"{CONTAINERFILE}: label org.opencontainers.image.{key}")
f.check(f'org.opencontainers.image.licenses="{licence}"' in labels,
        f"{CONTAINERFILE}: the licence label is the project's licence {licence}")
f.check('org.opencontainers.image.version="${VERSION}"' in labels,
        f"{CONTAINERFILE}: the version label is ${{VERSION}}")

f.finish()
