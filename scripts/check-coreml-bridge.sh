#!/usr/bin/env bash
# Checks the Objective-C++ CoreML bridge (native/coreml-bridge) on a machine without macOS:
#   1. clang -fsyntax-only compiles every *.mm as Objective-C++17 against GNUstep's Foundation headers, with
#      coreml_api_subset.h standing in for CoreML and libdispatch (coreml_imports.h picks it when the SDK is
#      absent). An undeclared API, a misspelled selector or a wrong argument type fails the check.
#   2. Every declaration of coreml_api_subset.h carries its API_AVAILABLE, none newer than the deployment target
#      (scripts/check-coreml-availability.mjs: clang enforces availability only when building for Apple platforms).
#   3. No manual retain/release: the macOS build uses ARC, which this check cannot enable (below).
#   4. strided_copy_test.cc, the bridge's layout arithmetic and its overflow checks, is compiled and run.
#   5. The iPhone runner app (ios/): its Objective-C++ sources that use CoreML through the bridge's core
#      (ios/SoraRunner/*.mm, with ios_api_subset.h standing in for os/proc.h and mach) type-check the same way;
#      app.mm, which needs UIKit (not in GNUstep), is left to xcodebuild on a Mac. The portable runner core
#      (ios/runner-core) is compiled and its test run against the protocol's vectors (test/fixtures/runner-protocol).
# Limits: Debian's GNUstep is built on GCC's Objective-C runtime, whose headers clang rejects under -fobjc-arc,
# so the files are checked without ARC; nothing here links or runs CoreML.
#
# Usage: scripts/check-coreml-bridge.sh [bridge-dir]     (default: native/coreml-bridge)
# Needs: clang and GNUstep Foundation headers (Debian: clang libgnustep-base-dev), a C++17 compiler,
#        node_modules (node-addon-api, node-api-headers).
# Exit status: 0 all checks pass, 1 a check failed, 2 a prerequisite is missing.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bridge="$(cd "${1:-$root/native/coreml-bridge}" && pwd)"
clang="${CLANG:-clang}"
cxx="${CXX:-c++}"

missing() {
  echo "check-coreml-bridge: $1" >&2
  exit 2
}

command -v "$clang" >/dev/null || missing "clang not found (Debian: apt-get install clang)"
command -v "$cxx" >/dev/null || missing "no C++ compiler ($cxx)"

# Defines and include paths GNUstep was built with; GCC-only options (dependency files, -g, -O2) are dropped.
# Its headers go in as system headers, so their own warnings do not count against the bridge.
objc_flags=()
if command -v gnustep-config >/dev/null; then
  for flag in $(gnustep-config --objc-flags); do
    case "$flag" in
      -D* | -fconstant-string-class=*) objc_flags+=("$flag") ;;
      -I.) ;;
      -I*) [ -d "${flag#-I}" ] && objc_flags+=(-isystem "${flag#-I}") ;;
    esac
  done
else
  objc_flags=(-DGNUSTEP -DGNUSTEP_BASE_LIBRARY=1 -DGNU_RUNTIME=1 -fconstant-string-class=NSConstantString
    -isystem /usr/include/GNUstep)
fi
foundation_found=no
for ((i = 0; i < ${#objc_flags[@]}; i++)); do
  if [ "${objc_flags[$i]}" = -isystem ] && [ -f "${objc_flags[$((i + 1))]}/Foundation/Foundation.h" ]; then
    foundation_found=yes
  fi
done
[ "$foundation_found" = yes ] || missing "GNUstep Foundation headers not found (Debian: apt-get install libgnustep-base-dev)"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

# Debian's GNUstep uses GCC's Objective-C runtime headers (objc/objc.h), which live in GCC's own include dir.
gcc_include="$("$cxx" -print-file-name=include)"
[ -f "$gcc_include/objc/objc.h" ] && objc_flags+=(-isystem "$gcc_include")

# With blocks enabled, GNUstep includes <objc/blocks_runtime.h>, which only libobjc2 ships. These are the two
# entry points of the Blocks ABI; -idirafter lets a real libobjc2 header win where one is installed.
mkdir -p "$scratch/shim/objc"
cat >"$scratch/shim/objc/blocks_runtime.h" <<'EOF'
#pragma once
#ifdef __cplusplus
extern "C" {
#endif
void *_Block_copy(const void *block);
void _Block_release(const void *block);
#ifdef __cplusplus
}
#endif
EOF

napi_include="$(cd "$root" && node -p "require('node-addon-api').include_dir")"
napi_headers="$(cd "$root" && node -p "require('node-api-headers').include_dir")"

status=0
checked=0
for source in "$bridge"/*.mm; do
  if "$clang" -fsyntax-only -x objective-c++ -std=c++17 -fobjc-runtime=gnustep-2.0 -fblocks \
    -Wall -Wextra -Werror "${objc_flags[@]}" -idirafter "$scratch/shim" \
    -isystem "$root/$napi_include" -isystem "$napi_headers" -DNAPI_VERSION=8 -DNAPI_DISABLE_CPP_EXCEPTIONS -DNODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS \
    -I "$bridge" "$source"; then
    checked=$((checked + 1))
  else
    echo "check-coreml-bridge: $(basename "$source") does not type-check" >&2
    status=1
  fi
done

ios_checked=0
if [ -z "${1:-}" ]; then
  for source in "$root"/ios/SoraRunner/*.mm; do
    [ "$(basename "$source")" = app.mm ] && continue
    if "$clang" -fsyntax-only -x objective-c++ -std=c++17 -fobjc-runtime=gnustep-2.0 -fblocks \
      -Wall -Wextra -Werror "${objc_flags[@]}" -idirafter "$scratch/shim" \
      -I "$bridge" -I "$root/ios/runner-core" -I "$root/ios/SoraRunner" "$source"; then
      ios_checked=$((ios_checked + 1))
    else
      echo "check-coreml-bridge: ios/SoraRunner/$(basename "$source") does not type-check" >&2
      status=1
    fi
  done
  core="$root/ios/runner-core"
  if "$cxx" -std=c++17 -Wall -Wextra -Werror -pthread -o "$scratch/runner_core_test" "$core/runner_core_test.cc" \
    "$core/runner.cc" "$core/json.cc" "$core/frame.cc" "$core/tensor_convert.cc" &&
    "$scratch/runner_core_test" "$root/test/fixtures/runner-protocol"; then
    :
  else
    echo "check-coreml-bridge: runner_core_test failed" >&2
    status=1
  fi
fi

if ! node "$root/scripts/check-coreml-availability.mjs" "$bridge/coreml_api_subset.h" "$root/CMakeLists.txt"; then
  status=1
fi

if grep -nE '[[:space:]](retain|release|autorelease|dealloc)\]' "$bridge"/*.mm; then
  echo "check-coreml-bridge: manual reference counting in ARC sources (above)" >&2
  status=1
fi

if "$cxx" -std=c++17 -Wall -Wextra -Werror -o "$scratch/strided_copy_test" "$bridge/strided_copy_test.cc" &&
  "$scratch/strided_copy_test"; then
  :
else
  echo "check-coreml-bridge: strided_copy_test failed" >&2
  status=1
fi

if [ "$status" -eq 0 ]; then
  echo "check-coreml-bridge: $checked Objective-C++ files type-check against GNUstep Foundation + coreml_api_subset.h"
  [ -z "${1:-}" ] && echo "check-coreml-bridge: $ios_checked iPhone app files (ios/SoraRunner, all but the UIKit app.mm) type-check too"
fi
exit "$status"
