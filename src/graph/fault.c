/* graph/fault.c - the "fault_tolerance" configuration: SAGE Kernel's keys, defaults and spellings, checked. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "graph/graph.h"
#include "util/suggest.h"

/* Every key, with the strategy it belongs to (NULL: any). */
static const struct {
    const char *key, *owner;
} keys[] = {
    {"strategy", NULL},
    {"restart_strategy", "restart"},
    {"max_attempts", "fixed or exponential"},
    {"delay", "fixed or failure_rate"},
    {"initial_delay", "exponential"},
    {"max_delay", "exponential"},
    {"multiplier", "exponential"},
    {"max_failures_per_interval", "failure_rate"},
    {"interval_seconds", "failure_rate"},
    {"checkpoint_interval", "checkpoint"},
    {"max_recovery_attempts", "checkpoint"},
    {"checkpoint_dir", "checkpoint"},
    {"checkpoints_retained", "checkpoint"},
    {"checkpoint_timeout", "checkpoint"},
};
#define NKEYS (sizeof keys / sizeof keys[0])

static void defaults(sage__ft_config *ft)
{
    memset(ft, 0, sizeof *ft);
    ft->strategy = SAGE__FT_NONE;
    ft->restart = SAGE__RESTART_FIXED;
    ft->max_attempts = 3; /* fixed's default; exponential's is 5 (set when it is chosen) */
    ft->delay = 5;
    ft->initial_delay = 1;
    ft->max_delay = 60;
    ft->multiplier = 2;
    ft->max_failures_per_interval = 5;
    ft->interval_seconds = 60;
    ft->checkpoint_interval = 60;
    ft->max_recovery_attempts = 3;
    ft->checkpoints_retained = 2;
    ft->checkpoint_timeout = 600;
}

/* Seconds: a finite number in [lo, hi] (fractions allowed). */
static int seconds(json_t *v, const char *key, double lo, double hi, double *out, sage__err *e)
{
    if (!json_is_number(v) || !isfinite(json_number_value(v)) || json_number_value(v) < lo || json_number_value(v) > hi)
        return sage__errf(e, SAGE_ECONFIG, "config key \"fault_tolerance.%s\": expected seconds from %g to %g", key, lo,
                          hi);
    *out = json_number_value(v);
    return 0;
}

static int count(json_t *v, const char *key, int lo, int hi, int *out, sage__err *e)
{
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return sage__errf(e, SAGE_ECONFIG, "config key \"fault_tolerance.%s\": expected a whole number from %d to %d",
                          key, lo, hi);
    *out = (int)json_integer_value(v);
    return 0;
}

/* Does key belong to the chosen strategy? */
static int applies(const sage__ft_config *ft, const char *key)
{
    if (strcmp(key, "strategy") == 0)
        return 1;
    if (ft->strategy == SAGE__FT_CHECKPOINT)
        return strncmp(key, "checkpoint", 10) == 0 || strcmp(key, "max_recovery_attempts") == 0;
    if (ft->strategy != SAGE__FT_RESTART)
        return 0;
    if (strcmp(key, "restart_strategy") == 0)
        return 1;
    switch (ft->restart) {
    case SAGE__RESTART_FIXED: return strcmp(key, "max_attempts") == 0 || strcmp(key, "delay") == 0;
    case SAGE__RESTART_EXPONENTIAL:
        return strcmp(key, "max_attempts") == 0 || strcmp(key, "initial_delay") == 0 || strcmp(key, "max_delay") == 0 ||
               strcmp(key, "multiplier") == 0;
    case SAGE__RESTART_FAILURE_RATE:
        return strcmp(key, "max_failures_per_interval") == 0 || strcmp(key, "interval_seconds") == 0 ||
               strcmp(key, "delay") == 0;
    }
    return 0;
}

static const char *restart_name(sage__restart_kind k)
{
    switch (k) {
    case SAGE__RESTART_FIXED: return "fixed";
    case SAGE__RESTART_EXPONENTIAL: return "exponential";
    case SAGE__RESTART_FAILURE_RATE: return "failure_rate";
    }
    return "?";
}

