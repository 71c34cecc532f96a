#!/usr/bin/env bash
# Checks what `make install DESTDIR=STAGE PREFIX=PREFIX` put in STAGE: the versioned shared
# library and its two links, the SONAME, the static library, the header, and .pc files whose
# flags (through PKG_CONFIG_SYSROOT_DIR) point into the staged tree.
#   bash tests/c/check-install.sh STAGE PREFIX VERSION
set -euo pipefail
stage=$1 prefix=$2 version=$3
lib=$stage$prefix/lib
passes=0 fails=0
check() { # check NAME CONDITION...
	local name=$1; shift
	if "$@"; then echo "PASS  install: $name"; passes=$((passes + 1)); else echo "FAIL  install: $name"; fails=$((fails + 1)); fi
}
# The ABI version the installed header declares names the SONAME the library must carry.
abi=$(sed -n 's/^#define CERTSTORE_ABI_VERSION \([0-9]*\)$/\1/p' "$stage$prefix/include/certstore.h")
soname=libcertstore.so.$abi
real=$soname.$version

check "header declares CERTSTORE_ABI_VERSION ($abi)" test -n "$abi"
check "$real is a file" test -f "$lib/$real" -a ! -L "$lib/$real"
check "$soname -> $real" test "$(readlink "$lib/$soname")" = "$real"
check "libcertstore.so -> $soname" test "$(readlink "$lib/libcertstore.so")" = "$soname"
check "SONAME $soname (readelf -d)" test "$(readelf -d "$lib/$real" | sed -n 's/.*(SONAME).*\[\(.*\)\]$/\1/p')" = "$soname"
check "no debug info in $real" bash -c "! objdump -h '$lib/$real' | grep -qE '^ *[0-9]+ \.debug_'"
check "libcertstore.a" test -f "$lib/libcertstore.a"
check "no debug info in libcertstore.a" bash -c "! objdump -h '$lib/libcertstore.a' | grep -qE '^ *[0-9]+ \.debug_'"
check "include/certstore.h" cmp -s "$stage$prefix/include/certstore.h" "$(dirname "$0")/../../include/certstore.h"

# echo: pkg-config ends its output with a blank.
pc() { echo $(PKG_CONFIG_SYSROOT_DIR=$stage PKG_CONFIG_PATH= PKG_CONFIG_LIBDIR=$lib/pkgconfig pkg-config "$@"); }
check "certstore.pc version $version" test "$(pc --modversion certstore)" = "$version"
check "cflags -I$stage$prefix/include" test "$(pc --cflags certstore)" = "-I$stage$prefix/include"
check "libs -L$lib -lcertstore" test "$(pc --libs certstore)" = "-L$lib -lcertstore"
check "static libs add Libs.private" bash -c "[[ '$(pc --static --libs certstore)' == '-L$lib -lcertstore -l'* ]]"
check "certstore-static.pc names libcertstore.a" bash -c "[[ '$(pc --libs certstore-static)' == '-L$lib -l:libcertstore.a -l'* ]]"

echo "install: $passes passed, $fails failed"
((fails == 0))
