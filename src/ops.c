/*
 * ops.c: what orchestrators call. GET /health is liveness with the
 * pre-warming summary of the pre-warming guide.
 */

#include <sys/types.h>

#include <string.h>

#include <kore/kore.h>
#include <kore/http.h>
#include <kore/pgsql.h>
#include <kore/curl.h>

#include <yajl/yajl_gen.h>

#include "kiln.h"

int
ops_health(struct http_request *req, struct api_state *st)
{
	struct cache_entry	*e;
	void			*g;
	int64_t			now, next;
	int			authenticated, active;

	now = kiln_now();
	authenticated = cache_loaded();
	next = -1;
	active = kiln_config.prewarming_enabled && !cache_paused();

	for (e = cache_first(); e != NULL; e = cache_next(e)) {
		if (!e->enabled)
			continue;
		if (!cache_valid(e, now))
			authenticated = 0;
		if (!e->paused && (next == -1 || e->next_ms < next))
			next = e->next_ms;
	}

	g = api_json_begin();
	api_kv_str(g, "status", "healthy");
	api_kv_str(g, "service", "kiln");
	api_kv_bool(g, "authenticated", authenticated);
	yajl_gen_string(g, (const unsigned char *)"prewarming", 10);
	yajl_gen_map_open(g);
	api_kv_bool(g, "active", active);
	if (next == -1 || !active) {
		api_kv_null(g, "next_refresh_in_minutes");
	} else {
		api_kv_decimal(g, "next_refresh_in_minutes",
		    (next > now ? next - now : 0) / 60000.0);
	}
	yajl_gen_map_close(g);
	api_json_send(req, 200, g);

	return (KORE_RESULT_OK);
}
