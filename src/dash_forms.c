/*
 * dash_forms.c (pure): the dashboard's forms to manage token sources and
 * API keys, and the JSON a submitted form stands for.
 *
 * One form per kind, with the fields source.c reads for that kind. A
 * form posts to /dashboard/... (no JavaScript) or, through
 * assets/manage.js, sends the same JSON to the admin API; both follow
 * the rules of df_form_json. Secrets are write-only: their inputs never
 * carry a value, only a placeholder saying whether one is stored. Every
 * other string goes through dr_escape.
 */

#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "kiln.h"

#define DF_TEXT		1
#define DF_URL		2
#define DF_SECRET	3
#define DF_INT		4
#define DF_AUTH		5
#define DF_ACCESS	6
#define DF_BOOL		7
#define DF_PEM		8	/* a textarea; blank on edit: kept */
#define DF_PEM_SECRET	9	/* a textarea, write-only */
#define DF_KEEP		10	/* text not shown by the API: blank kept */
#define DF_ALG		11	/* a select; blank: kept, or the default */
#define DF_GEN		12	/* private_key {"generate": alg} */
#define DF_JSON		13	/* a textarea: a JSON object, else text */

static const char	df_not_here[] = "";	/* another field's error */
#define DF_NOT_HERE	df_not_here

struct df_field {
	const char	*name;
	int		type;
	const char	*label;
	const char	*hint;
};

static const struct df_field df_fields[] = {
	{ "token_url", DF_URL, "Token URL",
	    "http:// or https://; the login URL for json_login" },
	{ "client_id", DF_TEXT, "Client ID", NULL },
	{ "client_secret", DF_SECRET, "Client secret", NULL },
	{ "auth_method", DF_AUTH, "Client authentication", NULL },
	{ "refresh_token", DF_SECRET, "Refresh token", NULL },
	{ "username", DF_TEXT, "Username", NULL },
	{ "password", DF_SECRET, "Password", NULL },
	{ "scope", DF_TEXT, "Scope", "optional" },
	{ "audience", DF_TEXT, "Audience", "optional" },
	{ "resource", DF_TEXT, "Resource", "optional" },
	{ "token_path", DF_TEXT, "Token path",
	    "dotted path of the token in the answer, e.g. Data.access_token" },
	{ "expires_at_path", DF_TEXT, "Expiry path",
	    "optional: ISO-8601 or epoch seconds, e.g. Data.expires" },
	{ "expires_in_path", DF_TEXT, "Lifetime path",
	    "optional: seconds left (default expires_in)" },
	{ "refresh_buffer", DF_INT, "Refresh buffer (s)",
	    "optional: refresh this long before expiry" },
	{ "fallback_lifetime", DF_INT, "Fallback lifetime (s)",
	    "optional: when the answer has no expiry (default 900)" },
	{ "access", DF_ACCESS, "Access", NULL },
	{ "require_header", DF_BOOL, "Require the X-Kiln-Request header",
	    NULL },
	{ "enabled", DF_BOOL, "Enabled", NULL },
	{ "subject_source", DF_TEXT, "Subject source",
	    "the source whose token is exchanged" },
	{ "subject_token_type", DF_TEXT, "Subject token type",
	    "optional (default "
	    "urn:ietf:params:oauth:token-type:access_token)" },
	{ "requested_token_type", DF_TEXT, "Requested token type",
	    "optional" },
	{ "actor_source", DF_TEXT, "Actor source", "optional" },
	{ "actor_token_type", DF_TEXT, "Actor token type",
	    "optional, with an actor source" },
	{ "tls_client_cert", DF_PEM, "Client certificate (PEM)",
	    "tls_client_auth and self_signed_tls_client_auth only" },
	{ "tls_client_key", DF_PEM_SECRET, "Client private key (PEM)",
	    "tls_client_auth and self_signed_tls_client_auth only" },
	{ "tls_ca", DF_PEM, "CA certificates (PEM)",
	    "optional: the only ones trusted for the token URL" },
	{ "issuer", DF_TEXT, "Issuer (iss)", "default: the client ID" },
	{ "subject", DF_TEXT, "Subject (sub)", "optional (default: issuer)" },
	{ "private_key", DF_PEM_SECRET, "Private key (PEM)",
	    "private_key_jwt and jwt_bearer: RSA or EC P-256, unencrypted" },
	{ "private_key_generate", DF_GEN, "Or let kiln generate the key",
	    "used when no PEM is given; its public half is in jwks.json" },
	{ "assertion_alg", DF_ALG, "Assertion algorithm",
	    "default: the key's own" },
	{ "key_id", DF_KEEP, "Key ID (kid)",
	    "optional (default: the key's thumbprint)" },
	{ "assertion_audience", DF_TEXT, "Assertion audience (aud)",
	    "optional (default: the token URL)" },
	{ "target_audience", DF_TEXT, "Target audience", "optional" },
	{ "authorize_url", DF_URL, "Authorize URL",
	    "where people consent (the provider's authorization endpoint)" },
	{ "device_authorization_url", DF_URL, "Device authorization URL",
	    "on the origin of the token URL" },
	{ "revocation_url", DF_URL, "Revocation URL",
	    "optional: revokes a connection's token when it is deleted" },
	{ "extra_authorize_params", DF_JSON, "Extra consent parameters",
	    "optional: a JSON object of strings, e.g. {\"prompt\":\"consent\"}" },
	{ NULL, 0, NULL, NULL }
};

