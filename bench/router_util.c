/*
 * router_util.c - bench_router's shared state (the etcd, the stores, the
 * flags watcher main sets up) and the small helpers every figure uses.
 */
#include "router_bench.h"

#include "core/error.h"
#include "core/record.h"
#include "flags/flags.h"
#include "flags/stage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

co_test_etcd etcd;
char repo[256], flags_dir[256];
char flags_path[320];
co_store *es, *gs;
co_flags_watcher *fw;


const char *loadavg(void)
{
	static char buf[64];
	FILE *f = fopen("/proc/loadavg", "r");
	double a = 0, b = 0, c = 0;

	if (f == NULL || fscanf(f, "%lf %lf %lf", &a, &b, &c) != 3)
		snprintf(buf, sizeof(buf), "unknown");
	else
		snprintf(buf, sizeof(buf), "%.2f %.2f %.2f", a, b, c);
	if (f)
		fclose(f);
	return buf;
}

/* N fresh tasks "<tag><i>" created in etcd directly (setup, untimed). */
int create_tasks(const char *tag, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		co_record *t = NULL, *out = NULL;
		char id[64];
		int error;

		snprintf(id, sizeof(id), "%s%06zu", tag, i);
		if ((error = co_record_new(&t, CO_KIND_TASK, id)) == 0) {
			t->type = strdup("build");
			error = co_store_task_create(&out, es, t);
		}
		co_record_free(t);
		co_record_free(out);
		if (error < 0) {
			fprintf(stderr, "bench: create %s: %s\n", id, co_error_last());
			return -1;
		}
	}
	return 0;
}

int save_flags(int kill)
{
	co_flags fl;

	co_flags_init(&fl);
	if (co_stage_apply(&fl, CO_STAGE_ETCD) < 0)
		return -1;
	co_flags_set_kill(&fl, kill, kill ? "bench flip" : NULL);
	return co_flags_save(&fl, flags_path);
}

void ratio_line(const char *what, co_bench_stats a, co_bench_stats b)
{
	printf("%-44s p50 %5.2fx   p95 %5.2fx   p99 %5.2fx\n", what, a.p50 / b.p50,
	       a.p95 / b.p95, a.p99 / b.p99);
}
