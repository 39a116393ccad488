/*
 * cmd_swarm.c - `cutover swarm register|get|list|remove`.
 *
 * A swarm is a registration: an ID, capabilities and metadata.  Registering
 * again with the same content changes nothing; with different content it
 * updates the record (rev + 1).  As for tasks, every argument is checked
 * before a store is opened.
 */
#include "cmd_records.h"

#include "../core/error.h"

#include <stdio.h>
#include <string.h>

#define U_REGISTER "cutover swarm register ID [--cap A,B] [--meta JSON]"
#define U_GET "cutover swarm get ID"
#define U_LIST "cutover swarm list"
#define U_REMOVE "cutover swarm remove ID"

static const char h_register[] =
    "usage: " U_REGISTER "\n\n"
    "Register swarm ID with capabilities A,B and a metadata JSON object.  The same\n"
    "registration again changes nothing; a different one updates it (rev + 1).\n\n"
    "Example:\n"
    "  cutover swarm register swarm-sip --cap integration:sip --meta "
    "'{\"model\":\"sonnet\"}'\n";
static const char h_get[] = "usage: " U_GET "\n\nPrint one swarm.  Exit 4 if absent.\n\n"
			    "Example:\n  cutover --json swarm get swarm-sip\n";
static const char h_list[] =
    "usage: " U_LIST "\n\nList swarms sorted by ID (--json: an array).\n\n"
    "Example:\n  cutover --json --backend etcd swarm list\n";
static const char h_remove[] =
    "usage: " U_REMOVE "\n\nRemove a swarm's registration.  Exit 4 if absent.\n\n"
    "Example:\n  cutover swarm remove swarm-sip\n";

static int swarm_register(int argc, char **argv, co_cli *ctx)
{
	const char *caps = NULL, *meta = NULL, *id = NULL;
	co_cli_opt opts[] = {
	    {"cap", &caps, NULL}, {"meta", &meta, NULL}, {NULL, NULL, NULL}};
	co_record *swarm = NULL, *out = NULL;
	co_cli_data d = {0};
	size_t i;
	int error;

	if ((error = co_cli_one_id(&id, ctx, argc, argv, CO_KIND_SWARM, opts,
				   U_REGISTER, h_register)) != 0)
		return error < 0 ? error : 0;
	if ((error = co_record_new(&swarm, CO_KIND_SWARM, id)) < 0)
		goto done;
	if (caps) {
		if ((error = co_strv_split(&swarm->capabilities, caps)) < 0) {
			error = co_cli_error_prefix(error, "--cap");
			goto done;
		}
		for (i = 0; i < swarm->capabilities.n; i++) {
			/* Capabilities end up in JSON and on text lines; keep
			 * them printable. */
			const char *c = swarm->capabilities.v[i];

			for (; *c; c++) {
				if ((unsigned char)*c < 0x21 || *c == 0x7f) {
					error = co_error_set(CO_EINVAL,
							     "--cap \"%s\": contains a "
							     "space or control byte",
							     swarm->capabilities.v[i]);
					goto done;
				}
			}
		}
	}
	if (meta && (error = co_record_set_metadata(swarm, meta)) < 0) {
		error = co_cli_error_prefix(error, "--meta");
		goto done;
	}
	if ((error = co_cli_data_open(&d, ctx)) < 0 ||
	    (error = co_cli_data_swarm_register(&out, &d, swarm)) < 0 ||
	    (error = co_cli_print_record(ctx, out)) < 0)
		goto done;
done:
	co_record_free(out);
	co_record_free(swarm);
	co_cli_data_close(&d);
	return error;
}

static int swarm_get(int argc, char **argv, co_cli *ctx)
{
	return co_cli_record_get(argc, argv, ctx, CO_KIND_SWARM, U_GET, h_get);
}

static int swarm_list(int argc, char **argv, co_cli *ctx)
{
	co_cli_opt opts[] = {{NULL, NULL, NULL}};
	co_record_list l = {0};
	co_cli_data d = {0};
	const char *pos[1];
	size_t n;
	int error;

	if ((error = co_cli_parse(pos, 0, &n, ctx, argc, argv, opts, U_LIST, h_list)) !=
	    0)
		return error < 0 ? error : 0;
	if ((error = co_cli_data_open(&d, ctx)) < 0 ||
	    (error = co_cli_data_list(&l, &d, CO_KIND_SWARM)) < 0 ||
	    (error = co_cli_print_list(ctx, &l)) < 0)
		goto done;
done:
	co_record_list_clear(&l);
	co_cli_data_close(&d);
	return error;
}

static int swarm_remove(int argc, char **argv, co_cli *ctx)
{
	co_cli_opt opts[] = {{NULL, NULL, NULL}};
	co_cli_data d = {0};
	const char *id = NULL;
	int error;

	if ((error = co_cli_one_id(&id, ctx, argc, argv, CO_KIND_SWARM, opts,
				   U_REMOVE, h_remove)) != 0)
		return error < 0 ? error : 0;
	if ((error = co_cli_data_open(&d, ctx)) < 0 ||
	    (error = co_cli_data_remove(&d, CO_KIND_SWARM, id)) < 0)
		goto done;
	if (ctx->json)
		printf("{\"id\":\"%s\",\"kind\":\"swarm\",\"removed\":true}\n", id);
	else
		printf("%s  removed\n", id);
	if (fflush(stdout) != 0)
		error = co_error_set(CO_EIO, "writing to stdout failed");
done:
	co_cli_data_close(&d);
	return error;
}

static const co_cli_subcommand subs[] = {
    {"register", swarm_register, U_REGISTER},
    {"get", swarm_get, U_GET},
    {"list", swarm_list, U_LIST},
    {"remove", swarm_remove, U_REMOVE},
};

int co_cli_swarm(int argc, char **argv, co_cli *ctx)
{
	return co_cli_subcommand_dispatch(
	    argc, argv, ctx, "swarm", "cutover swarm register|get|list|remove ...", subs,
	    sizeof(subs) / sizeof(subs[0]),
	    "\nData commands go through the router (the flags decide which store is\n"
	    "primary for each ID); --backend git|etcd talks to one store directly.\n"
	    "Run `cutover swarm SUBCOMMAND --help` for details.\n\n"
	    "Examples:\n"
	    "  cutover swarm register swarm-a --cap build,test\n"
	    "  cutover --json --backend etcd swarm list\n"
	    "  cutover swarm remove swarm-a\n");
}
