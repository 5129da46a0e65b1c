/*
 * test_dash_forms.c: the dashboard's forms. A secret's input never
 * carries its value, only whether one is stored; every other value is
 * escaped; an error goes next to its field (or atop the form when the
 * form has no such field); a submitted form reads as the JSON the admin
 * API takes (blank: default on create, null on edit, kept for secrets).
 */

#include <sys/types.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <yajl/yajl_gen.h>

#include "kiln.h"
#include "dbuf_check.h"

#define EVIL	"\"><script>x</script>"

/* The JSON of pairs as df_form_json (mode 0, 1) or df_key_json (2). */
static void
json_of(const struct df_pair *v, size_t n, int mode, char *out, size_t len)
{
	yajl_gen		g;
	const unsigned char	*buf;
	size_t			blen;

	g = yajl_gen_alloc(NULL);
	yajl_gen_map_open(g);
	if (mode == 2)
		assert_int_equal(df_key_json(v, n, g), 1);
	else
		assert_int_equal(df_form_json(v, n, mode, g), 1);
	yajl_gen_map_close(g);
	yajl_gen_get_buf(g, &buf, &blen);
	assert_true(blen < len);
	memcpy(out, buf, blen);
	out[blen] = '\0';
	yajl_gen_free(g);
}

static void
secret_never_rendered(void **state)
{
	struct df_pair	v[] = {
		{ "client_id", EVIL },
		{ "client_secret", "s3cr3t-value" },
		{ "token_url", "https://idp.example/token" },
	};
	struct df_form	f;
	struct dbuf	b;

	(void)state;
	memset(&f, 0, sizeof(f));
	f.kind = "client_credentials";
	f.source = "cc1";
	f.values = v;
	f.nvalues = 3;
	f.set = DF_CLIENT_SECRET;
	f.csrf = "0123456789abcdef0123456789abcdef";
	f.admin = 1;
	dbuf_init(&b);
	df_source_form(&b, &f);
	hasnt(&b, "s3cr3t-value");
	hasnt(&b, "<script>");
	has(&b, "value=\"&quot;&gt;&lt;script&gt;x&lt;/script&gt;\"");
	has(&b, "name=\"client_secret\" data-type=\"secret\" "
	    "autocomplete=\"off\" spellcheck=\"false\" placeholder=\"a value "
	    "is set — leave blank to keep it\">");
	has(&b, "action=\"/dashboard/sources/cc1\"");
	has(&b, "data-method=\"PATCH\"");
	/* an edit has no name input */
	hasnt(&b, "id=\"f-name\"");
	dbuf_free(&b);

	/* nothing stored: no placeholder */
	f.set = 0;
	dbuf_init(&b);
	df_source_form(&b, &f);
	hasnt(&b, "a value is set");
	dbuf_free(&b);
}

static void
error_next_to_its_field(void **state)
{
	struct df_form	f;
	struct dbuf	b;

	(void)state;
	memset(&f, 0, sizeof(f));
	f.kind = "json_login";
	f.error = "token_path: required for json_login <b>";
	f.field = "token_path";
	f.admin = 1;
	dbuf_init(&b);
	df_source_form(&b, &f);
	has(&b, "<div class=\"field\" data-field=\"token_path\">");
	has(&b, "<p class=\"field-error\" id=\"err-token_path\" role=\"alert\">"
	    "token_path: required for json_login &lt;b&gt;</p>");
	hasnt(&b, "form-error");
	dbuf_free(&b);

	/* a field this kind's form lacks: atop the form */
	f.error = "client_id: required with client_secret";
	f.field = "client_id";
	dbuf_init(&b);
	df_source_form(&b, &f);
	has(&b, "<p class=\"alert form-error\" role=\"alert\">client_id: "
	    "required with client_secret</p>");
	hasnt(&b, "field-error");
	dbuf_free(&b);
}

