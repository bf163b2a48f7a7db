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
# (../shared/vm/bzImage, relative to the checkout only). Prints nothing and
# fails when there is none.
find_vm_kernel() {
    local candidate
    for candidate in "${IOMMUFD_VM_KERNEL:-}" "$CACHED_KERNEL" "$REPO_DIR/../shared/vm/bzImage"; do
        if [ -n "$candidate" ] && [ -f "$candidate" ]; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

# The Debian mirror this machine's apt already uses: the first "deb" source that is
# not a security archive, from the deb822 files in /etc/apt/sources.list.d/*.sources
# or the one-line /etc/apt/sources.list (and *.list). Prints the URI, or fails
# with a message when there is none.
debian_mirror() {
    local uri
    uri="$(
        {
            for file in /etc/apt/sources.list.d/*.sources; do
                [ -f "$file" ] || continue
                # deb822: blank-line separated stanzas of "Key: value" lines.
                awk 'BEGIN { RS = ""; FS = "\n" }
                     {
                         types = ""; uris = ""
                         for (i = 1; i <= NF; i++) {
                             if ($i ~ /^[Tt]ypes:/) types = substr($i, 7)
                             if ($i ~ /^URIs:/) uris = substr($i, 6)
                         }
                         if (types ~ /(^|[ \t])deb([ \t]|$)/) {
                             n = split(uris, list, /[ \t]+/)
                             for (j = 1; j <= n; j++) if (list[j] != "") print list[j]
                         }
                     }' "$file"
            done
            for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
                [ -f "$file" ] || continue
                # one-line form: deb [options] URI suite components...
                sed -E -n 's/^[[:space:]]*deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+)[[:space:]].*/\2/p' "$file"
            done
        } | grep -E '^(https?|file|mirror\+[a-z]+)://' | grep -v -i 'security' | head -1
    )"
    if [ -z "$uri" ]; then
        echo "no Debian mirror found in /etc/apt/sources.list or /etc/apt/sources.list.d/ (needed to fetch linux-source-$KERNEL_SERIES)" >&2
        return 1
    fi
    echo "${uri%/}"
}

# Debian's linux-source-7.3 from the suite trixie-backports of this machine's own
# mirror, fetched through a private apt list and state directory so the system's
# apt configuration is left alone. Leaves the unpacked tree in $SOURCE_DIR; says
# what failed and returns non-zero otherwise.
fetch_kernel_source() {
    if [ -f "$SOURCE_DIR/Makefile" ]; then
        return 0
    fi
    local apt_dir="$CACHE_DIR/apt"
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" || return 1
    local mirror
    mirror="$(debian_mirror)" || return 1
    echo "deb $mirror trixie-backports main" > "$apt_dir/sources.list"
    local apt_options=(
        -o "Dir::Etc::SourceList=$apt_dir/sources.list"
        -o "Dir::Etc::SourceParts=/dev/null"
        -o "Dir::State::Lists=$apt_dir/lists"
        -o "Dir::Cache=$apt_dir/cache"
        -o "APT::Get::AllowUnauthenticated=false"
        -o "APT::Sandbox::User=$(id -un)"
    )
    local deb
    deb="$(find "$apt_dir" -maxdepth 1 -name "linux-source-${KERNEL_SERIES}_*.deb" | sort | tail -1)"
    if [ -z "$deb" ]; then
        echo "fetching linux-source-$KERNEL_SERIES from $mirror trixie-backports" >&2
        apt-get "${apt_options[@]}" update >&2 \
            || { echo "fetch_kernel_source: apt-get update of trixie-backports failed" >&2; return 1; }
        (cd "$apt_dir" && apt-get "${apt_options[@]}" download "linux-source-$KERNEL_SERIES") >&2 \
            || { echo "fetch_kernel_source: apt-get download linux-source-$KERNEL_SERIES failed" >&2; return 1; }
        deb="$(find "$apt_dir" -maxdepth 1 -name "linux-source-${KERNEL_SERIES}_*.deb" | sort | tail -1)"
        [ -n "$deb" ] || { echo "fetch_kernel_source: apt-get download left no .deb in $apt_dir" >&2; return 1; }
    fi
    echo "unpacking $(basename "$deb")" >&2
    local staging="$CACHE_DIR/staging"
    rm -rf "$staging" && mkdir -p "$staging" || return 1
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$staging" --wildcards './usr/src/linux-source-*.tar.xz' \
        || { echo "fetch_kernel_source: $deb has no linux-source tarball" >&2; return 1; }
    tar -xJf "$staging"/usr/src/linux-source-$KERNEL_SERIES.tar.xz -C "$CACHE_DIR" \
        || { echo "fetch_kernel_source: unpacking the tarball failed" >&2; return 1; }
    rm -rf "$staging"
    [ -f "$SOURCE_DIR/Makefile" ] || { echo "fetch_kernel_source: no $SOURCE_DIR/Makefile after unpacking" >&2; return 1; }
}

# Puts the Swift toolchain on the PATH: a non-login shell (CI, cron) may lack the login
# profile that adds it, so the system's /etc/profile is read when `swift` is not found.
# Fails with a message when there is still no toolchain.
ensure_swift() {
    if ! command -v swift >/dev/null 2>&1 && [ -r /etc/profile ]; then
        set +u
        # shellcheck disable=SC1091
        . /etc/profile >/dev/null 2>&1
        set -u
    fi
    command -v swift >/dev/null 2>&1 || { echo "Swift 6.3 is required on the PATH" >&2; return 1; }
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
