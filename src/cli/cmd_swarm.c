/*
 * cmd_swarm.c - `cutover swarm register|get|list|remove|token`.
 *
 * A swarm is a registration: an ID, capabilities and metadata.  Registering
 * again with the same content changes nothing; with different content it
 * updates the record (rev + 1).  As for tasks, every argument is checked
 * before a store is opened.
 *
 * `swarm token ID [--rotate]` issues the bearer token a swarm shows to
 * `cutover serve` when swarm auth is on (core/tokens.h): printed once, as
 * the last line of the output, and kept only as a salted hash in the state
 * database.  The CLI itself needs no token: whoever can read the state dir
 * and the store credentials is an operator already.  A token is never read
 * from the command line (argv is visible to every user in ps).  Removing a
 * swarm revokes its token, so that a later swarm of the same ID does not
 * inherit it.
 */
#include "cmd_records.h"

#include "../core/audit.h"
#include "../core/error.h"
#include "../core/state.h"
#include "../core/tokens.h"

#include <stdio.h>
#include <string.h>

#define U_REGISTER "cutover swarm register ID [--cap A,B] [--meta JSON]"
#define U_GET "cutover swarm get ID"
#define U_LIST "cutover swarm list"
#define U_REMOVE "cutover swarm remove ID"
#define U_TOKEN "cutover swarm token ID [--rotate]"

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

static const char h_token[] =
    "usage: " U_TOKEN "\n\n"
    "Issue the bearer token swarm ID shows to `cutover serve` when swarm auth is on\n"
    "(CUTOVER_SWARM_AUTH=token).  The token is printed once, as the last line (with\n"
    "--json: {\"swarm\",\"rotated\",\"token\"}); the state dir keeps only a salted\n"
    "hash, so it cannot be shown again.  The swarm must be registered.  A swarm that\n"
    "has a token gets a new one only with --rotate, which replaces it: the old token\n"
    "stops working at once, in every running serve.  Exit 1 for an unknown swarm or\n"
    "a token that exists without --rotate.\n\n"
    "Example:\n"
    "  cutover swarm token swarm-sip | tail -n 1 > /run/secrets/swarm-sip.token\n";

/* The state database: the router's, else (--backend) one opened into *own. */
static int data_state(co_state **out, co_state **own, co_cli_data *d, co_cli *ctx)
{
	const co_config *c;
	int error;

	if (d->rt) {
		*out = d->rt->state;
		return 0;
	}
	if ((error = co_cli_config(&c, ctx)) < 0 ||
	    (error = co_state_open(own, c->state_dir)) < 0)
		return error;
	*out = *own;
	return 0;
}

static int swarm_token(int argc, char **argv, co_cli *ctx)
{
	int rotate = 0;
	co_cli_opt opts[] = {{"rotate", NULL, &rotate}, {NULL, NULL, NULL}};
	co_state *st = NULL, *own = NULL;
	co_record *sw = NULL;
	co_cli_data d = {0};
	const char *id = NULL;
	char *token = NULL, detail[200];
	int error;

	if ((error = co_cli_one_id(&id, ctx, argc, argv, CO_KIND_SWARM, opts, U_TOKEN,
				   h_token)) != 0)
		return error < 0 ? error : 0;
	if ((error = co_cli_data_open(&d, ctx)) < 0)
		goto done;
	if ((error = co_cli_data_get(&sw, &d, CO_KIND_SWARM, id)) == CO_ENOTFOUND) {
		error = co_error_set(CO_EINVAL,
				     "swarm %s is not registered: register it first "
				     "(cutover swarm register %s)",
				     id, id);
		goto done;
	}
	if (error < 0 || (error = data_state(&st, &own, &d, ctx)) < 0)
		goto done;
	if ((error = co_tokens_issue(&token, st, id, rotate)) == CO_ECONFLICT) {
		error = co_error_set(CO_EINVAL,
				     "swarm %s already has a token; `cutover swarm token %s "
				     "--rotate` replaces it (the old one stops working at "
				     "once)",
				     id, id);
		goto done;
	}
	if (error < 0)
		goto done;
	/* The token is issued and valid: print it whatever the audit says,
	 * or it would exist with no one knowing it. */
	snprintf(detail, sizeof(detail), "swarm %s", id);
	if (co_audit_change_add(st, co_cli_who(), rotate ? "swarm token rotate"
							 : "swarm token issue",
				detail, NULL) < 0)
		fprintf(stderr, "cutover: warning: token issued, but the audit trail was "
				"not written: %s\n",
			co_error_last());
	if (ctx->json)
		printf("{\"rotated\":%s,\"swarm\":\"%s\",\"token\":\"%s\"}\n",
		       rotate ? "true" : "false", id, token);
	else
		printf("swarm %s: token %s; it is shown this once (the state dir keeps "
		       "only a salted hash):\n%s\n",
		       id, rotate ? "rotated, the old one no longer works" : "issued",
		       token);
	if (fflush(stdout) != 0)
		error = co_error_set(CO_EIO, "writing to stdout failed");
done:
	co_tokens_wipe(token);
	co_record_free(sw);
	co_state_close(own);
	co_cli_data_close(&d);
	return error;
}

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
	co_state *st = NULL, *own = NULL;
	co_cli_data d = {0};
	const char *id = NULL;
	int error;

	if ((error = co_cli_one_id(&id, ctx, argc, argv, CO_KIND_SWARM, opts,
				   U_REMOVE, h_remove)) != 0)
		return error < 0 ? error : 0;
	if ((error = co_cli_data_open(&d, ctx)) < 0 ||
	    (error = co_cli_data_remove(&d, CO_KIND_SWARM, id)) < 0 ||
	    (error = data_state(&st, &own, &d, ctx)) < 0)
		goto done;
	if ((error = co_tokens_revoke(st, id)) < 0) {
		error = co_cli_error_prefix(error, "swarm removed, but its token was not "
						   "revoked (run it again)");
		goto done;
	}
	if (ctx->json)
		printf("{\"id\":\"%s\",\"kind\":\"swarm\",\"removed\":true}\n", id);
	else
		printf("%s  removed\n", id);
	if (fflush(stdout) != 0)
		error = co_error_set(CO_EIO, "writing to stdout failed");
done:
	co_state_close(own);
	co_cli_data_close(&d);
	return error;
}

static const co_cli_subcommand subs[] = {
    {"register", swarm_register, U_REGISTER},
    {"get", swarm_get, U_GET},
    {"list", swarm_list, U_LIST},
    {"remove", swarm_remove, U_REMOVE},
    {"token", swarm_token, U_TOKEN},
};

int co_cli_swarm(int argc, char **argv, co_cli *ctx)
{
	return co_cli_subcommand_dispatch(
	    argc, argv, ctx, "swarm", "cutover swarm register|get|list|remove|token ...",
	    subs,
	    sizeof(subs) / sizeof(subs[0]),
	    "\nData commands go through the router (the flags decide which store is\n"
	    "primary for each ID); --backend git|etcd talks to one store directly.\n"
	    "Run `cutover swarm SUBCOMMAND --help` for details.\n\n"
	    "Examples:\n"
	    "  cutover swarm register swarm-a --cap build,test\n"
	    "  cutover --json --backend etcd swarm list\n"
	    "  cutover swarm remove swarm-a\n"
	    "  cutover swarm token swarm-a --rotate\n");
}