/* The fields of each kind's form, after name (new sources only). */
#define DF_CLIENT_AUTH	"auth_method", "tls_client_cert", \
	"tls_client_key", "tls_ca", "private_key", "private_key_generate", \
	"assertion_alg", "key_id", "assertion_audience"
static const char *df_kind_fields[][26] = {
	{ "client_credentials", "token_url", "client_id", "client_secret",
	    DF_CLIENT_AUTH, "scope", "audience", "resource", NULL },
	{ "refresh_token", "token_url", "refresh_token", "client_id",
	    "client_secret", DF_CLIENT_AUTH, "scope", NULL },
	{ "password", "token_url", "username", "password", "client_id",
	    "client_secret", DF_CLIENT_AUTH, "scope", NULL },
	{ "json_login", "token_url", "username", "password", "token_path",
	    "expires_at_path", "expires_in_path", "tls_ca", NULL },
	{ "token_exchange", "token_url", "subject_source",
	    "subject_token_type", "requested_token_type", "actor_source",
	    "actor_token_type", "client_id", "client_secret", DF_CLIENT_AUTH,
	    "audience", "resource", "scope", NULL },
	{ "jwt_bearer", "token_url", "issuer", "subject", "private_key",
	    "private_key_generate", "assertion_alg", "key_id",
	    "assertion_audience", "target_audience", "scope", "client_id",
	    "client_secret", "auth_method", "tls_ca", NULL },
	{ "authorization_code", "authorize_url", "token_url", "client_id",
	    "client_secret", DF_CLIENT_AUTH, "scope", "audience", "resource",
	    "revocation_url", "extra_authorize_params", NULL },
	{ "device_code", "device_authorization_url", "token_url",
	    "client_id", "client_secret", DF_CLIENT_AUTH, "scope", "audience",
	    "resource", NULL },
};

static const char *df_common[] = {
	"refresh_buffer", "fallback_lifetime", "access", "require_header",
	"enabled", NULL
};

#define DF_KINDS	(sizeof(df_kind_fields) / sizeof(df_kind_fields[0]))

static const struct df_field	*df_field(const char *);
static const char	*const *df_kind(const char *);
static int	df_secret_bit(const char *);
static int	df_form_has(const struct df_form *, const char *const *,
		    const char *);
static int	df_last(const struct df_pair *, size_t, size_t);
static int	df_integer(const char *, long long *);
static void	df_gen_str(void *, const char *, const char *);
static void	df_gen_json(void *, const char *, const char *);
static void	df_input(struct dbuf *, const struct df_field *,
		    const struct df_form *);
static void	df_select(struct dbuf *, const char *, const char *,
		    const char *const *);
static void	df_error(struct dbuf *, const char *, const char *);
static void	df_hidden(struct dbuf *, const char *, const char *);
static void	df_time(struct dbuf *, int64_t);

/* The last value of name among the pairs, or NULL. */
const char *
df_value(const struct df_pair *v, size_t n, const char *name)
{
	const char	*found;
	size_t		i;

	found = NULL;
	for (i = 0; i < n; i++) {
		if (!strcmp(v[i].name, name))
			found = v[i].value;
	}

	return (found);
}

/*
 * The JSON of a submitted source form into g, an open map: for a new
 * source an empty field is left out (its default); for an edit (edit
 * 1) an empty field is null (cleared), except a secret or a PEM (never
 * shown, so never filled in): empty keeps the stored one. token_url
 * as shown (token_url_shown) is left out, so that
 * a URL shown redacted is kept as stored. Of a field given twice (a
 * checkbox after its hidden "false") the last counts. Unknown fields go
 * on as strings: the source's own checks name them.
 */