int sage__ft_parse(sage__ft_config *ft, json_t *v, sage__err *e)
{
    defaults(ft);
    if (!json_is_object(v))
        return sage__errf(e, SAGE_ECONFIG,
                          "config key \"fault_tolerance\": expected an object such as "
                          "{\"strategy\": \"restart\", \"restart_strategy\": \"fixed\"}");
    const char *key;
    json_t *x;
    /* every key known? */
    json_object_foreach(v, key, x)
    {
        size_t i = 0;
        while (i < NKEYS && strcmp(keys[i].key, key) != 0)
            i++;
        if (i == NKEYS) {
            const char *names[NKEYS];
            for (size_t k = 0; k < NKEYS; k++)
                names[k] = keys[k].key;
            const char *near = sage__suggest(key, names, NKEYS);
            if (near)
                return sage__errf(e, SAGE_ECONFIG,
                                  "config key \"fault_tolerance.%s\" is unknown (did you mean \"%s\"?)", key, near);
            return sage__errf(e, SAGE_ECONFIG,
                              "config key \"fault_tolerance.%s\" is unknown (known: strategy, restart_strategy, "
                              "max_attempts, delay, initial_delay, max_delay, multiplier, max_failures_per_interval, "
                              "interval_seconds, checkpoint_interval, max_recovery_attempts, checkpoint_dir, "
                              "checkpoints_retained, checkpoint_timeout)",
                              key);
        }
    }
    /* the strategies */
    const char *st = json_string_value(json_object_get(v, "strategy"));
    if (!st)
        return sage__errf(e, SAGE_ECONFIG,
                          "config key \"fault_tolerance.strategy\": expected \"restart\" or \"checkpoint\"");
    if (strcmp(st, "restart") == 0)
        ft->strategy = SAGE__FT_RESTART;
    else if (strcmp(st, "checkpoint") == 0)
        ft->strategy = SAGE__FT_CHECKPOINT;
    else if (strcmp(st, "none") == 0)
        ft->strategy = SAGE__FT_NONE;
    else
        return sage__errf(e, SAGE_ECONFIG,
                          "config key \"fault_tolerance.strategy\": \"%s\" is not a strategy (expected \"restart\" "
                          "or \"checkpoint\")",
                          st);
    json_t *rs = json_object_get(v, "restart_strategy");
    if (rs && ft->strategy == SAGE__FT_RESTART) {
        const char *r = json_string_value(rs);
        if (r && (strcmp(r, "fixed") == 0 || strcmp(r, "fixed_delay") == 0)) {
            ft->restart = SAGE__RESTART_FIXED;
        } else if (r && (strcmp(r, "exponential") == 0 || strcmp(r, "exponential_backoff") == 0)) {
            ft->restart = SAGE__RESTART_EXPONENTIAL;
            ft->max_attempts = 5;
        } else if (r && strcmp(r, "failure_rate") == 0) {
            ft->restart = SAGE__RESTART_FAILURE_RATE;
        } else {
            return sage__errf(e, SAGE_ECONFIG,
                              "config key \"fault_tolerance.restart_strategy\": expected \"fixed\" (or "
                              "\"fixed_delay\"), \"exponential\" (or \"exponential_backoff\") or \"failure_rate\"");
        }
    }
    /* each key where it applies, with its range */
    json_object_foreach(v, key, x)
    {
        if (!applies(ft, key)) {
            size_t i = 0;
            while (strcmp(keys[i].key, key) != 0)
                i++;
            const char *chosen = ft->strategy == SAGE__FT_RESTART ? restart_name(ft->restart) : st;
            return sage__errf(e, SAGE_ECONFIG,
                              "config key \"fault_tolerance.%s\" belongs to %s, not to the chosen \"%s\"", key,
                              keys[i].owner, chosen);
        }
        int rc = 0;
        if (strcmp(key, "max_attempts") == 0)
            rc = count(x, key, 0, 1000000, &ft->max_attempts, e);
        else if (strcmp(key, "delay") == 0)
            rc = seconds(x, key, 0, 86400, &ft->delay, e);
        else if (strcmp(key, "initial_delay") == 0)
            rc = seconds(x, key, 0, 86400, &ft->initial_delay, e);
        else if (strcmp(key, "max_delay") == 0)
            rc = seconds(x, key, 0, 86400, &ft->max_delay, e);
        else if (strcmp(key, "multiplier") == 0)
            rc = seconds(x, key, 1, 1000, &ft->multiplier, e);
        else if (strcmp(key, "max_failures_per_interval") == 0)
            rc = count(x, key, 1, 1000000, &ft->max_failures_per_interval, e);
        else if (strcmp(key, "interval_seconds") == 0)
            rc = seconds(x, key, 0.001, 86400 * 365.0, &ft->interval_seconds, e);
        else if (strcmp(key, "checkpoint_interval") == 0)
            rc = seconds(x, key, 0.01, 86400, &ft->checkpoint_interval, e);
        else if (strcmp(key, "max_recovery_attempts") == 0)
            rc = count(x, key, 0, 1000000, &ft->max_recovery_attempts, e);
        else if (strcmp(key, "checkpoints_retained") == 0)
            rc = count(x, key, 1, 1000, &ft->checkpoints_retained, e);
        else if (strcmp(key, "checkpoint_timeout") == 0)
            rc = seconds(x, key, 0.01, 86400, &ft->checkpoint_timeout, e);
        else if (strcmp(key, "checkpoint_dir") == 0) {
            if (!json_is_string(x) || !*json_string_value(x) ||
                sage__strlcpy(ft->checkpoint_dir, json_string_value(x), sizeof ft->checkpoint_dir) >=
                    sizeof ft->checkpoint_dir)
                rc = sage__errf(e, SAGE_ECONFIG,
                                "config key \"fault_tolerance.checkpoint_dir\": expected a path of 1 "
                                "to %zu bytes",
                                sizeof ft->checkpoint_dir - 1);
        }
        if (rc != 0)
            return rc;
    }
    if (ft->strategy == SAGE__FT_RESTART && ft->restart == SAGE__RESTART_EXPONENTIAL &&
        ft->max_delay < ft->initial_delay)
        return sage__errf(e, SAGE_ECONFIG,
                          "config key \"fault_tolerance.max_delay\": %g s is less than initial_delay %g s",
                          ft->max_delay, ft->initial_delay);
    return 0;
}