static void
form_reads_as_api_json(void **state)
{
	struct df_pair	v[] = {
		{ "csrf", "abc" },
		{ "kind", "client_credentials" },
		{ "name", "cc1" },
		{ "token_url", "https://u:p@idp/t" },
		{ "token_url_shown", "https://idp/t" },
		{ "scope", "" },
		{ "client_secret", "" },
		{ "refresh_buffer", "120" },
		{ "fallback_lifetime", "soon" },
		{ "enabled", "false" },
		{ "enabled", "true" },
		{ "require_header", "false" },
	};
	char		out[1024];

	(void)state;
	json_of(v, 12, 0, out, sizeof(out));
	assert_string_equal(out, "{\"kind\":\"client_credentials\","
	    "\"name\":\"cc1\",\"token_url\":\"https://u:p@idp/t\","
	    "\"refresh_buffer\":120,\"fallback_lifetime\":\"soon\","
	    "\"enabled\":true,\"require_header\":false}");

	/* an edit: blank is null, a blank secret and the URL as shown
	 * are left out, the name too */
	v[3].value = "https://idp/t";
	json_of(v, 12, 1, out, sizeof(out));
	assert_string_equal(out, "{\"kind\":\"client_credentials\","
	    "\"scope\":null,\"refresh_buffer\":120,"
	    "\"fallback_lifetime\":\"soon\",\"enabled\":true,"
	    "\"require_header\":false}");
}

static void
key_form_json(void **state)
{
	struct df_pair	v[] = {
		{ "csrf", "abc" },
		{ "name", "ci" },
		{ "role", "client" },
		{ "sources", " a, b ,,c " },
	};
	char		out[256];

	(void)state;
	json_of(v, 4, 2, out, sizeof(out));
	assert_string_equal(out, "{\"name\":\"ci\",\"role\":\"client\","
	    "\"sources\":[\"a\",\"b\",\"c\"]}");
	v[3].value = " , ";
	json_of(v, 4, 2, out, sizeof(out));
	assert_string_equal(out, "{\"name\":\"ci\",\"role\":\"client\"}");
}

static void
lists_escape(void **state)
{
	struct df_row	r = { "a-b", "client_credentials", "valid", 1 };
	struct df_key	k = { 7, EVIL, "viewer", NULL, 0, DR_NULL };
	struct dbuf	b;

	(void)state;
	dbuf_init(&b);
	df_sources(&b, &r, 1, NULL, 0, 1, 0, NULL);
	has(&b, "<tr data-source=\"a-b\">");
	hasnt(&b, "Delete");
	dbuf_free(&b);

	/* keyset pages: Next after the last row shown, First from later */
	dbuf_init(&b);
	df_sources(&b, &r, 1, NULL, 1, 250, 1, "c");
	has(&b, "<span>250 sources</span> <a href=\"/dashboard/sources?"
	    "after=a-b\">Next</a>");
	has(&b, "Delete");
	hasnt(&b, "First page");
	dbuf_free(&b);
	dbuf_init(&b);
	df_sources(&b, &r, 1, "a-a", 0, 250, 0, NULL);
	has(&b, "First page");
	hasnt(&b, "Next");
	dbuf_free(&b);

	dbuf_init(&b);
	df_keys(&b, &k, 1, "c");
	hasnt(&b, "<script>");
	has(&b, "action=\"/dashboard/keys/7/revoke\"");
	dbuf_free(&b);

	dbuf_init(&b);
	df_key_created(&b, EVIL, "kiln_key<");
	has(&b, "<code id=\"new-key\">kiln_key&lt;</code>");
	hasnt(&b, "<script>");
	dbuf_free(&b);
}

static void
error_field_named(void **state)
{
	char		f[64];

	(void)state;
	assert_int_equal(json_err_field("token_url: must be", f, sizeof(f)),
	    1);
	assert_string_equal(f, "token_url");
	assert_int_equal(json_err_field("client_secret, password: required",
	    f, sizeof(f)), 1);
	assert_string_equal(f, "client_secret");
	assert_int_equal(json_err_field("a token source exists", f,
	    sizeof(f)), 0);
	assert_int_equal(json_err_field(": x", f, sizeof(f)), 0);
}