int
df_form_json(const struct df_pair *v, size_t n, int edit, void *g)
{
	const struct df_field	*f;
	const char		*shown, *gen, *pem;
	long long		num;
	size_t			i;

	shown = df_value(v, n, "token_url_shown");
	gen = df_value(v, n, "private_key_generate");
	pem = df_value(v, n, "private_key");
	for (i = 0; i < n; i++) {
		if (!df_last(v, n, i) || !strcmp(v[i].name, "csrf") ||
		    !strcmp(v[i].name, "token_url_shown"))
			continue;
		if (edit && !strcmp(v[i].name, "name"))
			continue;
		if (edit && shown != NULL && !strcmp(v[i].name, "token_url") &&
		    !strcmp(v[i].value, shown))
			continue;
		f = df_field(v[i].name);
		if (f != NULL && f->type == DF_GEN)
			continue;
		if (f == NULL || f->type == DF_AUTH || f->type == DF_ACCESS ||
		    f->type == DF_ALG) {
			if (*v[i].value != '\0' || f == NULL)
				df_gen_str(g, v[i].name, v[i].value);
			continue;
		}
		if (*v[i].value == '\0') {
			if (edit && f->type != DF_SECRET &&
			    f->type != DF_PEM && f->type != DF_PEM_SECRET &&
			    f->type != DF_KEEP)
				json_kv_null(g, v[i].name);
			continue;
		}
		if (f->type == DF_JSON)
			df_gen_json(g, v[i].name, v[i].value);
		else if (f->type == DF_BOOL && (!strcmp(v[i].value, "true") ||
		    !strcmp(v[i].value, "false")))
			json_kv_bool(g, v[i].name, v[i].value[0] == 't');
		else if (f->type == DF_INT && df_integer(v[i].value, &num))
			json_kv_int(g, v[i].name, num);
		else
			df_gen_str(g, v[i].name, v[i].value);
	}
	/* a key to generate, when no PEM is given */
	if (gen != NULL && *gen != '\0' && (pem == NULL || *pem == '\0')) {
		yajl_gen_string(g, (const unsigned char *)"private_key", 11);
		yajl_gen_map_open(g);
		df_gen_str(g, "generate", gen);
		yajl_gen_map_close(g);
	}

	return (KORE_RESULT_OK);
}

/* The JSON of the key form: name, role, and sources when given. */
int
df_key_json(const struct df_pair *v, size_t n, void *g)
{
	const char	*name, *role, *list;
	char		*copy, *p, *item;

	name = df_value(v, n, "name");
	role = df_value(v, n, "role");
	list = df_value(v, n, "sources");

	df_gen_str(g, "name", name != NULL ? name : "");
	df_gen_str(g, "role", role != NULL ? role : "");
	if (list == NULL || list[strspn(list, " ,")] == '\0')
		return (KORE_RESULT_OK);

	if ((copy = strdup(list)) == NULL)
		return (KORE_RESULT_ERROR);
	yajl_gen_string(g, (const unsigned char *)"sources", 7);
	yajl_gen_array_open(g);
	for (p = copy; (item = strsep(&p, " ,")) != NULL;) {
		if (*item != '\0')
			yajl_gen_string(g, (const unsigned char *)item,
			    strlen(item));
	}
	yajl_gen_array_close(g);
	free(copy);

	return (KORE_RESULT_OK);
}

/* "Source x created." and the like, from a redirect's query. */
void
df_notice(struct dbuf *b, const char *what, const char *name)
{
	dbuf_appendf(b, "<p class=\"notice\" role=\"status\">");
	dr_escape(b, what);
	if (name != NULL) {
		dbuf_appendf(b, " <b>");
		dr_escape(b, name);
		dbuf_appendf(b, "</b>");
	}
	dbuf_appendf(b, "</p>");
}

/*
 * n rows of the sources list, after the name after (NULL: the first
 * page), more when a next page exists; total sources, for the pager.
 */
void
df_sources(struct dbuf *b, const struct df_row *r, size_t n,
    const char *after, int more, size_t total, int admin, const char *csrf)
{
	size_t		i;

	dbuf_appendf(b, "<table class=\"sources\"><thead><tr><th>Source</th>"
	    "<th>Kind</th><th>State</th><th>Enabled</th><th>Actions</th>"
	    "</tr></thead><tbody>");
	for (i = 0; i < n; i++) {
		dbuf_appendf(b, "<tr data-source=\"");
		dr_escape(b, r[i].name);
		dbuf_appendf(b, "\"><td class=\"name\"><a href=\""
		    "/dashboard/sources/");
		dr_escape(b, r[i].name);
		dbuf_appendf(b, "\">");
		dr_escape(b, r[i].name);
		dbuf_appendf(b, "</a></td><td>");
		dr_escape(b, r[i].kind);
		dbuf_appendf(b, "</td><td><span class=\"badge ");
		dr_escape(b, r[i].state);
		dbuf_appendf(b, "\">");
		dr_escape(b, r[i].state);
		dbuf_appendf(b, "</span></td><td>%s</td><td class=\"actions\">"
		    "<a class=\"button\" href=\"/dashboard/sources/",
		    r[i].enabled ? "yes" : "no");
		dr_escape(b, r[i].name);
		dbuf_appendf(b, "\">%s</a>", admin ? "Edit" : "View");
		if (admin && csrf != NULL) {
			dbuf_appendf(b, "<form method=\"post\" action=\""
			    "/dashboard/sources/");
			dr_escape(b, r[i].name);
			dbuf_appendf(b, "/delete\" data-api=\"/api/tokens/");
			dr_escape(b, r[i].name);
			dbuf_appendf(b, "\" data-method=\"DELETE\" "
			    "data-confirm=\"Delete the source ");
			dr_escape(b, r[i].name);
			dbuf_appendf(b, "?\" data-done=\"/dashboard/sources?"
			    "deleted=");
			dr_escape(b, r[i].name);
			dbuf_appendf(b, "\">");
			df_hidden(b, "csrf", csrf);
			dbuf_appendf(b, "<button class=\"danger\">Delete"
			    "</button></form>");
		}
		dbuf_appendf(b, "</td></tr>");
	}
	if (n == 0)
		dbuf_appendf(b, "<tr><td colspan=\"5\">No token sources yet."
		    "</td></tr>");
	dbuf_appendf(b, "</tbody></table>");

	if (after == NULL && !more)
		return;
	dbuf_appendf(b, "<nav class=\"pager\" aria-label=\"pages\">"
	    "<span>%zu sources</span>", total);
	if (after != NULL)
		dbuf_appendf(b, " <a href=\"/dashboard/sources\">First page"
		    "</a>");
	if (more && n > 0) {
		dbuf_appendf(b, " <a href=\"/dashboard/sources?after=");
		dr_escape(b, r[n - 1].name);
		dbuf_appendf(b, "\">Next</a>");
	}
	dbuf_appendf(b, "</nav>");
}

