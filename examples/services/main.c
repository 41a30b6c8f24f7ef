/* examples/services - operators calling a registered service: synchronously (user profiles) and asynchronously
 * with a future (a scoring service), with services started before and stopped after the pipeline. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <sage/sage.h>

static const char *const names[] = {"ann", "bob", "cy", "dee"};

/* user_profile: request = int64 user id, reply = the user's name. */
static int user_profile(const void *req, size_t len, sage_reply *reply, void *udata)
{
    int64_t id = sage_rec_i64(req, len);
    if (id < 0 || id >= 4)
        return sage_reply_set(reply, "unknown", 7);
    return sage_reply_set(reply, names[id], strlen(names[id]));
}

/* score: request = int64 order amount, reply = int64 score. */
static int score(const void *req, size_t len, sage_reply *reply, void *udata)
{
    int64_t s = sage_rec_i64(req, len) * 3 % 100;
    return sage_reply_set(reply, &s, sizeof s);
}

static int announce_start(void *udata)
{
    printf("service %s started\n", (const char *)udata);
    return 0;
}

static void announce_stop(void *udata) { printf("service %s stopped\n", (const char *)udata); }

/* map: order id -> "order N: user NAME, score S". */
static int enrich(sage_ctx *ctx, const void *rec, size_t len, sage_out *out, void *udata)
{
    int64_t order = sage_rec_i64(rec, len), user = order % 4;
    sage_future *fut;
    int rc = sage_call_async(ctx, "score", &order, sizeof order, &fut); /* runs while we ask for the profile */
    if (rc != 0)
        return rc;
    char name[32];
    size_t name_len;
    rc = sage_call(ctx, "user_profile", &user, sizeof user, 1000, name, sizeof name, &name_len);
    const void *s;
    size_t s_len;
    int frc = sage_future_wait(fut, 1000, &s, &s_len);
    int64_t sc = frc == 0 ? sage_rec_i64(s, s_len) : -1;
    sage_future_destroy(fut);
    if (rc != 0)
        return rc;
    if (frc != 0)
        return frc;
    char line[96];
    int n = snprintf(line, sizeof line, "order %" PRId64 ": user %.*s, score %" PRId64, order, (int)name_len, name, sc);
    return sage_emit(out, line, (size_t)n);
}

int main(void)
{
    int64_t orders[12];
    for (int i = 0; i < 12; i++)
        orders[i] = i + 1;
    sage_env *env = sage_env_create("services_demo", NULL);
    sage_env_register_service(env, "user_profile", user_profile, "user_profile",
                              &(sage_service_opts){.start = announce_start, .stop = announce_stop});
    sage_env_register_service(env, "score", score, "score",
                              &(sage_service_opts){.start = announce_start, .stop = announce_stop});
    sage_stream *s = sage_from_int64s(env, orders, 12, &(sage_op_opts){.name = "orders"});
    s = sage_map(s, enrich, NULL, &(sage_op_opts){.name = "enrich", .parallelism = 3});
    sage_sink(s, sage_print_sink, NULL, &(sage_op_opts){.name = "print"});
    int rc = sage_env_execute(env);
    if (rc != 0)
        fprintf(stderr, "services: %s\n", sage_env_errmsg(env));
    sage_env_destroy(env);
    return rc == 0 ? 0 : 1;
}
