/*
 * test_report_fleet.c - the "owed per router" section of a reconciliation
 * report in fleet mode (reconcile/report_fleet.h), pure formatting: every
 * format lists each live router's outbox from its membership record, says
 * so when the membership could not be read, and escapes what it prints.
 */
/* clang-format off: cmocka needs these first, in this order */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "core/runs.h"
#include "reconcile/report_fleet.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static co_fleet_member members[2];

static int setup(void **state)
{
	(void)state;
	memset(members, 0, sizeof members);
	snprintf(members[0].id, sizeof members[0].id, "r1");
	snprintf(members[0].host, sizeof members[0].host, "host-<a>");
	snprintf(members[0].state_dir, sizeof members[0].state_dir, "/srv/r1/state");
	members[0].outbox_depth = 3;
	members[0].outbox_age_ms = 4100;
	snprintf(members[1].id, sizeof members[1].id, "r2");
	snprintf(members[1].host, sizeof members[1].host, "h2");
	return 0;
}

/* Not inlined: GCC -O3 then warns of a dangling memstream buffer. */
__attribute__((noinline)) static char *render(co_report_format fmt,
					      const co_fleet_member *m, size_t n)
{
	co_run run;
	co_divergence_list divs = {0};
	co_run_list hist = {0};
	char *buf = NULL, verdict[] = "pass", action[] = "none";
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	memset(&run, 0, sizeof run);
	run.id = 7;
	run.started_at = 1795860000000LL;
	run.total = run.equal = 10;
	run.consistency = 1.0;
	run.verdict = verdict;
	run.action = action;
	assert_non_null(f);
	assert_int_equal(
	    co_report_write_fleet(f, fmt, &run, &divs, &hist, 0.999, NULL, NULL, m, n),
	    0);
	assert_int_equal(fclose(f), 0);
	return buf;
}

static void json_lists_every_router_and_null_when_unknown(void **state)
{
	char *s = render(CO_REPORT_JSON, members, 2);
	cJSON *o = cJSON_Parse(s), *rs, *r;

	(void)state;
	assert_non_null(o);
	assert_int_equal(cJSON_GetObjectItemCaseSensitive(o, "run")->valueint, 7);
	rs = cJSON_GetObjectItemCaseSensitive(o, "owed_by_router");
	assert_int_equal(cJSON_GetArraySize(rs), 2);
	r = cJSON_GetArrayItem(rs, 0);
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(r, "router")->valuestring,
			    "r1");
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(r, "state_dir")->valuestring,
			    "/srv/r1/state");
	assert_int_equal(cJSON_GetObjectItemCaseSensitive(r, "outbox_depth")->valueint,
			 3);
	assert_int_equal(cJSON_GetObjectItemCaseSensitive(r, "outbox_age_ms")->valueint,
			 4100);
	cJSON_Delete(o);
	free(s);

	s = render(CO_REPORT_JSON, NULL, 0);
	assert_non_null(o = cJSON_Parse(s));
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "owed_by_router")));
	cJSON_Delete(o);
	free(s);
}

static void text_markdown_and_html_have_the_section(void **state)
{
	char *s;

	(void)state;
	s = render(CO_REPORT_TEXT, members, 2);
	assert_non_null(strstr(s, "owed per router: 3 in 2 live routers"));
	assert_non_null(strstr(s, "  r1 (host-<a>): 3 owed, oldest 4.1 s"));
	free(s);
	s = render(CO_REPORT_MARKDOWN, members, 2);
	assert_non_null(strstr(s, "## Owed per router (3 in 2 live routers)"));
	assert_non_null(strstr(s, "| r2 | h2 | 0 | 0.0 |"));
	free(s);
	s = render(CO_REPORT_HTML, members, 2);
	/* inside the page, escaped */
	assert_non_null(strstr(s, "<h2>Owed per router (3 in 2 live routers)</h2>"));
	assert_true(strstr(s, "<h2>Owed per router") < strstr(s, "</body>"));
	assert_non_null(strstr(s, "<td>host-&lt;a&gt;</td>"));
	assert_null(strstr(s, "host-<a>"));
	free(s);
	s = render(CO_REPORT_MARKDOWN, NULL, 0);
	assert_non_null(strstr(s, "membership could not be read"));
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(json_lists_every_router_and_null_when_unknown, setup),
	    cmocka_unit_test_setup(text_markdown_and_html_have_the_section, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