/* The kind chooser of the new-source form; kind is the one shown. */
void
df_kinds(struct dbuf *b, const char *kind)
{
	size_t		i;

	dbuf_appendf(b, "<nav class=\"kinds\" aria-label=\"kind\">");
	for (i = 0; i < DF_KINDS; i++) {
		dbuf_appendf(b, "<a href=\"/dashboard/sources?kind=%s#new\"%s>"
		    "%s</a>", df_kind_fields[i][0],
		    !strcmp(kind, df_kind_fields[i][0]) ?
		    " aria-current=\"page\"" : "", df_kind_fields[i][0]);
	}
	dbuf_appendf(b, "</nav>");
}

/* The form of one kind: a new source, or an edit of f->source. */
void
df_source_form(struct dbuf *b, const struct df_form *f)
{
	const char *const	*names;
	const struct df_field	*fd;
	size_t			i;

	if ((names = df_kind(f->kind)) == NULL)
		names = df_kind_fields[0];

	if (f->source == NULL) {
		dbuf_appendf(b, "<form method=\"post\" action=\""
		    "/dashboard/sources\" class=\"manage-form\" "
		    "data-api=\"/api/tokens\" data-method=\"POST\" "
		    "data-mode=\"create\" data-done=\"/dashboard/sources?"
		    "created=\" novalidate>");
	} else {
		dbuf_appendf(b, "<form method=\"post\" action=\""
		    "/dashboard/sources/");
		dr_escape(b, f->source);
		dbuf_appendf(b, "\" class=\"manage-form\" data-api=\""
		    "/api/tokens/");
		dr_escape(b, f->source);
		dbuf_appendf(b, "\" data-method=\"PATCH\" data-mode=\"edit\" "
		    "data-done=\"/dashboard/sources?saved=");
		dr_escape(b, f->source);
		dbuf_appendf(b, "\" novalidate>");
	}
	if (f->csrf != NULL)
		df_hidden(b, "csrf", f->csrf);
	dbuf_appendf(b, "<fieldset%s><legend>%s</legend>",
	    f->admin ? "" : " disabled", names[0]);
	dbuf_appendf(b, "<input type=\"hidden\" name=\"kind\" value=\"%s\" "
	    "data-type=\"text\">", names[0]);
	df_error(b, df_form_has(f, names, f->field) ? NULL : f->error, NULL);

	if (f->source == NULL) {
		dbuf_appendf(b, "<div class=\"field\" data-field=\"name\">"
		    "<label for=\"f-name\">Name</label><input id=\"f-name\" "
		    "name=\"name\" data-type=\"text\" autocomplete=\"off\" "
		    "spellcheck=\"false\" value=\"");
		dr_escape(b, df_value(f->values, f->nvalues, "name") ?
		    df_value(f->values, f->nvalues, "name") : "");
		dbuf_appendf(b, "\"><small>lowercase letters, digits, - and _"
		    "</small>");
		df_error(b, f->error, f->field != NULL &&
		    !strcmp(f->field, "name") ? "name" : DF_NOT_HERE);
		dbuf_appendf(b, "</div>");
	} else {
		dbuf_appendf(b, "<p class=\"source-name\">Source <b>");
		dr_escape(b, f->source);
		dbuf_appendf(b, "</b></p>");
		df_hidden(b, "token_url_shown", df_value(f->values,
		    f->nvalues, "token_url_shown"));
	}

	for (i = 1; names[i] != NULL; i++) {
		if ((fd = df_field(names[i])) != NULL)
			df_input(b, fd, f);
	}
	for (i = 0; df_common[i] != NULL; i++)
		df_input(b, df_field(df_common[i]), f);

	if (f->admin)
		dbuf_appendf(b, "<div class=\"buttons\"><button "
		    "class=\"primary\">%s</button></div>", f->source == NULL ?
		    "Create source" : "Save changes");
	dbuf_appendf(b, "</fieldset></form>");
}

