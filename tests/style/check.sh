#!/usr/bin/env bash
# Style gate: clang-format (14), banned functions, header self-containment.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
fail=0
mapfile -t files < <(git ls-files '*.c' '*.h')

echo "[style] clang-format on ${#files[@]} files"
clang-format --dry-run --Werror "${files[@]}" || fail=1

echo "[style] banned functions"
banned='\b(strcpy|strcat|sprintf|vsprintf|gets|strtok|atoi|atol|atof|system|alloca)[[:space:]]*\('
if grep -nE "$banned" "${files[@]}" | grep -vE '^[^:]+:[0-9]+:\s*(/\*|\*|//)'; then
    echo "[style] banned function used (see STYLE.md section 14)" >&2
    fail=1
fi

echo "[style] every header compiles on its own"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
incs=(-I common/include -I proto/include -I controlplane -I dataplane -I gwctl -I tests/support
      -I .deps/wolfssl/include)
for h in $(git ls-files '*.h' | grep -v '^tests/fuzz/'); do
    echo "#include \"$top/$h\"" > "$tmp/one.c"
    if ! gcc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fsyntax-only "${incs[@]}" \
        $(pkg-config --cflags libuv libnghttp2 jansson) "$tmp/one.c" 2> "$tmp/err"; then
        echo "[style] $h does not compile on its own:" >&2
        head -5 "$tmp/err" >&2
        fail=1
    fi
done
exit $fail
