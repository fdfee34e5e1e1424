// What the runner app calls beyond Foundation and CoreML, declared for the Linux syntax-and-type check
// (scripts/check-coreml-bridge.sh); never used on an iPhone, where device_imports.h includes the SDK's headers.
// Each declaration follows Apple's documented signature and availability.
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// os_proc_available_memory() (os/proc.h): bytes this process may still allocate before it reaches its limit.
size_t os_proc_available_memory(void) API_AVAILABLE(ios(13.0));

// task_info(_:_:_:_:) with TASK_VM_INFO (mach/task_info.h): only the field read here.
typedef int kern_return_t;
typedef unsigned int mach_port_t;
typedef mach_port_t task_t;
typedef int* task_info_t;
typedef unsigned int mach_msg_type_number_t;
typedef unsigned int task_flavor_t;
#define KERN_SUCCESS 0
#define TASK_VM_INFO 22
typedef struct {
  uint64_t virtual_size;
  int region_count;
  int page_size;
  uint64_t resident_size;
  uint64_t resident_size_peak;
  uint64_t device;
  uint64_t device_peak;
  uint64_t internal;
  uint64_t internal_peak;
  uint64_t external;
  uint64_t external_peak;
  uint64_t reusable;
  uint64_t reusable_peak;
  uint64_t purgeable_volatile_pmap;
  uint64_t purgeable_volatile_resident;
  uint64_t purgeable_volatile_virtual;
  uint64_t compressed;
  uint64_t compressed_peak;
  uint64_t compressed_lifetime;
  uint64_t phys_footprint;
} task_vm_info_data_t;
#define TASK_VM_INFO_COUNT ((mach_msg_type_number_t)(sizeof(task_vm_info_data_t) / sizeof(int)))
mach_port_t mach_task_self(void);
kern_return_t task_info(task_t target_task, task_flavor_t flavor, task_info_t task_info_out,
                        mach_msg_type_number_t* task_info_outCnt);

#ifdef __cplusplus
}
#endif