/* The keys list; revoked keys say when, live ones can be revoked. */
void
df_keys(struct dbuf *b, const struct df_key *k, size_t n, const char *csrf)
{
	size_t		i;

	dbuf_appendf(b, "<table class=\"keys\"><thead><tr><th>ID</th>"
	    "<th>Name</th><th>Role</th><th>Sources</th><th>Created</th>"
	    "<th>Status</th><th>Actions</th></tr></thead><tbody>");
	for (i = 0; i < n; i++) {
		dbuf_appendf(b, "<tr data-key=\"%lld\"><td>%lld</td><td "
		    "class=\"name\">", (long long)k[i].id, (long long)k[i].id);
		dr_escape(b, k[i].name != NULL ? k[i].name : "");
		dbuf_appendf(b, "</td><td>");
		dr_escape(b, k[i].role != NULL ? k[i].role : "");
		dbuf_appendf(b, "</td><td>");
		dr_escape(b, k[i].sources != NULL ? k[i].sources : "all");
		dbuf_appendf(b, "</td><td>");
		df_time(b, k[i].created_ms);
		if (k[i].revoked_ms != DR_NULL) {
			dbuf_appendf(b, "</td><td><span class=\"badge expired\">"
			    "revoked</span> ");
			df_time(b, k[i].revoked_ms);
			dbuf_appendf(b, "</td><td></td></tr>");
			continue;
		}
		dbuf_appendf(b, "</td><td><span class=\"badge valid\">active"
		    "</span></td><td class=\"actions\"><form method=\"post\" "
		    "action=\"/dashboard/keys/%lld/revoke\" data-api=\""
		    "/api/keys/%lld\" data-method=\"DELETE\" data-confirm=\""
		    "Revoke the key ", (long long)k[i].id, (long long)k[i].id);
		dr_escape(b, k[i].name != NULL ? k[i].name : "");
		dbuf_appendf(b, "? Its sessions end too.\" data-done=\""
		    "/dashboard/keys?revoked=%lld\">", (long long)k[i].id);
		df_hidden(b, "csrf", csrf);
		dbuf_appendf(b, "<button class=\"danger\">Revoke</button>"
		    "</form></td></tr>");
	}
	if (n == 0)
		dbuf_appendf(b, "<tr><td colspan=\"7\">No API keys yet.</td>"
		    "</tr>");
	dbuf_appendf(b, "</tbody></table>");
}

/* The new-key form, with the values sent and its error, if any. */
void
df_key_form(struct dbuf *b, const struct df_pair *v, size_t n,
    const char *error, const char *field, const char *csrf)
{
	static const char	*roles[] = { "admin", "operator", "viewer",
				    "client", NULL };
	const char		*s;

	dbuf_appendf(b, "<form method=\"post\" action=\"/dashboard/keys\" "
	    "class=\"manage-form\" data-api=\"/api/keys\" data-method=\"POST\" "
	    "data-mode=\"key\" novalidate>");
	df_hidden(b, "csrf", csrf);
	dbuf_appendf(b, "<fieldset><legend>New API key</legend>");
	if (field != NULL && strcmp(field, "name") && strcmp(field, "role") &&
	    strcmp(field, "sources"))
		field = NULL;
	df_error(b, field == NULL ? error : NULL, NULL);

	dbuf_appendf(b, "<div class=\"field\" data-field=\"name\"><label "
	    "for=\"k-name\">Name</label><input id=\"k-name\" name=\"name\" "
	    "data-type=\"text\" autocomplete=\"off\" value=\"");
	s = df_value(v, n, "name");
	dr_escape(b, s != NULL ? s : "");
	dbuf_appendf(b, "\"><small>who or what uses it</small>");
	df_error(b, error, field != NULL && !strcmp(field, "name") ?
	    "name" : DF_NOT_HERE);
	dbuf_appendf(b, "</div><div class=\"field\" data-field=\"role\">"
	    "<label for=\"k-role\">Role</label>");
	s = df_value(v, n, "role");
	df_select(b, "role", s != NULL ? s : "viewer", roles);
	df_error(b, error, field != NULL && !strcmp(field, "role") ?
	    "role" : DF_NOT_HERE);
	dbuf_appendf(b, "</div><div class=\"field\" data-field=\"sources\">"
	    "<label for=\"k-sources\">Sources</label><input id=\"k-sources\" "
	    "name=\"sources\" data-type=\"list\" autocomplete=\"off\" "
	    "value=\"");
	s = df_value(v, n, "sources");
	dr_escape(b, s != NULL ? s : "");
	dbuf_appendf(b, "\"><small>client keys only, optional: the sources "
	    "it may read, separated by commas</small>");
	df_error(b, error, field != NULL && !strcmp(field, "sources") ?
	    "sources" : DF_NOT_HERE);
	dbuf_appendf(b, "</div><div class=\"buttons\"><button class=\""
	    "primary\">Create key</button></div></fieldset></form>");
}

