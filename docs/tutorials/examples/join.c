/* join.c - a keyed join of two streams: customers "id:name" and orders "id:amount" -> "name amount". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sage/sage.h>

/* Both sides key on the id before ':'. Equal key bytes reach the same join instance. */
static int id_key(const void *rec, size_t len, void *keybuf, void *udata)
{
    const char *colon = memchr(rec, ':', len);
    if (!colon)
        return SAGE_EINVAL;
    size_t n = (size_t)(colon - (const char *)rec);
    memcpy(keybuf, rec, n);
    return (int)n;
}

/* Per-key state: the customer's name once seen, and orders that arrived before it. */
typedef struct customer {
    char name[32];
    int npending;
    char pending[4][16];
} customer;

static int join_fn(sage_ctx *ctx, int side, const void *rec, size_t len, sage_out *out, void *udata)
{
    customer *c = sage_ctx_state(ctx, sizeof *c);
    if (!c)
        return SAGE_ENOMEM;
    const char *value = (const char *)memchr(rec, ':', len) + 1;
    int vlen = (int)(len - (size_t)(value - (const char *)rec));
    char line[64];
    if (side == 0) { /* left: a customer */
        snprintf(c->name, sizeof c->name, "%.*s", vlen, value);
        for (int i = 0; i < c->npending; i++) {
            int n = snprintf(line, sizeof line, "%s %s", c->name, c->pending[i]);
            int rc = sage_emit(out, line, (size_t)n);
            if (rc < 0)
                return rc;
        }
        c->npending = 0;
        return 0;
    }
    if (c->name[0] == '\0') { /* right: an order for a customer not seen yet */
        if (c->npending == 4) {
            size_t klen;
            const char *key = sage_ctx_key(ctx, &klen);
            sage_ctx_fail(ctx, "customer %.*s: more than 4 orders before the customer record", (int)klen, key);
            return SAGE_ETOOBIG;
        }
        snprintf(c->pending[c->npending++], sizeof c->pending[0], "%.*s", vlen, value);
        return 0;
    }
    int n = snprintf(line, sizeof line, "%s %.*s", c->name, vlen, value);
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

static sage_stream *from_strings(sage_env *env, const char *const *v, size_t n, const char *name)
{
    size_t lens[16];
    for (size_t i = 0; i < n; i++)
        lens[i] = strlen(v[i]);
    return sage_from_collection(env, (const void *const *)v, lens, n, &(sage_op_opts){.name = name});
}

int main(void)
{
    const char *customers[] = {"1:ann", "2:bob", "3:cy"};
    const char *orders[] = {"2:20", "1:10", "2:21", "3:30", "4:40"};

    sage_env *env = sage_env_create("join", NULL);
    sage_collector *c = sage_collector_create(0);
    sage_stream *left = from_strings(env, customers, 3, "customers");
    sage_stream *right = from_strings(env, orders, 5, "orders");
    sage_stream *j = sage_join(left, id_key, right, id_key, join_fn, NULL,
                               &(sage_op_opts){.name = "join", .parallelism = 2});
    sage_sink_collect(j, c, NULL);
    int rc = sage_env_execute(env);
    if (rc != 0)
        fprintf(stderr, "join: %s\n", sage_env_errmsg(env));
    else
        print_sorted(c);
    sage_collector_destroy(c);
    sage_env_destroy(env);
    return rc == 0 ? 0 : 1;
}