#define PEM_KEY	"-----BEGIN PRIVATE KEY-----\nMIGHAgEAzzz\n-----END PRIVATE KEY-----\n"
#define PEM_CRT	"-----BEGIN CERTIFICATE-----\nMIIBcert<x>\n-----END CERTIFICATE-----\n"

/*
 * Token exchange has its form; the OAuth kinds offer the mTLS methods
 * with the PEMs as textareas; the key never rendered, its placeholder
 * saying it is stored; an error on a PEM at its field.
 */
static void
exchange_and_mtls_forms(void **state)
{
	struct df_pair	v[] = {
		{ "subject_source", "cc-" EVIL },
		{ "auth_method", "tls_client_auth" },
		{ "tls_client_key", PEM_KEY },
		{ "tls_client_cert", PEM_CRT },
		{ "tls_client_cert_subject", "CN=kiln,O=Ex" },
	};
	struct df_form	f;
	struct dbuf	b;

	(void)state;
	dbuf_init(&b);
	df_kinds(&b, "token_exchange");
	has(&b, "<a href=\"/dashboard/sources?kind=token_exchange#new\" "
	    "aria-current=\"page\">token_exchange</a>");
	dbuf_free(&b);

	memset(&f, 0, sizeof(f));
	f.kind = "token_exchange";
	f.values = v;
	f.nvalues = 2;
	f.admin = 1;
	dbuf_init(&b);
	df_source_form(&b, &f);
	has(&b, "<legend>token_exchange</legend>");
	has(&b, "name=\"kind\" value=\"token_exchange\"");
	has(&b, "data-field=\"subject_source\"");
	has(&b, "value=\"cc-&quot;&gt;&lt;script&gt;x&lt;/script&gt;\"");
	has(&b, "data-field=\"subject_token_type\"");
	has(&b, "data-field=\"requested_token_type\"");
	has(&b, "data-field=\"actor_source\"");
	has(&b, "data-field=\"actor_token_type\"");
	has(&b, "data-field=\"audience\"");
	has(&b, "<option selected>tls_client_auth</option>");
	has(&b, "<option>self_signed_tls_client_auth</option>");
	has(&b, "<textarea id=\"f-tls_client_cert\" name=\"tls_client_cert\"");
	has(&b, "<textarea id=\"f-tls_client_key\" name=\"tls_client_key\" "
	    "rows=\"4\" data-type=\"secret\"");
	has(&b, "<textarea id=\"f-tls_ca\" name=\"tls_ca\" rows=\"4\" "
	    "data-type=\"pem\"");
	hasnt(&b, "<script>");
	dbuf_free(&b);

	/* client_credentials offers mTLS too; json_login does not */
	f.kind = "client_credentials";
	f.nvalues = 0;
	dbuf_init(&b);
	df_source_form(&b, &f);
	has(&b, "<option>tls_client_auth</option>");
	has(&b, "name=\"tls_client_key\"");
	hasnt(&b, "subject_source");
	dbuf_free(&b);
	f.kind = "json_login";
	dbuf_init(&b);
	df_source_form(&b, &f);
	hasnt(&b, "tls_client_auth");
	hasnt(&b, "tls_client_key");
	dbuf_free(&b);

	/* an edit: the key and the certificate never shown; stored said */
	f.kind = "client_credentials";
	f.source = "m1";
	f.values = v;
	f.nvalues = 5;
	f.set = DF_TLS_KEY | DF_TLS_CERT;
	f.error = "tls_client_cert: not a PEM certificate";
	f.field = "tls_client_cert";
	dbuf_init(&b);
	df_source_form(&b, &f);
	hasnt(&b, "MIGHAgEAzzz");
	hasnt(&b, "PRIVATE KEY");
	has(&b, "name=\"tls_client_key\" rows=\"4\" data-type=\"secret\" "
	    "autocomplete=\"off\" spellcheck=\"false\" placeholder=\"a value "
	    "is set — leave blank to keep it\"></textarea>");
	has(&b, "name=\"tls_client_cert\" rows=\"4\" data-type=\"pem\" "
	    "autocomplete=\"off\" spellcheck=\"false\" placeholder=\"a value "
	    "is set — leave blank to keep it\">");
	has(&b, "MIIBcert&lt;x&gt;");
	has(&b, "<small class=\"cert\">stored: CN=kiln,O=Ex</small>");
	has(&b, "<p class=\"field-error\" id=\"err-tls_client_cert\" "
	    "role=\"alert\">tls_client_cert: not a PEM certificate</p>");
	hasnt(&b, "form-error");
	dbuf_free(&b);

	/* a key sent and refused is not kept: type it again */
	f.set = 0;
	f.typed = df_typed(v, 5);
	assert_int_equal(f.typed, DF_TLS_KEY | DF_TLS_CERT);
	dbuf_init(&b);
	df_source_form(&b, &f);
	hasnt(&b, "PRIVATE KEY");
	has(&b, "data-type=\"secret\" autocomplete=\"off\" spellcheck=\"false\" "
	    "placeholder=\"type it again: it was not kept\"></textarea>");
	dbuf_free(&b);
}