double sage__ft_delay(const sage__ft_config *ft, int k)
{
    if (ft->strategy == SAGE__FT_CHECKPOINT)
        return 0; /* SAGE Kernel's checkpoint strategy recovers at once */
    if (ft->restart != SAGE__RESTART_EXPONENTIAL)
        return ft->delay;
    double d = ft->initial_delay;
    for (int i = 1; i < k && d < ft->max_delay; i++)
        d *= ft->multiplier;
    return d < ft->max_delay ? d : ft->max_delay;
}

void sage__ft_describe(const sage__ft_config *ft, char *buf, size_t len)
{
    switch (ft->strategy) {
    case SAGE__FT_NONE: sage__fmt(buf, len, "fail fast"); return;
    case SAGE__FT_CHECKPOINT:
        sage__fmt(buf, len, "checkpoint every %gs, at most %d recoveries", ft->checkpoint_interval,
                  ft->max_recovery_attempts);
        return;
    case SAGE__FT_RESTART: break;
    }
    switch (ft->restart) {
    case SAGE__RESTART_FIXED:
        sage__fmt(buf, len, "restart: fixed delay %gs, at most %d restart%s", ft->delay, ft->max_attempts,
                  ft->max_attempts == 1 ? "" : "s");
        break;
    case SAGE__RESTART_EXPONENTIAL:
        sage__fmt(buf, len, "restart: exponential delay %gs x%g up to %gs, at most %d restart%s", ft->initial_delay,
                  ft->multiplier, ft->max_delay, ft->max_attempts, ft->max_attempts == 1 ? "" : "s");
        break;
    case SAGE__RESTART_FAILURE_RATE:
        sage__fmt(buf, len, "restart: delay %gs, at most %d failure%s in %gs", ft->delay, ft->max_failures_per_interval,
                  ft->max_failures_per_interval == 1 ? "" : "s", ft->interval_seconds);
        break;
    }
}

json_t *sage__ft_json(const sage__ft_config *ft)
{
    static const char *const strategies[] = {"none", "restart", "checkpoint"};
    json_t *o = json_pack("{s:s}", "strategy", strategies[ft->strategy]);
    if (!o)
        return NULL;
    int bad = 0;
    if (ft->strategy == SAGE__FT_RESTART) {
        bad |= json_object_set_new(o, "restart_strategy", json_string(restart_name(ft->restart)));
        if (ft->restart != SAGE__RESTART_FAILURE_RATE)
            bad |= json_object_set_new(o, "max_attempts", json_integer(ft->max_attempts));
        if (ft->restart == SAGE__RESTART_EXPONENTIAL) {
            bad |= json_object_set_new(o, "initial_delay", json_real(ft->initial_delay));
            bad |= json_object_set_new(o, "max_delay", json_real(ft->max_delay));
            bad |= json_object_set_new(o, "multiplier", json_real(ft->multiplier));
        } else {
            bad |= json_object_set_new(o, "delay", json_real(ft->delay));
        }
        if (ft->restart == SAGE__RESTART_FAILURE_RATE) {
            bad |= json_object_set_new(o, "max_failures_per_interval", json_integer(ft->max_failures_per_interval));
            bad |= json_object_set_new(o, "interval_seconds", json_real(ft->interval_seconds));
        }
    } else if (ft->strategy == SAGE__FT_CHECKPOINT) {
        bad |= json_object_set_new(o, "checkpoint_interval", json_real(ft->checkpoint_interval));
        bad |= json_object_set_new(o, "max_recovery_attempts", json_integer(ft->max_recovery_attempts));
        bad |= json_object_set_new(o, "checkpoints_retained", json_integer(ft->checkpoints_retained));
        bad |= json_object_set_new(o, "checkpoint_timeout", json_real(ft->checkpoint_timeout));
        if (ft->checkpoint_dir[0])
            bad |= json_object_set_new(o, "checkpoint_dir", json_string(ft->checkpoint_dir));
    }
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* The restart strategy's verdict on one more failure (now: monotonic seconds): 1 to restart. fail_at holds
 * max_failures_per_interval + 1 times (failure_rate only). */
int sage__ft_may_restart(const sage__ft_config *ft, int failures, double now, double *fail_at, int *nfail)
{
    if (ft->strategy == SAGE__FT_CHECKPOINT)
        return failures <= ft->max_recovery_attempts;
    if (ft->strategy != SAGE__FT_RESTART)
        return 0;
    if (ft->restart != SAGE__RESTART_FAILURE_RATE)
        return failures <= ft->max_attempts;
    int kept = 0;
    for (int i = 0; i < *nfail; i++)
        if (now - fail_at[i] < ft->interval_seconds)
            fail_at[kept++] = fail_at[i];
    *nfail = kept;
    if (*nfail <= ft->max_failures_per_interval)
        fail_at[(*nfail)++] = now;
    return *nfail <= ft->max_failures_per_interval;
}
