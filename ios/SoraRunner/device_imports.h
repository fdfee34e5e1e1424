// The one place the runner app imports iOS system headers beyond Foundation and CoreML (coreml_imports.h). On an
// iPhone these are the SDK's; elsewhere (the Linux syntax check) ios_api_subset.h declares what the app uses.
#pragma once

#include "coreml_imports.h"

#if __has_include(<os/proc.h>)
#include <mach/mach.h>
#include <os/proc.h>
#else
#include "ios_api_subset.h"
#endif