/*
 * The box of a new key, shown once: key NULL renders it empty and
 * hidden, for manage.js to fill.
 */
void
df_key_created(struct dbuf *b, const char *name, const char *key)
{
	dbuf_appendf(b, "<section id=\"key-created\" class=\"created\" "
	    "aria-live=\"polite\"%s><h3>New key <span id=\"key-name\">",
	    key == NULL ? " hidden" : "");
	dr_escape(b, name != NULL ? name : "");
	dbuf_appendf(b, "</span></h3><p>Store this key now: it is not shown "
	    "again.</p><p class=\"key-line\"><code id=\"new-key\">");
	dr_escape(b, key != NULL ? key : "");
	dbuf_appendf(b, "</code> <button type=\"button\" class=\"copy\" "
	    "data-copy=\"new-key\" hidden>Copy</button></p></section>");
}

/* The DF_* bits of the secrets and PEMs sent (not blank) among v. */
int
df_typed(const struct df_pair *v, size_t n)
{
	const char	*s;
	int		bits;
	size_t		i;

	bits = 0;
	for (i = 0; df_fields[i].name != NULL; i++) {
		if (df_fields[i].type != DF_SECRET &&
		    df_fields[i].type != DF_PEM &&
		    df_fields[i].type != DF_PEM_SECRET)
			continue;
		s = df_value(v, n, df_fields[i].name);
		if (s != NULL && *s != '\0')
			bits |= df_secret_bit(df_fields[i].name);
	}

	return (bits);
}

/* v (a yajl_val) into g, the way it was parsed. */
void
df_gen_value(void *g, void *val)
{
	yajl_val	v = val;
	size_t		i;

	if (YAJL_IS_STRING(v)) {
		yajl_gen_string(g, (const unsigned char *)v->u.string,
		    strlen(v->u.string));
	} else if (YAJL_IS_NUMBER(v)) {
		yajl_gen_number(g, v->u.number.r, strlen(v->u.number.r));
	} else if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v)) {
		yajl_gen_bool(g, YAJL_IS_TRUE(v));
	} else if (YAJL_IS_OBJECT(v)) {
		yajl_gen_map_open(g);
		for (i = 0; i < v->u.object.len; i++) {
			yajl_gen_string(g,
			    (const unsigned char *)v->u.object.keys[i],
			    strlen(v->u.object.keys[i]));
			df_gen_value(g, v->u.object.values[i]);
		}
		yajl_gen_map_close(g);
	} else if (YAJL_IS_ARRAY(v)) {
		yajl_gen_array_open(g);
		for (i = 0; i < v->u.array.len; i++)
			df_gen_value(g, v->u.array.values[i]);
		yajl_gen_array_close(g);
	} else {
		yajl_gen_null(g);
	}
}

static const struct df_field *
df_field(const char *name)
{
	size_t		i;

	for (i = 0; df_fields[i].name != NULL; i++) {
		if (!strcmp(df_fields[i].name, name))
			return (&df_fields[i]);
	}

	return (NULL);
}

static const char *const *
df_kind(const char *kind)
{
	size_t		i;

	for (i = 0; kind != NULL && i < DF_KINDS; i++) {
		if (!strcmp(df_kind_fields[i][0], kind))
			return (df_kind_fields[i]);
	}

	return (NULL);
}

/* Whether the form of f (kind fields names) shows field. */
static int
df_form_has(const struct df_form *f, const char *const *names,
    const char *field)
{
	size_t		i;

	if (field == NULL)
		return (0);
	if (!strcmp(field, "name"))
		return (f->source == NULL);
	for (i = 1; names[i] != NULL; i++) {
		if (!strcmp(names[i], field))
			return (1);
	}
	for (i = 0; df_common[i] != NULL; i++) {
		if (!strcmp(df_common[i], field))
			return (1);
	}

	return (0);
}

static int
df_secret_bit(const char *name)
{
	if (!strcmp(name, "client_secret"))
		return (DF_CLIENT_SECRET);
	if (!strcmp(name, "refresh_token"))
		return (DF_REFRESH_TOKEN);
	if (!strcmp(name, "password"))
		return (DF_PASSWORD);
	if (!strcmp(name, "tls_client_key"))
		return (DF_TLS_KEY);
	if (!strcmp(name, "tls_client_cert"))
		return (DF_TLS_CERT);
	if (!strcmp(name, "tls_ca"))
		return (DF_TLS_CA);
	if (!strcmp(name, "private_key"))
		return (DF_PRIVATE_KEY);

	return (0);
}

