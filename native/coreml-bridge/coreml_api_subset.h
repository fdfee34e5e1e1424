// The CoreML and libdispatch API the bridge uses, declared for the Linux syntax-and-type check
// (scripts/check-coreml-bridge.sh, clang + GNUstep Foundation). Never used on macOS: coreml_imports.h
// includes the SDK there. Each declaration follows Apple's documented signature, nullability included,
// and carries Apple's availability as API_AVAILABLE(macos(…)); the check refuses a declaration without
// one, and one newer than the bridge's deployment target (CMakeLists.txt), which the bridge would have
// to guard with @available. Only what the bridge calls is declared, so a call to anything else fails
// the check, as it should until it is added here, checked against Apple's documentation.
#pragma once

#import <Foundation/Foundation.h>

#include <stdint.h>

// Foundation bits GNUstep lacks ------------------------------------------------------------------------

// NS_NOESCAPE (Foundation NSObjCRuntime.h): the block does not outlive the call.
#ifndef NS_NOESCAPE
#define NS_NOESCAPE __attribute__((noescape))
#endif

// API_AVAILABLE (os/availability.h), written as in Apple's headers: API_AVAILABLE(macos(10.13), ios(11.0)).
// Clang parses the attributes on every target but enforces them only when building for Apple platforms.
#ifndef API_AVAILABLE
#define SORA_AVAILABLE_macos(version) __attribute__((availability(macos, introduced = version)))
#define SORA_AVAILABLE_ios(version) __attribute__((availability(ios, introduced = version)))
#define SORA_AVAILABLE_ONE(platform) SORA_AVAILABLE_##platform
#define SORA_AVAILABLE_TWO(first, second) SORA_AVAILABLE_##first SORA_AVAILABLE_##second
#define SORA_AVAILABLE_PICK(first, second, name, ...) name
#define API_AVAILABLE(...) SORA_AVAILABLE_PICK(__VA_ARGS__, SORA_AVAILABLE_TWO, SORA_AVAILABLE_ONE)(__VA_ARGS__)
#endif

NS_ASSUME_NONNULL_BEGIN

// libdispatch (Debian ships no libdispatch headers) ----------------------------------------------------
// With Objective-C, dispatch objects are Objective-C objects (OS_OBJECT_USE_OBJC), so ARC manages them.

API_AVAILABLE(macos(10.6), ios(4.0))
@protocol OS_dispatch_object <NSObject>
@end
API_AVAILABLE(macos(10.6), ios(4.0))
@protocol OS_dispatch_queue <OS_dispatch_object>
@end
API_AVAILABLE(macos(10.6), ios(4.0))
@protocol OS_dispatch_queue_global <OS_dispatch_queue>
@end
API_AVAILABLE(macos(10.6), ios(4.0))
@protocol OS_dispatch_queue_attr <OS_dispatch_object>
@end

typedef NSObject<OS_dispatch_queue>* dispatch_queue_t API_AVAILABLE(macos(10.6), ios(4.0));
// A distinct type since the macOS 10.15 SDK; the queues themselves date from 10.6.
typedef NSObject<OS_dispatch_queue_global>* dispatch_queue_global_t API_AVAILABLE(macos(10.6), ios(4.0));
typedef NSObject<OS_dispatch_queue_attr>* dispatch_queue_attr_t API_AVAILABLE(macos(10.6), ios(4.0));
typedef void (^dispatch_block_t)(void) API_AVAILABLE(macos(10.6), ios(4.0));

// DISPATCH_NOESCAPE (dispatch/base.h).
#define DISPATCH_NOESCAPE __attribute__((__noescape__))

// DISPATCH_QUEUE_SERIAL, macOS 10.7.
#define DISPATCH_QUEUE_SERIAL NULL

// qos_class_t (sys/qos.h): only the class the bridge uses.
typedef enum : unsigned int {
  QOS_CLASS_USER_INITIATED API_AVAILABLE(macos(10.10), ios(8.0)) = 0x19,
} qos_class_t API_AVAILABLE(macos(10.10), ios(8.0));

#ifdef __cplusplus
extern "C" {
#endif

// dispatch_queue_create(_:_:)
dispatch_queue_t dispatch_queue_create(const char* _Nullable label, dispatch_queue_attr_t _Nullable attr)
    API_AVAILABLE(macos(10.6), ios(4.0));
// dispatch_async(_:_:)
void dispatch_async(dispatch_queue_t queue, dispatch_block_t block) API_AVAILABLE(macos(10.6), ios(4.0));
// dispatch_sync(_:_:)
void dispatch_sync(dispatch_queue_t queue, DISPATCH_NOESCAPE dispatch_block_t block) API_AVAILABLE(macos(10.6), ios(4.0));
// dispatch_get_global_queue(_:_:)
dispatch_queue_global_t dispatch_get_global_queue(intptr_t identifier, uintptr_t flags) API_AVAILABLE(macos(10.6), ios(4.0));

#ifdef __cplusplus
}
#endif

