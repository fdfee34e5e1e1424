// The one place the bridge imports Apple frameworks. On macOS these are the SDK's headers; elsewhere
// (the Linux syntax check, scripts/check-coreml-bridge.sh) GNUstep's Foundation plus coreml_api_subset.h,
// which declares exactly the CoreML and libdispatch API the bridge uses.
#pragma once

#if __has_include(<CoreML/CoreML.h>)
#import <CoreML/CoreML.h>
#import <Foundation/Foundation.h>
#include <dispatch/dispatch.h>
#else
#import <Foundation/Foundation.h>
#include "coreml_api_subset.h"
#endif
