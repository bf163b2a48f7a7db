# Shared by the VM lane's scripts: where things are cached and how the
# kernel source is fetched. Sourced, not run.

VM_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$VM_DIR/../.." && pwd)"
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/swift-iommufd"
KERNEL_SERIES=7.3
CACHED_KERNEL="$CACHE_DIR/bzImage-$KERNEL_SERIES"
SOURCE_DIR="$CACHE_DIR/linux-source-$KERNEL_SERIES"

# The kernel to boot, in order of preference: IOMMUFD_VM_KERNEL, the one
# build-kernel cached, then the prebuilt one shipped beside the checkout
# (../shared/vm/bzImage on the team's machines). Prints nothing and fails
# when there is none.
find_vm_kernel() {
    local candidate
    for candidate in "${IOMMUFD_VM_KERNEL:-}" "$CACHED_KERNEL" \
        "$REPO_DIR/../shared/vm/bzImage" "/work/shared/vm/bzImage"; do
        if [ -n "$candidate" ] && [ -f "$candidate" ]; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

# Debian's linux-source-7.3 (trixie-backports), fetched through a private apt
# list and state directory so the system's apt configuration is left alone.
# Leaves the unpacked tree in $SOURCE_DIR.
fetch_kernel_source() {
    if [ -f "$SOURCE_DIR/Makefile" ]; then
        return 0
    fi
    local apt_dir="$CACHE_DIR/apt"
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
    echo "deb http://deb.debian.org/debian trixie-backports main" > "$apt_dir/sources.list"
    local apt_options=(
        -o "Dir::Etc::SourceList=$apt_dir/sources.list"
        -o "Dir::Etc::SourceParts=/dev/null"
        -o "Dir::State::Lists=$apt_dir/lists"
        -o "Dir::Cache=$apt_dir/cache"
        -o "APT::Get::AllowUnauthenticated=false"
    )
    local deb
    deb="$(ls "$apt_dir"/linux-source-${KERNEL_SERIES}_*.deb 2>/dev/null | head -1)"
    if [ -z "$deb" ]; then
        echo "fetching linux-source-$KERNEL_SERIES from trixie-backports" >&2
        apt-get "${apt_options[@]}" update >&2 || return 1
        (cd "$apt_dir" && apt-get "${apt_options[@]}" download "linux-source-$KERNEL_SERIES") >&2 || return 1
        deb="$(ls "$apt_dir"/linux-source-${KERNEL_SERIES}_*.deb | head -1)"
    fi
    echo "unpacking $(basename "$deb")" >&2
    local staging="$CACHE_DIR/staging"
    rm -rf "$staging" && mkdir -p "$staging"
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$staging" --wildcards './usr/src/linux-source-*.tar.xz' || return 1
    tar -xJf "$staging"/usr/src/linux-source-$KERNEL_SERIES.tar.xz -C "$CACHE_DIR" || return 1
    rm -rf "$staging"
    [ -f "$SOURCE_DIR/Makefile" ]
}

# Installs Debian packages that are missing (CI machines start bare).
ensure_packages() {
    local missing=()
    local package
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    echo "installing ${missing[*]}" >&2
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2 \
        || { $sudo apt-get update >&2 && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2; }
}