// CoreML enumerations ------------------------------------------------------------------------------------

// MLMultiArrayDataType: only the cases the bridge maps.
typedef NS_ENUM(NSInteger, MLMultiArrayDataType) {
  MLMultiArrayDataTypeDouble API_AVAILABLE(macos(10.13), ios(11.0)) = 0x10000 | 64,
  MLMultiArrayDataTypeFloat32 API_AVAILABLE(macos(10.13), ios(11.0)) = 0x10000 | 32,
  MLMultiArrayDataTypeFloat16 API_AVAILABLE(macos(12.0), ios(15.0)) = 0x10000 | 16,
  MLMultiArrayDataTypeInt32 API_AVAILABLE(macos(10.13), ios(11.0)) = 0x20000 | 32,
} API_AVAILABLE(macos(10.13), ios(11.0));

typedef NS_ENUM(NSInteger, MLComputeUnits) {
  MLComputeUnitsCPUOnly API_AVAILABLE(macos(10.14), ios(12.0)) = 0,
  MLComputeUnitsCPUAndGPU API_AVAILABLE(macos(10.14), ios(12.0)) = 1,
  MLComputeUnitsAll API_AVAILABLE(macos(10.14), ios(12.0)) = 2,
  MLComputeUnitsCPUAndNeuralEngine API_AVAILABLE(macos(13.0), ios(16.0)) = 3,
} API_AVAILABLE(macos(10.14), ios(12.0));

typedef NS_ENUM(NSInteger, MLMultiArrayShapeConstraintType) {
  MLMultiArrayShapeConstraintTypeUnspecified API_AVAILABLE(macos(10.14), ios(12.0)) = 1,
  MLMultiArrayShapeConstraintTypeEnumerated API_AVAILABLE(macos(10.14), ios(12.0)) = 2,
  MLMultiArrayShapeConstraintTypeRange API_AVAILABLE(macos(10.14), ios(12.0)) = 3,
} API_AVAILABLE(macos(10.14), ios(12.0));

// CoreML classes --------------------------------------------------------------------------------------------

API_AVAILABLE(macos(10.13), ios(11.0))
@interface MLMultiArray : NSObject <NSSecureCoding>

@property(readonly, nonatomic) MLMultiArrayDataType dataType API_AVAILABLE(macos(10.13), ios(11.0));
@property(readonly, nonatomic) NSArray<NSNumber*>* shape API_AVAILABLE(macos(10.13), ios(11.0));
// In elements, not bytes.
@property(readonly, nonatomic) NSArray<NSNumber*>* strides API_AVAILABLE(macos(10.13), ios(11.0));

// init(dataPointer:shape:dataType:strides:deallocator:), category MLMultiArray (Creation). The deallocator runs
// when the array no longer needs the memory.
- (nullable instancetype)initWithDataPointer:(void*)dataPointer
                                       shape:(NSArray<NSNumber*>*)shape
                                    dataType:(MLMultiArrayDataType)dataType
                                     strides:(NSArray<NSNumber*>*)strides
                                 deallocator:(void (^_Nullable)(void* bytes))deallocator
                                       error:(NSError**)error API_AVAILABLE(macos(10.13), ios(11.0));

// getBytesWithHandler:, category MLMultiArray (ScopedBufferAccess).
- (void)getBytesWithHandler:(void(NS_NOESCAPE ^)(const void* bytes, NSInteger size))handler
    API_AVAILABLE(macos(12.3), ios(15.4));

@end

API_AVAILABLE(macos(10.13), ios(11.0))
@interface MLFeatureValue : NSObject <NSCopying, NSSecureCoding>

@property(readonly, nullable, nonatomic) MLMultiArray* multiArrayValue API_AVAILABLE(macos(10.13), ios(11.0));

+ (instancetype)featureValueWithMultiArray:(MLMultiArray*)value API_AVAILABLE(macos(10.13), ios(11.0));

@end

API_AVAILABLE(macos(10.13), ios(11.0))
@protocol MLFeatureProvider

// A required member of the protocol; the bridge itself only calls featureValueForName:.
@property(readonly, nonatomic) NSSet<NSString*>* featureNames API_AVAILABLE(macos(10.13), ios(11.0));

