/* partition.c - a custom partitioner: orders of big customers get instance 0 to themselves,
 * everybody else is spread over the other instances by customer id. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sage/sage.h>

typedef struct order {
    int64_t customer;
    int64_t amount;
} order;

/* Return the target instance in [0, nparts); anything else fails the job. */
static int by_customer(const void *rec, size_t len, int nparts, void *udata)
{
    const int64_t *big = udata; /* read-only: shared safely by every sending instance */
    order o;
    memcpy(&o, rec, sizeof o);
    if (o.customer == big[0] || o.customer == big[1])
        return 0;
    return 1 + (int)(o.customer % (nparts - 1));
}

static int label(sage_ctx *ctx, const void *rec, size_t len, sage_out *out, void *udata)
{
    order o;
    memcpy(&o, rec, sizeof o);
    char line[64];
    int n = snprintf(line, sizeof line, "lane %d: customer %" PRId64 " amount %" PRId64, sage_ctx_instance(ctx),
                     o.customer, o.amount);
    return sage_emit(out, line, (size_t)n);
}

static int by_text(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }
static void print_sorted(const sage_collector *c)
{
    size_t n = sage_collector_count(c), len;
    char **v = malloc((n ? n : 1) * sizeof *v);
    for (size_t i = 0; i < n; i++) {
        const char *r = sage_collector_get(c, i, &len);
        v[i] = malloc(len + 1);
        memcpy(v[i], r, len);
        v[i][len] = '\0';
    }
    qsort(v, n, sizeof *v, by_text);
    for (size_t i = 0; i < n; i++) {
        printf("%s\n", v[i]);
        free(v[i]);
    }
    free(v);
}

int main(void)
{
    static const order orders[] = {{7, 120}, {3, 15}, {42, 990}, {8, 20}, {7, 80}, {5, 11}, {42, 310}, {4, 9}};
    const void *recs[8];
    size_t lens[8];
    for (int i = 0; i < 8; i++) {
        recs[i] = &orders[i];
        lens[i] = sizeof orders[i];
    }
    int64_t big[2] = {7, 42};

    sage_env *env = sage_env_create("lanes", NULL);
    sage_collector *c = sage_collector_create(0);
    sage_stream *s = sage_from_collection(env, recs, lens, 8, NULL);
    s = sage_partition_custom(s, by_customer, big);
    s = sage_map(s, label, NULL, &(sage_op_opts){.name = "lane", .parallelism = 3});
    sage_sink_collect(s, c, NULL);
    int rc = sage_env_execute(env);
    if (rc != 0)
        fprintf(stderr, "lanes: %s\n", sage_env_errmsg(env));
    else
        print_sorted(c);
    sage_collector_destroy(c);
    sage_env_destroy(env);
    return rc == 0 ? 0 : 1;
}
