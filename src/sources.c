/*
 * sources.c: the sources file (KILN_SOURCES_FILE), read and checked in
 * the parent at start, on SIGHUP and by kiln check, and upserted through
 * the store.
 */

#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_tree.h>

#include <kore/kore.h>
#include <kore/http.h>
#include <kore/pgsql.h>
#include <kore/curl.h>

#include "kiln.h"

#define SOURCES_FILE_MAX	(4 * 1024 * 1024)

static char	*sources_read(const char *, char *, size_t);

/*
 * KILN_SOURCES_FILE: {"sources":[...]}, upserted at every start (apply)
 * and on SIGHUP, or only checked (kiln check).
 */
int
sources_file_load(const char *path, int apply, char *err, size_t errlen)
{
	yajl_val	root, list;
	struct source	*src;
	const char	*key[] = { "sources", NULL };
	size_t		i, n, done;
	int		ret;
	char		*text, perr[128], why[KILN_ERR_MAX];

	if ((text = sources_read(path, err, errlen)) == NULL)
		return (KORE_RESULT_ERROR);
	root = yajl_tree_parse(text, perr, sizeof(perr));
	seal_wipe(text);
	if (root == NULL) {
		(void)snprintf(err, errlen, "KILN_SOURCES_FILE: %s: not "
		    "valid JSON", path);
		return (KORE_RESULT_ERROR);
	}

	if ((list = yajl_tree_get(root, key, yajl_t_array)) == NULL) {
		(void)snprintf(err, errlen, "KILN_SOURCES_FILE: %s: "
		    "expected {\"sources\":[...]}", path);
		yajl_tree_free(root);
		return (KORE_RESULT_ERROR);
	}

	ret = KORE_RESULT_OK;
	n = YAJL_GET_ARRAY(list)->len;
	src = kore_calloc(n ? n : 1, sizeof(*src));
	for (done = 0; done < n; done++) {
		if (!source_from_json(YAJL_GET_ARRAY(list)->values[done],
		    SOURCE_ALLOW_ENV, &src[done], why, sizeof(why))) {
			(void)snprintf(err, errlen, "KILN_SOURCES_FILE: "
			    "sources[%zu].%s", done, why);
			ret = KORE_RESULT_ERROR;
			break;
		}
	}
	yajl_tree_free(root);

	if (ret && apply)
		ret = store_upsert_sources(src, n, err, errlen);

	/* A source that failed half way is freed too. */
	for (i = 0; i < n && i <= done; i++)
		source_free(&src[i]);
	kore_free(src);

	return (ret);
}

static char *
sources_read(const char *path, char *err, size_t errlen)
{
	FILE		*fp;
	size_t		len;
	char		*text;

	if ((fp = fopen(path, "r")) == NULL) {
		(void)snprintf(err, errlen, "KILN_SOURCES_FILE: cannot open %s",
		    path);
		return (NULL);
	}

	if ((text = malloc(SOURCES_FILE_MAX + 1)) == NULL)
		fatal("malloc");
	len = fread(text, 1, SOURCES_FILE_MAX + 1, fp);
	(void)fclose(fp);

	if (len > SOURCES_FILE_MAX) {
		free(text);
		(void)snprintf(err, errlen, "KILN_SOURCES_FILE: %s: too large",
		    path);
		return (NULL);
	}
	text[len] = '\0';

	return (text);
}
