/*
 * pricing.c — the PRICING deployment variable: parsing and checking it, and
 * the cost of a model (api.md §3 "Pricing"). The cost is always computed
 * here, never taken from the client.
 * Thread: the engine's threads.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "app/model.h"

static bool is_price(const json_t *v)
{
    if (!json_is_number(v)) return false;
    double x = json_number_value(v);
    return x >= 0 && x <= (double)APP_PRICE_MAX && x == floor(x);
}

json_t *app_pricing_parse(const char *text, err_t *e)
{
    json_error_t jerr;
    json_t *p = json_loads(text, 0, &jerr);
    const char *why = NULL;
    if (!json_is_object(p)) {
        why = "it is not a JSON object";
    } else {
        const char *key;
        json_t *v;
        json_object_foreach(p, key, v)
        {
            if (strcmp(key, "default") == 0) {
                if (!is_price(v)) why = "\"default\" must be a non-negative integer";
            } else if (strcmp(key, "models") == 0) {
                if (!json_is_object(v)) {
                    why = "\"models\" must be an object of model name to price";
                    break;
                }
                const char *model;
                json_t *price;
                json_object_foreach(v, model, price) if (!is_price(price)) why =
                    "every price in \"models\" must be a non-negative integer";
            } else {
                why = "only \"default\" and \"models\" are allowed";
            }
            if (why) break;
        }
    }
    if (why) {
        json_decref(p);
        err_set(e, ERR_INVALID_ARGUMENT,
                "Deployment variable PRICING is invalid: %s; expected "
                "{\"default\": 1, \"models\": {\"<model>\": <credits>}}",
                why);
        return NULL;
    }
    return p;
}

int app_pricing_cost(ctx *c, const json_t *pricing, const char *model, int64_t *cost_out)
{
    const json_t *price = json_object_get(json_object_get(pricing, "models"), model);
    if (!price) price = json_object_get(pricing, "default");
    if (!price)
        return ctx_fail(c, ERR_UNKNOWN_MODEL, json_pack("{s:s}", "model", model),
                        "Unknown model \"%.200s\": it has no price in PRICING and there is no "
                        "default",
                        model);
    *cost_out = (int64_t)json_number_value(price);
    return 0;
}
