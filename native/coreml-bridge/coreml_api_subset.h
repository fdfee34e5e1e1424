// The CoreML and libdispatch API the bridge uses, declared for the Linux syntax-and-type check
// (scripts/check-coreml-bridge.sh, clang + GNUstep Foundation). Never used on macOS: coreml_imports.h
// includes the SDK there. Each declaration follows Apple's documented signature, nullability included;
// the comments give the documentation name and the first macOS version. Only what the bridge calls is
// declared, so a call to anything else fails the check, as it should until it is added here, checked
// against Apple's documentation.
#pragma once

#import <Foundation/Foundation.h>

#include <stdint.h>

// Foundation bits GNUstep lacks ------------------------------------------------------------------------

// NS_NOESCAPE (Foundation NSObjCRuntime.h): the block does not outlive the call.
#ifndef NS_NOESCAPE
#define NS_NOESCAPE __attribute__((noescape))
#endif

NS_ASSUME_NONNULL_BEGIN

// libdispatch (Debian ships no libdispatch headers) ----------------------------------------------------
// With Objective-C, dispatch objects are Objective-C objects (OS_OBJECT_USE_OBJC), so ARC manages them.

@protocol OS_dispatch_object <NSObject>
@end
@protocol OS_dispatch_queue <OS_dispatch_object>
@end
@protocol OS_dispatch_queue_global <OS_dispatch_queue>
@end
@protocol OS_dispatch_queue_attr <OS_dispatch_object>
@end

// dispatch_queue_t, macOS 10.6.
typedef NSObject<OS_dispatch_queue>* dispatch_queue_t;
// dispatch_queue_global_t, macOS 10.6 (a distinct type since the macOS 10.15 SDK).
typedef NSObject<OS_dispatch_queue_global>* dispatch_queue_global_t;
// dispatch_queue_attr_t, macOS 10.6.
typedef NSObject<OS_dispatch_queue_attr>* dispatch_queue_attr_t;
// dispatch_block_t, macOS 10.6.
typedef void (^dispatch_block_t)(void);

// DISPATCH_QUEUE_SERIAL, macOS 10.7.
#define DISPATCH_QUEUE_SERIAL NULL

// qos_class_t (sys/qos.h), macOS 10.10: only the class the bridge uses.
typedef enum : unsigned int {
  QOS_CLASS_USER_INITIATED = 0x19,
} qos_class_t;

#ifdef __cplusplus
extern "C" {
#endif

// dispatch_queue_create(_:_:), macOS 10.6.
dispatch_queue_t dispatch_queue_create(const char* _Nullable label, dispatch_queue_attr_t _Nullable attr);
// dispatch_async(_:_:), macOS 10.6.
void dispatch_async(dispatch_queue_t queue, dispatch_block_t block);
// dispatch_get_global_queue(_:_:), macOS 10.6.
dispatch_queue_global_t dispatch_get_global_queue(intptr_t identifier, uintptr_t flags);

#ifdef __cplusplus
}
#endif

// CoreML enumerations ------------------------------------------------------------------------------------

// MLMultiArrayDataType, macOS 10.13. Only the cases the bridge maps.
typedef NS_ENUM(NSInteger, MLMultiArrayDataType) {
  MLMultiArrayDataTypeDouble = 0x10000 | 64,   // macOS 10.13
  MLMultiArrayDataTypeFloat32 = 0x10000 | 32,  // macOS 10.13
  MLMultiArrayDataTypeFloat16 = 0x10000 | 16,  // macOS 12.0
  MLMultiArrayDataTypeInt32 = 0x20000 | 32,    // macOS 10.13
};

// MLComputeUnits, macOS 10.14.
typedef NS_ENUM(NSInteger, MLComputeUnits) {
  MLComputeUnitsCPUOnly = 0,             // macOS 10.14
  MLComputeUnitsCPUAndGPU = 1,           // macOS 10.14
  MLComputeUnitsAll = 2,                 // macOS 10.14
  MLComputeUnitsCPUAndNeuralEngine = 3,  // macOS 13.0
};

// MLMultiArrayShapeConstraintType, macOS 10.14.
typedef NS_ENUM(NSInteger, MLMultiArrayShapeConstraintType) {
  MLMultiArrayShapeConstraintTypeUnspecified = 1,
  MLMultiArrayShapeConstraintTypeEnumerated = 2,
  MLMultiArrayShapeConstraintTypeRange = 3,
};

// CoreML classes --------------------------------------------------------------------------------------------

// MLMultiArray, macOS 10.13.
@interface MLMultiArray : NSObject <NSSecureCoding>

// dataType, macOS 10.13.
@property(readonly, nonatomic) MLMultiArrayDataType dataType;
// shape, macOS 10.13.
@property(readonly, nonatomic) NSArray<NSNumber*>* shape;
// strides, macOS 10.13 (in elements).
@property(readonly, nonatomic) NSArray<NSNumber*>* strides;