/* On edit a blank PEM is kept (left out), as a blank secret. */
static void
pem_form_json(void **state)
{
	struct df_pair	v[] = {
		{ "kind", "token_exchange" },
		{ "subject_source", "cc1" },
		{ "actor_source", "" },
		{ "auth_method", "tls_client_auth" },
		{ "tls_client_cert", "" },
		{ "tls_client_key", "" },
		{ "tls_ca", "" },
	};
	char		out[1024];

	(void)state;
	json_of(v, 7, 1, out, sizeof(out));
	assert_string_equal(out, "{\"kind\":\"token_exchange\","
	    "\"subject_source\":\"cc1\",\"actor_source\":null,"
	    "\"auth_method\":\"tls_client_auth\"}");
	v[5].value = PEM_KEY;
	json_of(v, 7, 0, out, sizeof(out));
	assert_string_equal(out, "{\"kind\":\"token_exchange\","
	    "\"subject_source\":\"cc1\",\"auth_method\":\"tls_client_auth\","
	    "\"tls_client_key\":\"-----BEGIN PRIVATE KEY-----\\nMIGHAgEAzzz\\n"
	    "-----END PRIVATE KEY-----\\n\"}");
}

/* jwt_bearer's form; private_key_jwt offered; the key write-only. */
static void
jwt_forms(void **state)
{
	struct df_pair	v[] = {
		{ "issuer", "svc@" EVIL },
		{ "private_key", PEM_KEY },
		{ "signing_key_id", "kid-<1>" },
		{ "key_generate", "ES256" },
	};
	struct df_form	f;
	struct dbuf	b;

	(void)state;
	memset(&f, 0, sizeof(f));
	f.kind = "jwt_bearer";
	f.source = "jb1";
	f.values = v;
	f.nvalues = 4;
	f.set = DF_PRIVATE_KEY;
	f.admin = 1;
	dbuf_init(&b);
	df_source_form(&b, &f);
	has(&b, "<legend>jwt_bearer</legend>");
	has(&b, "value=\"svc@&quot;&gt;&lt;script&gt;");
	has(&b, "data-field=\"subject\"");
	has(&b, "data-field=\"target_audience\"");
	has(&b, "<textarea id=\"f-private_key\" name=\"private_key\" rows=\"4\" "
	    "data-type=\"secret\" autocomplete=\"off\" spellcheck=\"false\" "
	    "placeholder=\"a value is set — leave blank to keep it\">"
	    "</textarea>");
	hasnt(&b, "PRIVATE KEY");
	has(&b, "signing key id: <code>kid-&lt;1&gt;</code>");
	has(&b, "<select id=\"f-private_key_generate\" "
	    "name=\"private_key_generate\" data-type=\"generate\"><option "
	    "value=\"\" selected>—</option><option>ES256</option>");
	has(&b, "generated: ES256");
	has(&b, "name=\"key_id\" data-type=\"keep\"");
	hasnt(&b, "<script>");
	dbuf_free(&b);

	f.kind = "client_credentials";
	f.source = NULL;
	f.nvalues = 0;
	f.set = 0;
	dbuf_init(&b);
	df_source_form(&b, &f);
	has(&b, "<option>private_key_jwt</option>");
	has(&b, "name=\"private_key\"");
	dbuf_free(&b);
}

