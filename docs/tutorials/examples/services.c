/* services.c - operators calling services: a synchronous call with a timeout and an asynchronous future. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sage/sage.h>

/* price: request = int64 item id, reply = int64 price in cents. Runs on the service's own thread. */
static int price(const void *req, size_t len, sage_reply *reply, void *udata)
{
    int64_t cents = 100 + sage_rec_i64(req, len) * 25;
    return sage_reply_set(reply, &cents, sizeof cents); /* copied */
}

/* stock: request = int64 item id, reply = "in stock" or "sold out". */
static int stock(const void *req, size_t len, sage_reply *reply, void *udata)
{
    const char *answer = sage_rec_i64(req, len) % 3 ? "in stock" : "sold out";
    return sage_reply_set(reply, answer, strlen(answer));
}

static int started(void *udata)
{
    printf("service %s: start\n", (const char *)udata);
    return 0; /* a negative value here fails sage_env_execute before any operator runs */
}

static void stopped(void *udata) { printf("service %s: stop\n", (const char *)udata); }

static int enrich(sage_ctx *ctx, const void *rec, size_t len, sage_out *out, void *udata)
{
    int64_t item = sage_rec_i64(rec, len);
    sage_future *fut;
    int rc = sage_call_async(ctx, "stock", &item, sizeof item, &fut); /* answered while we ask for the price */
    if (rc != 0)
        return rc;
    int64_t cents = 0;
    size_t cents_len = 0;
    rc = sage_call(ctx, "price", &item, sizeof item, 1000, &cents, sizeof cents, &cents_len);
    const void *avail = NULL;
    size_t avail_len = 0;
    int frc = sage_future_wait(fut, 1000, &avail, &avail_len);
    char line[64];
    int n = 0;
    if (rc == 0 && frc == 0) /* avail points into the future: use it before destroying the future */
        n = snprintf(line, sizeof line, "item %" PRId64 ": %" PRId64 " cents, %.*s", item, cents, (int)avail_len,
                     (const char *)avail);
    sage_future_destroy(fut);
    if (rc != 0)
        return rc;
    if (frc != 0)
        return frc;
    return sage_emit(out, line, (size_t)n);
}

int main(void)
{
    int64_t items[6] = {1, 2, 3, 4, 5, 6};
    sage_env *env = sage_env_create("shop", NULL);
    sage_env_register_service(env, "price", price, "price", &(sage_service_opts){.start = started, .stop = stopped});
    sage_env_register_service(env, "stock", stock, "stock", &(sage_service_opts){.start = started, .stop = stopped});
    sage_stream *s = sage_from_int64s(env, items, 6, NULL);
    s = sage_map(s, enrich, NULL, &(sage_op_opts){.name = "enrich", .parallelism = 2});
    sage_sink(s, sage_print_sink, NULL, &(sage_op_opts){.name = "print"});
    int rc = sage_env_execute(env);
    if (rc != 0)
        fprintf(stderr, "shop: %s\n", sage_env_errmsg(env));
    sage_env_destroy(env);
    return rc == 0 ? 0 : 1;
}