/* Whether pair i is the last of its name. */
static int
df_last(const struct df_pair *v, size_t n, size_t i)
{
	size_t		j;

	for (j = i + 1; j < n; j++) {
		if (!strcmp(v[j].name, v[i].name))
			return (0);
	}

	return (1);
}

static int
df_integer(const char *s, long long *out)
{
	char		*end;
	size_t		i;

	for (i = (s[0] == '-'); s[i] != '\0'; i++) {
		if (s[i] < '0' || s[i] > '9' || i > 18)
			return (0);
	}
	if (i == (size_t)(s[0] == '-'))
		return (0);
	*out = strtoll(s, &end, 10);

	return (*end == '\0');
}

static void
df_gen_str(void *g, const char *key, const char *value)
{
	yajl_gen_string(g, (const unsigned char *)key, strlen(key));
	yajl_gen_string(g, (const unsigned char *)value, strlen(value));
}

/*
 * A DF_JSON field: a JSON object goes on as it is, anything else as
 * text, for the source's own checks to name the field.
 */
static void
df_gen_json(void *g, const char *key, const char *text)
{
	yajl_val	v;

	if ((v = yajl_tree_parse(text, NULL, 0)) == NULL ||
	    !YAJL_IS_OBJECT(v)) {
		if (v != NULL)
			yajl_tree_free(v);
		df_gen_str(g, key, text);
		return;
	}
	yajl_gen_string(g, (const unsigned char *)key, strlen(key));
	df_gen_value(g, v);
	yajl_tree_free(v);
}

/* One field of a source form; a secret never with its value. */
static void
df_input(struct dbuf *b, const struct df_field *fd, const struct df_form *f)
{
	static const char	*auths[] = { "client_secret_post",
				    "client_secret_basic", "tls_client_auth",
				    "self_signed_tls_client_auth",
				    "private_key_jwt", NULL };
	static const char	*algs[] = { "", "ES256", "RS256", "PS256",
				    NULL };
	static const char	*access[] = { "open", "key", NULL };
	const char		*v, *err, *hold, *dflt;
	int			bit;

	v = df_value(f->values, f->nvalues, fd->name);
	err = f->field != NULL && !strcmp(f->field, fd->name) ?
	    fd->name : DF_NOT_HERE;

	if (fd->type == DF_BOOL) {
		if (v == NULL && f->source == NULL)
			v = !strcmp(fd->name, "enabled") ? "true" : "false";
		dbuf_appendf(b, "<div class=\"field check\" data-field=\"%s\">"
		    "<input type=\"hidden\" name=\"%s\" value=\"false\">"
		    "<input type=\"checkbox\" id=\"f-%s\" name=\"%s\" "
		    "value=\"true\" data-type=\"bool\"%s><label for=\"f-%s\">"
		    "%s</label>", fd->name, fd->name, fd->name, fd->name,
		    v != NULL && !strcmp(v, "true") ? " checked" : "",
		    fd->name, fd->label);
		df_error(b, f->error, err);
		dbuf_appendf(b, "</div>");
		return;
	}

	dbuf_appendf(b, "<div class=\"field\" data-field=\"%s\"><label "
	    "for=\"f-%s\">%s</label>", fd->name, fd->name, fd->label);
	switch (fd->type) {
	case DF_AUTH:
		df_select(b, fd->name, v != NULL ? v : auths[0], auths);
		break;
	case DF_ACCESS:
		/* a person's token: "key" unless said (source.c) */
		dflt = f->kind != NULL && (!strcmp(f->kind,
		    "authorization_code") || !strcmp(f->kind, "device_code")) ?
		    access[1] : access[0];
		df_select(b, fd->name, v != NULL ? v : dflt, access);
		break;
	case DF_ALG:
	case DF_GEN:
		df_select(b, fd->name, v != NULL ? v : "", algs);
		if (fd->type == DF_ALG)
			break;
		v = df_value(f->values, f->nvalues, "key_generate");
		if (v != NULL) {
			dbuf_appendf(b, "<small class=\"stored\">generated: ");
			dr_escape(b, v);
			dbuf_appendf(b, "</small>");
		}
		break;
	case DF_SECRET:
		bit = df_secret_bit(fd->name);
		dbuf_appendf(b, "<input type=\"password\" id=\"f-%s\" "
		    "name=\"%s\" data-type=\"secret\" autocomplete=\"off\" "
		    "spellcheck=\"false\"%s>", fd->name, fd->name,
		    (f->set & bit) ? " placeholder=\"a value is set — leave "
		    "blank to keep it\"" : (f->typed & bit) ? " placeholder=\""
		    "type it again: it was not kept\"" : "");
		break;
	case DF_JSON:
		dbuf_appendf(b, "<textarea id=\"f-%s\" name=\"%s\" "
		    "rows=\"3\" data-type=\"json\" autocomplete=\"off\" "
		    "spellcheck=\"false\">", fd->name, fd->name);
		dr_escape(b, v != NULL ? v : "");
		dbuf_appendf(b, "</textarea>");
		break;
	case DF_PEM:
	case DF_PEM_SECRET:
		/* a stored PEM is never shown: the key is secret, the
		 * certificate is not returned by the API either */
		bit = df_secret_bit(fd->name);
		if (f->set & bit)
			hold = "a value is set — leave blank to keep it";
		else if ((f->typed & bit) && fd->type == DF_PEM_SECRET)
			hold = "type it again: it was not kept";
		else
			hold = "-----BEGIN ...";
		dbuf_appendf(b, "<textarea id=\"f-%s\" name=\"%s\" "
		    "rows=\"4\" data-type=\"%s\" autocomplete=\"off\" "
		    "spellcheck=\"false\" placeholder=\"%s\">", fd->name,
		    fd->name, fd->type == DF_PEM ? "pem" : "secret", hold);
		if (fd->type == DF_PEM && v != NULL)
			dr_escape(b, v);
		dbuf_appendf(b, "</textarea>");
		if (!strcmp(fd->name, "private_key") &&
		    (v = df_value(f->values, f->nvalues,
		    "signing_key_id")) != NULL) {
			dbuf_appendf(b, "<small class=\"kid\">signing key id: "
			    "<code>");
			dr_escape(b, v);
			dbuf_appendf(b, "</code></small>");
		}
		if (!strcmp(fd->name, "tls_client_cert") &&
		    (v = df_value(f->values, f->nvalues,
		    "tls_client_cert_subject")) != NULL) {
			dbuf_appendf(b, "<small class=\"cert\">stored: ");
			dr_escape(b, v);
			dbuf_appendf(b, "</small>");
		}
		break;
	default:
		dbuf_appendf(b, "<input type=\"%s\" id=\"f-%s\" name=\"%s\" "
		    "data-type=\"%s\" autocomplete=\"off\" spellcheck=\"false\" "
		    "value=\"", fd->type == DF_URL ? "url" : "text", fd->name,
		    fd->name, fd->type == DF_INT ? "int" :
		    fd->type == DF_KEEP ? "keep" : "text");
		dr_escape(b, v != NULL ? v : "");
		dbuf_appendf(b, "\"%s>", fd->type == DF_INT ?
		    " inputmode=\"numeric\"" : "");
		break;
	}
	if (fd->hint != NULL)
		dbuf_appendf(b, "<small>%s</small>", fd->hint);
	df_error(b, f->error, err);
	dbuf_appendf(b, "</div>");
}