/* generate: {"generate": alg} when no PEM; a blank kid kept on edit. */
static void
jwt_form_json(void **state)
{
	struct df_pair	v[] = {
		{ "kind", "jwt_bearer" },
		{ "issuer", "svc" },
		{ "private_key", "" },
		{ "private_key_generate", "ES256" },
		{ "assertion_alg", "" },
		{ "key_id", "" },
	};
	char		out[1024];

	(void)state;
	json_of(v, 6, 0, out, sizeof(out));
	assert_string_equal(out, "{\"kind\":\"jwt_bearer\",\"issuer\":\"svc\","
	    "\"private_key\":{\"generate\":\"ES256\"}}");
	json_of(v, 6, 1, out, sizeof(out));
	assert_string_equal(out, "{\"kind\":\"jwt_bearer\",\"issuer\":\"svc\","
	    "\"private_key\":{\"generate\":\"ES256\"}}");
	/* a PEM given wins; no generate */
	v[2].value = "PEM";
	v[4].value = "PS256";
	json_of(v, 6, 1, out, sizeof(out));
	assert_string_equal(out, "{\"kind\":\"jwt_bearer\",\"issuer\":\"svc\","
	    "\"private_key\":\"PEM\",\"assertion_alg\":\"PS256\"}");
	v[3].value = "";
	v[2].value = "";
	json_of(v, 6, 1, out, sizeof(out));
	assert_string_equal(out, "{\"kind\":\"jwt_bearer\",\"issuer\":\"svc\","
	    "\"assertion_alg\":\"PS256\"}");
}

/*
 * The consent kinds: their own fields, the secret write-only, "key" the
 * access of a new one, an error next to its field.
 */
static void
consent_forms(void **state)
{
	struct df_pair	v[] = {
		{ "authorize_url", "https://idp.example/auth?x=" EVIL },
		{ "client_secret", "s3cr3t-value" },
		{ "extra_authorize_params", "{\"prompt\":\"consent\"}" },
		{ "device_authorization_url", "https://idp.example/device" },
	};
	struct df_form	f;
	struct dbuf	b;

	(void)state;
	memset(&f, 0, sizeof(f));
	f.kind = "authorization_code";
	f.values = v;
	f.nvalues = 3;
	f.typed = DF_CLIENT_SECRET;
	f.error = "extra_authorize_params: state is kiln's own parameter";
	f.field = "extra_authorize_params";
	f.csrf = "0123456789abcdef0123456789abcdef";
	f.admin = 1;
	dbuf_init(&b);
	df_source_form(&b, &f);
	has(&b, "<legend>authorization_code</legend>");
	has(&b, "name=\"kind\" value=\"authorization_code\"");
	has(&b, "name=\"authorize_url\" data-type=\"text\"");
	has(&b, "value=\"https://idp.example/auth?x=&quot;&gt;&lt;script&gt;");
	hasnt(&b, "<script>");
	has(&b, "name=\"token_url\"");
	has(&b, "name=\"client_id\"");
	has(&b, "name=\"auth_method\"");
	has(&b, "name=\"scope\"");
	has(&b, "name=\"audience\"");
	has(&b, "name=\"resource\"");
	has(&b, "name=\"revocation_url\"");
	has(&b, "<textarea id=\"f-extra_authorize_params\" "
	    "name=\"extra_authorize_params\" rows=\"3\" data-type=\"json\" "
	    "autocomplete=\"off\" spellcheck=\"false\">{&quot;prompt&quot;:"
	    "&quot;consent&quot;}</textarea>");
	has(&b, "data-field=\"extra_authorize_params\">");
	has(&b, "<p class=\"field-error\" id=\"err-extra_authorize_params\" "
	    "role=\"alert\">extra_authorize_params: state is kiln&#39;s own "
	    "parameter</p>");
	hasnt(&b, "form-error");
	hasnt(&b, "s3cr3t-value");
	has(&b, "name=\"client_secret\" data-type=\"secret\" "
	    "autocomplete=\"off\" spellcheck=\"false\" placeholder=\"type it "
	    "again: it was not kept\">");
	hasnt(&b, "name=\"device_authorization_url\"");
	hasnt(&b, "name=\"refresh_token\"");
	has(&b, "<option selected>key</option>");
	dbuf_free(&b);

	/* the edit of a device_code source: the secret is set */
	f.kind = "device_code";
	f.source = "dev1";
	f.values = v + 1;
	f.nvalues = 3;
	f.typed = 0;
	f.set = DF_CLIENT_SECRET;
	f.error = NULL;
	f.field = NULL;
	dbuf_init(&b);
	df_source_form(&b, &f);
	has(&b, "<legend>device_code</legend>");
	has(&b, "name=\"device_authorization_url\" data-type=\"text\" "
	    "autocomplete=\"off\" spellcheck=\"false\" value=\""
	    "https://idp.example/device\"");
	has(&b, "name=\"token_url\"");
	has(&b, "name=\"client_id\"");
	has(&b, "name=\"auth_method\"");
	has(&b, "name=\"scope\"");
	hasnt(&b, "name=\"authorize_url\"");
	hasnt(&b, "name=\"extra_authorize_params\"");
	hasnt(&b, "name=\"username\"");
	hasnt(&b, "s3cr3t-value");
	has(&b, "name=\"client_secret\" data-type=\"secret\" "
	    "autocomplete=\"off\" spellcheck=\"false\" placeholder=\"a value "
	    "is set — leave blank to keep it\">");
	has(&b, "action=\"/dashboard/sources/dev1\"");
	dbuf_free(&b);

	/* the kind chooser offers both */
	dbuf_init(&b);
	df_kinds(&b, "device_code");
	has(&b, "href=\"/dashboard/sources?kind=authorization_code#new\"");
	has(&b, "href=\"/dashboard/sources?kind=device_code#new\" "
	    "aria-current=\"page\"");
	dbuf_free(&b);
}

