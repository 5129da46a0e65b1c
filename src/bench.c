/*
 * bench.c: the constant route of the benchmarks (KILN_BENCH_ROUTE=1).
 */

#include <sys/types.h>

#include <yajl/yajl_tree.h>

#include <kore/kore.h>
#include <kore/http.h>
#include <kore/pgsql.h>
#include <kore/curl.h>

#include "kiln.h"

/*
 * KILN_BENCH_ROUTE=1 only: Kore's own constant JSON route, the ceiling
 * the benchmarks compare the current-token path with. The body has the
 * size of a token answer.
 */
int
bench_constant(struct http_request *req)
{
	static const char	body[] =
	    "{\"agent_name\":\"bench\",\"token\":\"0123456789abcdef0123456789"
	    "abcdef0123456789abcdef0123456789abcdef\",\"token_type\":\"Bearer"
	    "\",\"expires_at\":\"2026-11-21T19:26:15.611Z\",\"expires_in\":"
	    "1799,\"valid\":true,\"message\":\"Current token retrieved "
	    "successfully\",\"fingerprint\":\"6d0087ddcbb6\",\"generation\":1}";

	http_response_header(req, "Content-Type",
	    "application/json; charset=utf-8");
	http_response_header(req, "Cache-Control", "no-store");
	http_response(req, 200, body, sizeof(body) - 1);

	return (KORE_RESULT_OK);
}
