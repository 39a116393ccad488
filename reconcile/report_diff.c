/*
 * report_diff.c - a divergence as the fields that differ, git → etcd
 * (issue 22, point 4), in JSON, text and HTML.
 *
 * An operator reading a report wants to see at once that `status` went
 * from "available" to "claimed", not to hunt for it in two whole records
 * side by side.  So each divergence is diffed path by path
 * (co_redact_diff: nested objects, added and removed keys, arrays by
 * index), and only the paths that differ are shown, plus every redacted
 * field with its verdict ("[redacted, differs]" / "[redacted, equal]").
 *
 * Values are redacted again here before anything is rendered: a row
 * recorded before redaction existed, or under a narrower list, is hidden
 * by today's policy.  The HTML is plain markup with classes that the
 * page's inline style sheet colours (no script, no external asset).
 */
#include "report_diff.h"

#include "core/error.h"

#include <stdlib.h>
#include <string.h>

/* A stored value that is not a JSON object counts as absent. */
static const char *object_or_null(const char *json)
{
	cJSON *v = json ? cJSON_Parse(json) : NULL;
	int ok = cJSON_IsObject(v);

	cJSON_Delete(v);
	return ok ? json : NULL;
}

int co_report__diff(co_field_diff_list *out, const co_redact *rd, const co_divergence *d)
{
	return co_redact_diff(out, rd, object_or_null(d->git_value),
			      object_or_null(d->etcd_value));
}

int co_report__values(char **git, char **etcd, const co_redact *rd,
		      const co_divergence *d)
{
	return co_redact_pair(git, etcd, rd, d->git_value, d->etcd_value);
}

static const char *change_name(co_field_change c)
{
	switch (c) {
	case CO_FIELD_ADDED:
		return "added";
	case CO_FIELD_REMOVED:
		return "removed";
	case CO_FIELD_REDACTED:
		return "redacted";
	case CO_FIELD_CHANGED:
	default:
		return "changed";
	}
}

static int add_value(cJSON *o, const char *name, const char *json)
{
	cJSON *v;

	if (json == NULL)
		return 1;
	if ((v = cJSON_Parse(json)) == NULL)
		v = cJSON_CreateString(json);
	if (v == NULL)
		return 0;
	if (!cJSON_AddItemToObject(o, name, v)) {
		cJSON_Delete(v);
		return 0;
	}
	return 1;
}

cJSON *co_report__diff_json(const co_field_diff_list *l)
{
	cJSON *a = cJSON_CreateArray();
	size_t i;

	for (i = 0; a && i < l->n; i++) {
		const co_field_diff *d = l->items[i];
		cJSON *e = cJSON_CreateObject();

		if (e == NULL || !cJSON_AddItemToArray(a, e)) {
			cJSON_Delete(e);
			goto fail;
		}
		if (!cJSON_AddStringToObject(e, "path", d->path) ||
		    !cJSON_AddStringToObject(e, "change", change_name(d->change)) ||
		    (d->redacted &&
		     !cJSON_AddStringToObject(e, "redacted", d->redacted)) ||
		    !add_value(e, "git", d->git) || !add_value(e, "etcd", d->etcd))
			goto fail;
	}
	return a;
fail:
	cJSON_Delete(a);
	return NULL;
}

/* What a redacted field says, whatever its sides hold. */
static const char *redacted_text(const co_field_diff *d)
{
	if (d->redacted && strcmp(d->redacted, "equal") == 0)
		return CO_REDACT_MARK_EQUAL;
	if (d->redacted && strcmp(d->redacted, "differs") == 0)
		return CO_REDACT_MARK_DIFFERS;
	return CO_REDACT_MARK;
}

void co_report__diff_text(FILE *f, const co_field_diff *d)
{
	if (d->change == CO_FIELD_REDACTED) {
		fprintf(f, "%s: %s", d->path, redacted_text(d));
		if (d->git == NULL || d->etcd == NULL)
			fputs(d->git ? " (only in git)" : " (only in etcd)", f);
		return;
	}
	fprintf(f, "%s: %s \u2192 %s", d->path, d->git ? d->git : "(absent)",
		d->etcd ? d->etcd : "(absent)");
}

int co_report__diff_lines(FILE *f, const co_redact *rd, const co_divergence *d,
			  const char *prefix, const char *sep)
{
	co_field_diff_list l = {0};
	char *g = NULL, *e = NULL;
	size_t i;
	int error;

	if (strcmp(d->cls, "mismatch") != 0) {
		/* Every field would be "removed": the one record says it better. */
		if ((error = co_report__values(&g, &e, rd, d)) == 0)
			fprintf(f, "%sonly in %s: %s", prefix, g ? "git" : "etcd",
				g   ? g
				: e ? e
				    : "-");
		free(g);
		free(e);
		return error < 0 ? error : 1;
	}
	if ((error = co_report__diff(&l, rd, d)) < 0)
		return error;
	for (i = 0; i < l.n; i++) {
		fprintf(f, "%s%s", i ? sep : "", prefix);
		co_report__diff_text(f, l.items[i]);
	}
	co_field_diff_list_clear(&l);
	return (int)i;
}

void co_report__html(FILE *f, const char *s)
{
	for (s = s ? s : ""; *s; s++) {
		switch (*s) {
		case '&':
			fputs("&amp;", f);
			break;
		case '<':
			fputs("&lt;", f);
			break;
		case '>':
			fputs("&gt;", f);
			break;
		case '"':
			fputs("&quot;", f);
			break;
		case '\'':
			fputs("&#39;", f);
			break;
		default:
			fputc(*s, f);
		}
	}
}

/* One side of a changed path: git's struck through, etcd's marked new. */
static void html_side(FILE *f, const char *json, const char *tag)
{
	if (json == NULL) {
		fputs("<td><em>absent</em></td>", f);
		return;
	}
	fprintf(f, "<td><%s><code>", tag);
	co_report__html(f, json);
	fprintf(f, "</code></%s></td>", tag);
}

void co_report__diff_html(FILE *f, const co_field_diff_list *l)
{
	size_t i;

	if (l->n == 0) {
		fputs("<em>no field differs</em>", f);
		return;
	}
	fputs("<table class=\"diff\">\n<tr><th>path</th><th>git</th><th></th>"
	      "<th>etcd</th></tr>\n",
	      f);
	for (i = 0; i < l->n; i++) {
		const co_field_diff *d = l->items[i];

		fprintf(f, "<tr class=\"%s\"><td class=\"path\"><code>",
			change_name(d->change));
		co_report__html(f, d->path);
		fputs("</code></td>", f);
		if (d->change == CO_FIELD_REDACTED) {
			/* The verdict, not the two markers: they say the same. */
			fprintf(f, "<td colspan=\"3\"><span class=\"redacted %s\">",
				d->redacted ? d->redacted : "unknown");
			co_report__html(f, redacted_text(d));
			fputs("</span>", f);
			if (d->git == NULL || d->etcd == NULL)
				fputs(d->git ? " only in git" : " only in etcd", f);
			fputs("</td></tr>\n", f);
			continue;
		}
		html_side(f, d->git, "del");
		fputs("<td class=\"arrow\">\u2192</td>", f);
		html_side(f, d->etcd, "ins");
		fputs("</tr>\n", f);
	}
	fputs("</table>", f);
}