/* extra_authorize_params: an object as JSON, anything else as text. */
static void
consent_form_json(void **state)
{
	struct df_pair	v[] = {
		{ "kind", "authorization_code" },
		{ "extra_authorize_params",
		    " {\"prompt\":\"consent\",\"n\":[1,true,null]} " },
		{ "client_secret", "" },
	};
	char		out[1024];

	(void)state;
	json_of(v, 3, 0, out, sizeof(out));
	assert_string_equal(out, "{\"kind\":\"authorization_code\","
	    "\"extra_authorize_params\":{\"prompt\":\"consent\","
	    "\"n\":[1,true,null]}}");
	v[1].value = "prompt=consent";
	json_of(v, 3, 0, out, sizeof(out));
	assert_string_equal(out, "{\"kind\":\"authorization_code\","
	    "\"extra_authorize_params\":\"prompt=consent\"}");
	v[1].value = "[\"a\"]";
	json_of(v, 3, 0, out, sizeof(out));
	assert_string_equal(out, "{\"kind\":\"authorization_code\","
	    "\"extra_authorize_params\":\"[\\\"a\\\"]\"}");
	/* an edit: blank clears it, a blank secret is kept */
	v[1].value = "";
	json_of(v, 3, 1, out, sizeof(out));
	assert_string_equal(out, "{\"kind\":\"authorization_code\","
	    "\"extra_authorize_params\":null}");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(secret_never_rendered),
		cmocka_unit_test(error_next_to_its_field),
		cmocka_unit_test(form_reads_as_api_json),
		cmocka_unit_test(key_form_json),
		cmocka_unit_test(lists_escape),
		cmocka_unit_test(error_field_named),
		cmocka_unit_test(exchange_and_mtls_forms),
		cmocka_unit_test(pem_form_json),
		cmocka_unit_test(jwt_forms),
		cmocka_unit_test(jwt_form_json),
		cmocka_unit_test(consent_forms),
		cmocka_unit_test(consent_form_json),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