static void
df_select(struct dbuf *b, const char *name, const char *value,
    const char *const *options)
{
	size_t		i;

	dbuf_appendf(b, "<select id=\"%c-%s\" name=\"%s\" data-type=\"%s\">",
	    !strcmp(name, "role") ? 'k' : 'f', name, name,
	    !strcmp(name, "private_key_generate") ? "generate" : "text");
	for (i = 0; options[i] != NULL; i++) {
		if (options[i][0] == '\0') {
			dbuf_appendf(b, "<option value=\"\"%s>—</option>",
			    value[0] == '\0' ? " selected" : "");
			continue;
		}
		dbuf_appendf(b, "<option%s>%s</option>",
		    !strcmp(options[i], value) ? " selected" : "",
		    options[i]);
	}
	dbuf_appendf(b, "</select>");
}

/*
 * An error: next to its field (field set), or atop the form (field
 * NULL). Nothing for DF_NOT_HERE (the error is another field's).
 */
static void
df_error(struct dbuf *b, const char *error, const char *field)
{
	if (error == NULL || field == DF_NOT_HERE)
		return;
	if (field != NULL)
		dbuf_appendf(b, "<p class=\"field-error\" id=\"err-%s\" "
		    "role=\"alert\">", field);
	else
		dbuf_appendf(b, "<p class=\"alert form-error\" role=\"alert\">");
	dr_escape(b, error);
	dbuf_appendf(b, "</p>");
}

static void
df_hidden(struct dbuf *b, const char *name, const char *value)
{
	if (value == NULL)
		return;
	dbuf_appendf(b, "<input type=\"hidden\" name=\"%s\" value=\"", name);
	dr_escape(b, value);
	dbuf_appendf(b, "\">");
}

static void
df_time(struct dbuf *b, int64_t ms)
{
	char		ts[ISOTIME_LEN];

	if (ms == DR_NULL)
		return;
	isotime_format(ms, ts, sizeof(ts));
	dbuf_appendf(b, "<time>%.16s</time>", ts);
}