- (nullable MLFeatureValue*)featureValueForName:(NSString*)featureName API_AVAILABLE(macos(10.13), ios(11.0));

@end

API_AVAILABLE(macos(10.13), ios(11.0))
@interface MLDictionaryFeatureProvider : NSObject <MLFeatureProvider, NSFastEnumeration>

- (nullable instancetype)initWithDictionary:(NSDictionary<NSString*, id>*)dictionary
                                      error:(NSError**)error API_AVAILABLE(macos(10.13), ios(11.0));

@end

API_AVAILABLE(macos(10.14), ios(12.0))
@interface MLMultiArrayShapeConstraint : NSObject <NSSecureCoding>

@property(readonly, nonatomic) MLMultiArrayShapeConstraintType type API_AVAILABLE(macos(10.14), ios(12.0));
// One NSRange (as NSValue) per dimension; Apple: each size "must fall within" it (NSRange membership).
@property(readonly, nonatomic) NSArray<NSValue*>* sizeRangeForDimension API_AVAILABLE(macos(10.14), ios(12.0));
@property(readonly, nonatomic) NSArray<NSArray<NSNumber*>*>* enumeratedShapes API_AVAILABLE(macos(10.14), ios(12.0));

@end

API_AVAILABLE(macos(10.13), ios(11.0))
@interface MLMultiArrayConstraint : NSObject <NSSecureCoding>

// The required or default shape.
@property(readonly, nonatomic) NSArray<NSNumber*>* shape API_AVAILABLE(macos(10.13), ios(11.0));
@property(readonly, nonatomic) MLMultiArrayDataType dataType API_AVAILABLE(macos(10.13), ios(11.0));
@property(readonly, nonatomic) MLMultiArrayShapeConstraint* shapeConstraint API_AVAILABLE(macos(10.14), ios(12.0));

@end

API_AVAILABLE(macos(10.13), ios(11.0))
@interface MLFeatureDescription : NSObject <NSCopying, NSSecureCoding>

@property(readonly, nonatomic, copy) NSString* name API_AVAILABLE(macos(10.13), ios(11.0));
// Category MLFeatureDescription (MLFeatureValueConstraints).
@property(readonly, nullable, nonatomic) MLMultiArrayConstraint* multiArrayConstraint API_AVAILABLE(macos(10.13), ios(11.0));

@end

API_AVAILABLE(macos(10.13), ios(11.0))
@interface MLModelDescription : NSObject <NSSecureCoding>

@property(readonly, nonatomic) NSDictionary<NSString*, MLFeatureDescription*>* inputDescriptionsByName
    API_AVAILABLE(macos(10.13), ios(11.0));
@property(readonly, nonatomic) NSDictionary<NSString*, MLFeatureDescription*>* outputDescriptionsByName
    API_AVAILABLE(macos(10.13), ios(11.0));

@end

API_AVAILABLE(macos(10.14), ios(12.0))
@interface MLModelConfiguration : NSObject <NSCopying, NSSecureCoding>

@property(readwrite) MLComputeUnits computeUnits API_AVAILABLE(macos(10.14), ios(12.0));

@end

API_AVAILABLE(macos(10.13), ios(11.0))
@interface MLPredictionOptions : NSObject

// Client-allocated buffers CoreML may write outputs into. Apple's header: macOS 11.0 (iOS 16.0); CoreML may
// ignore a backing, which the caller detects by object identity with the output it returns.
@property(readwrite, copy, nonatomic) NSDictionary<NSString*, id>* outputBackings API_AVAILABLE(macos(11.0), ios(16.0));

@end

API_AVAILABLE(macos(10.13), ios(11.0))
@interface MLModel : NSObject

@property(readonly, nonatomic) MLModelDescription* modelDescription API_AVAILABLE(macos(10.13), ios(11.0));

+ (nullable instancetype)modelWithContentsOfURL:(NSURL*)url
                                  configuration:(MLModelConfiguration*)configuration
                                          error:(NSError* _Nullable __autoreleasing*)error API_AVAILABLE(macos(10.14), ios(12.0));

- (nullable id<MLFeatureProvider>)predictionFromFeatures:(id<MLFeatureProvider>)input
                                                 options:(MLPredictionOptions*)options
                                                   error:(NSError**)error API_AVAILABLE(macos(10.13), ios(11.0));

// Category MLModel (MLModelCompilation); Apple marks it API_TO_BE_DEPRECATED in favour of the
// completion-handler form, with no removal date.
+ (nullable NSURL*)compileModelAtURL:(NSURL*)modelURL error:(NSError**)error API_AVAILABLE(macos(10.13), ios(11.0));

@end

NS_ASSUME_NONNULL_END
