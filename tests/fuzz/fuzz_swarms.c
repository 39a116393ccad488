/*
 * fuzz_swarms.c - legacy swarm registrations (co_migrate_read_swarms):
 * JSON and YAML files written by hand and by scripts.
 *
 * The reader takes a directory, so each input becomes one file in a
 * scratch directory: the first byte picks its extension (.json, .yaml or
 * .yml), the rest is its content.  The file must come out either as one
 * valid swarm record (whose canonical form parses back to it) or as one
 * "FILE: reason" line, never both, never neither.
 */
#include "fuzz_tmpfile.h"

#include "core/error.h"
#include "core/id.h"
#include "core/record.h"
#include "migrate/migrate.h"

#include <stdint.h>

static char dir[128];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

	(void)argc;
	(void)argv;
	snprintf(dir, sizeof(dir), "%s/cutover-fuzz-swarms-XXXXXX", base);
	if (mkdtemp(dir) == NULL)
		fuzz_fail("mkdtemp %s", dir);
	return 0;
}

static void check_swarm(const co_record *r)
{
	co_record *back = NULL;
	char *json;

	if (r->kind != CO_KIND_SWARM || r->rev != 1 || co_id_validate(r->id) < 0)
		fuzz_fail("swarm \"%s\" is not a valid new swarm", r->id);
	if ((json = co_record_to_json(r, 0)) == NULL)
		fuzz_fail("swarm %s does not print", r->id);
	if (co_record_from_json(&back, json, strlen(json)) < 0)
		fuzz_fail("swarm %s does not parse back (%s): %s", r->id, co_error_last(),
			  json);
	if (!co_record_equal(r, back))
		fuzz_fail("swarm %s changes in a round trip", r->id);
	co_record_free(back);
	free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const ext[] = {".json", ".yaml", ".yml"};
	co_record_list out = {0};
	co_strv bad = {0};
	char path[256];
	size_t i;

	if (size < 1)
		return 0;
	snprintf(path, sizeof(path), "%s/swarm%s", dir, ext[data[0] % 3]);
	{
		FILE *f = fopen(path, "wb");

		if (f == NULL)
			fuzz_fail("create %s", path);
		if (size > 1 && fwrite(data + 1, 1, size - 1, f) != size - 1)
			fuzz_fail("write %s", path);
		fclose(f);
	}
	if (co_migrate_read_swarms(&out, &bad, dir) < 0)
		fuzz_fail("read_swarms failed: %s", co_error_last());
	if (out.n + bad.n != 1)
		fuzz_fail("one file gave %zu swarms and %zu bad lines", out.n, bad.n);
	for (i = 0; i < out.n; i++)
		check_swarm(out.items[i]);
	co_record_list_clear(&out);
	co_strv_clear(&bad);
	unlink(path);
	co_error_clear();
	return 0;
}
