/*
 * test_promtool.c - the observability that ships with cutover, checked by
 * Prometheus's own tool on a live scrape: serve's /metrics (with traffic,
 * the triggers on, in shadow so that both stores are counted) passes
 * `promtool check metrics`; packaging/prometheus/cutover-alerts.yml passes
 * `promtool check rules`; and every metric the alert rules and the Grafana
 * dashboard (packaging/grafana/cutover-dashboard.json) name is one the
 * scrape exposes, so neither drifts from the code.  Skipped, saying so,
 * where promtool is absent (scripts/setup installs it: the `prometheus`
 * package).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/config.h"
#include "harness/harness.h"
#include "harness/http.h"
#include "harness/serve_fixture.h"

#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ALERTS CUTOVER_SOURCE_DIR "/packaging/prometheus/cutover-alerts.yml"
#define DASHBOARD CUTOVER_SOURCE_DIR "/packaging/grafana/cutover-dashboard.json"

static co_test_etcd etcd;
static char *scrape; /* /metrics after some traffic */

static int have_promtool(void)
{
	return co_test_sh(NULL, NULL, "command -v promtool") == 0;
}

static int group_setup(void **state)
{
	co_test_serve f = {0};
	co_test_serve_opts o = {0};
	co_trigger_cfg trig = CO_TRIGGER_CFG_INIT;
	co_test_resp r = {0};
	char body[128], path[64];
	int i;

	(void)state;
	signal(SIGPIPE, SIG_IGN);
	if (!have_promtool())
		return 0;
	if (co_test_etcd_start(&etcd) < 0)
		return -1;
	o.endpoint = etcd.endpoint;
	o.prefix = "/promtool/";
	o.stage = "shadow";
	o.triggers = &trig;
	if (co_test_serve_open(&f, &o) < 0)
		return -1;
	for (i = 0; i < 5; i++) {
		snprintf(body, sizeof(body), "{\"id\":\"P%d\",\"type\":\"build\"}", i);
		co_test_http(&r, f.base, "POST", "/v1/tasks", body, strlen(body), NULL);
		free(r.body);
		snprintf(path, sizeof(path), "/v1/tasks/P%d", i);
		co_test_http(&r, f.base, "GET", path, NULL, 0, NULL);
		free(r.body);
	}
	co_test_http(&r, f.base, "GET", "/metrics", NULL, 0, NULL);
	scrape = r.body;
	co_test_serve_close(&f);
	return r.status == 200 && scrape ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	free(scrape);
	if (etcd.pid > 0)
		co_test_etcd_stop(&etcd);
	return 0;
}

static void skip_without_promtool(void)
{
	if (!have_promtool()) {
		print_message("skipped: promtool is not installed (Debian package "
			      "prometheus; scripts/setup installs it)\n");
		skip();
	}
}

static void metrics_pass_promtools_lint(void **state)
{
	char file[300], dir[256], *out = NULL, *err = NULL;
	FILE *fp;

	(void)state;
	skip_without_promtool();
	assert_int_equal(co_test_tmpdir(dir, sizeof(dir)), 0);
	snprintf(file, sizeof(file), "%s/metrics.txt", dir);
	assert_non_null(fp = fopen(file, "w"));
	fputs(scrape, fp);
	fclose(fp);
	if (co_test_sh(&out, &err, "promtool check metrics < '%s'", file) != 0)
		fail_msg("promtool check metrics:\n%s%s", out ? out : "", err ? err : "");
	free(out);
	free(err);
	co_test_sh(NULL, NULL, "rm -rf '%s'", dir);
}

static void alert_rules_pass_promtool(void **state)
{
	char *out = NULL, *err = NULL;

	(void)state;
	skip_without_promtool();
	if (co_test_sh(&out, &err, "promtool check rules '%s'", ALERTS) != 0)
		fail_msg("promtool check rules:\n%s%s", out ? out : "", err ? err : "");
	free(out);
	free(err);
}

/* Every cutover_* name in `file` is a metric of the scrape. */
static void names_are_scraped(const char *file)
{
	char *text = NULL, name[128];
	const char *p;
	regex_t re;
	regmatch_t m;
	int n = 0;

	assert_int_equal(co_test_sh(&text, NULL, "cat '%s'", file), 0);
	assert_int_equal(regcomp(&re, "cutover_[a-z_]+", REG_EXTENDED), 0);
	for (p = text; regexec(&re, p, 1, &m, 0) == 0; p += m.rm_eo) {
		size_t len = (size_t)(m.rm_eo - m.rm_so);
		char want[160];

		if (len >= sizeof(name))
			len = sizeof(name) - 1;
		memcpy(name, p + m.rm_so, len);
		name[len] = '\0';
		/* A histogram's series carry _bucket, _sum, _count. */
		snprintf(want, sizeof(want), "\n%s", name);
		if (strstr(scrape, want) == NULL)
			fail_msg("%s names %s, which /metrics does not expose", file, name);
		n++;
	}
	regfree(&re);
	free(text);
	print_message("%s: %d metric names, all in the scrape\n", file, n);
	assert_true(n > 5);
}

static void rules_and_dashboard_name_scraped_metrics(void **state)
{
	(void)state;
	skip_without_promtool();
	names_are_scraped(ALERTS);
	names_are_scraped(DASHBOARD);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(metrics_pass_promtools_lint),
	    cmocka_unit_test(alert_rules_pass_promtool),
	    cmocka_unit_test(rules_and_dashboard_name_scraped_metrics),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
