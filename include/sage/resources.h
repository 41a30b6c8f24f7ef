/* sage/resources.h - what one instance of an operator needs: CPUs, GPUs, memory, custom resources. */
#ifndef SAGE_RESOURCES_H
#define SAGE_RESOURCES_H

#include <stddef.h>
#include <stdint.h>

#include "sage/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SAGE_RES_NAME_MAX 63   /* longest custom resource name, in bytes */
#define SAGE_RES_CUSTOM_MAX 16 /* most custom resources one operator may name */

/* A resource request for ONE instance of an operator (parallelism 4 with
 * num_cpus 4 asks for 16 CPUs). Zero means "reserve nothing" for that key.
 * The same validation applies whether the request was written as JSON text
 * (sage_op_opts.resources) or as this struct (sage_op_opts.resources_spec):
 *   num_cpus   >= 0, finite, multiple of 0.0001
 *   num_gpus   0, a fraction in (0, 1], or a whole number (1.5 is refused)
 *   memory, object_store_memory   bytes, < 2^63
 *   custom     name -> amount > 0; names are [A-Za-z0-9_.:-]{1,63}; CPU, GPU
 *              and memory are reserved names. */
typedef struct sage_resource_amount {
    char name[SAGE_RES_NAME_MAX + 1];
    double amount;
} sage_resource_amount;

typedef struct sage_resources {
    double num_cpus;
    double num_gpus;
    uint64_t memory;              /* bytes; admission in embedded mode, enforced per worker process */
    uint64_t object_store_memory; /* bytes; caps the engine's own buffers of the instance */
    size_t ncustom;
    sage_resource_amount custom[SAGE_RES_CUSTOM_MAX];
} sage_resources;

/* Parse a JSON resource spec such as {"num_cpus": 4, "memory": "8GB"} into
 * *out (zeroed first). On error returns SAGE_ERESOURCES and writes a message
 * naming the key and the problem into err (if err_len > 0), or SAGE_ENOMEM
 * when memory ran out while parsing. Thread-safe. */
SAGE_API int sage_resources_parse(const char *json, sage_resources *out, char *err, size_t err_len);

/* Check a struct-form request with the same rules as the JSON form. */
SAGE_API int sage_resources_validate(const sage_resources *r, char *err, size_t err_len);

/* Parse a byte quantity: a number of bytes, or a string with a unit:
 * B, KB/MB/GB/TB (powers of 1000), KiB/MiB/GiB/TiB (powers of 1024),
 * case-insensitive, decimals allowed ("1.5GiB"). */
SAGE_API int sage_parse_bytes(const char *text, uint64_t *out, char *err, size_t err_len);

#ifdef __cplusplus
}
#endif
#endif
