/*
 * fuzz_flags.c - the flags YAML (co_flags_parse on text, co_flags_load on
 * a file).
 *
 * Invariants: loading the file and parsing the same text agree; flags that
 * parse format to YAML that parses back to equal flags (co_flags_save
 * writes what co_flags_format gives, so a file cutover wrote is one it
 * reads); and every operation then routes somewhere sensible.
 */
#include "fuzz_tmpfile.h"

#include "core/error.h"
#include "flags/flags.h"

#include <stdint.h>

static char path[128];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_tmpfile_make(path, sizeof(path), ".yaml");
	return 0;
}

static void check_routes(const co_flags *f)
{
	static const char *const ids[] = {"P0.1.1", "swarm-sip", "a", NULL};
	int op;
	size_t i;

	for (op = 0; op < CO_OP__COUNT; op++) {
		for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
			co_route rt;

			if (co_flags_route(&rt, f, (co_op)op, ids[i]) < 0)
				fuzz_fail("route of op %d failed", op);
			if (rt.primary != CO_SIDE_GIT && rt.primary != CO_SIDE_ETCD)
				fuzz_fail("op %d has no primary", op);
			if (rt.secondary == rt.primary)
				fuzz_fail("op %d mirrors to its primary", op);
			if (rt.etcd_percent < 0 || rt.etcd_percent > 100)
				fuzz_fail("op %d: percent %d", op, rt.etcd_percent);
			if (f->kill_switch && rt.primary != CO_SIDE_GIT)
				fuzz_fail("kill switch on, op %d primary etcd", op);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	co_flags parsed, loaded, again;
	char *text = NULL;
	int rp, rl;

	rp = co_flags_parse(&parsed, (const char *)data, size, path);
	co_error_clear();
	fuzz_tmpfile_write(path, data, size);
	rl = co_flags_load(&loaded, path);
	co_error_clear();
	if (rp != rl && size <= CO_FLAGS_FILE_MAX)
		fuzz_fail("parse says %d, load says %d", rp, rl);
	if (rp < 0)
		return 0;
	if (!co_flags_equal(&parsed, &loaded))
		fuzz_fail("load and parse give different flags");
	if (co_flags_format(&text, &parsed) < 0)
		fuzz_fail("flags that parsed do not format: %s", co_error_last());
	if (co_flags_parse(&again, text, strlen(text), "formatted") < 0)
		fuzz_fail("formatted flags do not parse (%s):\n%s", co_error_last(), text);
	if (!co_flags_equal(&parsed, &again) ||
	    strcmp(parsed.kill_reason, again.kill_reason) != 0)
		fuzz_fail("formatted flags parse to other flags:\n%s", text);
	free(text);
	check_routes(&parsed);
	return 0;
}