// init(dataPointer:shape:dataType:strides:deallocator:), category MLMultiArray (Creation), macOS 10.13.
- (nullable instancetype)initWithDataPointer:(void*)dataPointer
                                       shape:(NSArray<NSNumber*>*)shape
                                    dataType:(MLMultiArrayDataType)dataType
                                     strides:(NSArray<NSNumber*>*)strides
                                 deallocator:(void (^_Nullable)(void* bytes))deallocator
                                       error:(NSError**)error;

// getBytesWithHandler:, category MLMultiArray (ScopedBufferAccess), macOS 12.3.
- (void)getBytesWithHandler:(void(NS_NOESCAPE ^)(const void* bytes, NSInteger size))handler;

@end

// MLFeatureValue, macOS 10.13.
@interface MLFeatureValue : NSObject <NSCopying, NSSecureCoding>

// multiArrayValue, macOS 10.13.
@property(readonly, nullable, nonatomic) MLMultiArray* multiArrayValue;

// featureValueWithMultiArray:, macOS 10.13.
+ (instancetype)featureValueWithMultiArray:(MLMultiArray*)value;

@end

// MLFeatureProvider protocol, macOS 10.13.
@protocol MLFeatureProvider

// featureNames, macOS 10.13: a required member of the protocol; the bridge itself only calls featureValueForName:.
@property(readonly, nonatomic) NSSet<NSString*>* featureNames;

// featureValueForName:, macOS 10.13.
- (nullable MLFeatureValue*)featureValueForName:(NSString*)featureName;

@end

// MLDictionaryFeatureProvider, macOS 10.13.
@interface MLDictionaryFeatureProvider : NSObject <MLFeatureProvider, NSFastEnumeration>

// initWithDictionary:error:, macOS 10.13.
- (nullable instancetype)initWithDictionary:(NSDictionary<NSString*, id>*)dictionary error:(NSError**)error;

@end

// MLMultiArrayShapeConstraint, macOS 10.14.
@interface MLMultiArrayShapeConstraint : NSObject <NSSecureCoding>

// type, macOS 10.14.
@property(readonly, nonatomic) MLMultiArrayShapeConstraintType type;
// sizeRangeForDimension, macOS 10.14: one NSRange (as NSValue) per dimension.
@property(readonly, nonatomic) NSArray<NSValue*>* sizeRangeForDimension;
// enumeratedShapes, macOS 10.14.
@property(readonly, nonatomic) NSArray<NSArray<NSNumber*>*>* enumeratedShapes;

@end

// MLMultiArrayConstraint, macOS 10.13.
@interface MLMultiArrayConstraint : NSObject <NSSecureCoding>

// shape, macOS 10.13: the required or default shape.
@property(readonly, nonatomic) NSArray<NSNumber*>* shape;
// dataType, macOS 10.13.
@property(readonly, nonatomic) MLMultiArrayDataType dataType;
// shapeConstraint, macOS 10.14.
@property(readonly, nonatomic) MLMultiArrayShapeConstraint* shapeConstraint;

@end

// MLFeatureDescription, macOS 10.13.
@interface MLFeatureDescription : NSObject <NSCopying, NSSecureCoding>

// name, macOS 10.13.
@property(readonly, nonatomic, copy) NSString* name;
// multiArrayConstraint, category MLFeatureDescription (MLFeatureValueConstraints), macOS 10.13.
@property(readonly, nullable, nonatomic) MLMultiArrayConstraint* multiArrayConstraint;

@end

// MLModelDescription, macOS 10.13.
@interface MLModelDescription : NSObject <NSSecureCoding>

// inputDescriptionsByName, macOS 10.13.
@property(readonly, nonatomic) NSDictionary<NSString*, MLFeatureDescription*>* inputDescriptionsByName;
// outputDescriptionsByName, macOS 10.13.
@property(readonly, nonatomic) NSDictionary<NSString*, MLFeatureDescription*>* outputDescriptionsByName;

@end

// MLModelConfiguration, macOS 10.14.
@interface MLModelConfiguration : NSObject <NSCopying, NSSecureCoding>

// computeUnits, macOS 10.14.
@property(readwrite) MLComputeUnits computeUnits;

@end

// MLModel, macOS 10.13.
@interface MLModel : NSObject

// modelDescription, macOS 10.13.
@property(readonly, nonatomic) MLModelDescription* modelDescription;

// modelWithContentsOfURL:configuration:error:, macOS 10.14.
+ (nullable instancetype)modelWithContentsOfURL:(NSURL*)url
                                  configuration:(MLModelConfiguration*)configuration
                                          error:(NSError* _Nullable __autoreleasing*)error;

// predictionFromFeatures:error:, macOS 10.13.
- (nullable id<MLFeatureProvider>)predictionFromFeatures:(id<MLFeatureProvider>)input error:(NSError**)error;

// compileModelAtURL:error:, category MLModel (MLModelCompilation), macOS 10.13; Apple marks it
// API_TO_BE_DEPRECATED in favour of the completion-handler form, with no removal date.
+ (nullable NSURL*)compileModelAtURL:(NSURL*)modelURL error:(NSError**)error;

@end

NS_ASSUME_NONNULL_END
